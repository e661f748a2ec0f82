"""Per-substituent error chart and metric tables as HTML for the report."""

import json

import pandas as pd
import pytest

from workflow_scripts.analysis import per_substituent, tables

ROWS = [
    # model, test_set, substituent, n_frames, energy MAE, force MAE
    ("zero-shot", "perovs_dopants", "vacancy", 4, 0.011, 0.101),
    ("zero-shot", "perovs_dopants", "Nd", 3, 0.350, 0.402),
    ("zero-shot", "perovs_dopants", "Zr", 5, 0.012, 0.103),
    ("zero-shot", "mptrj", "", 20, 0.020, 0.030),
    ("finetuned", "perovs_dopants", "Zr", 5, 0.002, 0.031),
    ("finetuned", "perovs_dopants", "Nd", 3, 0.090, 0.052),
    ("finetuned", "perovs_dopants", "vacancy", 4, 0.003, 0.033),
]


def _write_metrics(tmp_path):
    path = tmp_path / "per_substituent.csv"
    pd.DataFrame(ROWS, columns=per_substituent.COLUMNS).to_csv(path, index=False)
    settings = tmp_path / "analysis.json"
    settings.write_text(json.dumps({"run_label": "test"}))
    return path, settings


def test_chart_table_is_the_test_sets_rows_in_reading_order(tmp_path):
    metrics, settings = _write_metrics(tmp_path)
    out = tmp_path / "figures" / "per_substituent_errors.png"
    per_substituent.main(
        [
            "--metrics",
            str(metrics),
            "--settings",
            str(settings),
            "--dataset-name",
            "Perovs-Dopants",
            "--out",
            str(out),
        ]
    )
    assert out.stat().st_size > 10_000
    table = pd.read_csv(out.with_suffix(".csv"), keep_default_na=False)
    # models in table order; substituents by atomic number (Zr 40, Nd 60), vacancy last
    assert list(zip(table["model"], table["substituent"], strict=True)) == [
        ("zero-shot", "Zr"),
        ("zero-shot", "Nd"),
        ("zero-shot", "vacancy"),
        ("finetuned", "Zr"),
        ("finetuned", "Nd"),
        ("finetuned", "vacancy"),
    ]
    assert (table["test_set"] == "perovs_dopants").all()
    nd = table[(table["model"] == "zero-shot") & (table["substituent"] == "Nd")].iloc[0]
    assert (nd["n_frames"], nd["energy_mae_ev_per_atom"], nd["force_mae_ev_per_a"]) == (
        3,
        0.350,
        0.402,
    )


def test_unknown_test_set_and_missing_columns_are_reported(tmp_path):
    metrics = pd.DataFrame(ROWS, columns=per_substituent.COLUMNS)
    with pytest.raises(ValueError, match="found \\['mptrj', 'perovs_dopants'\\]"):
        per_substituent.select(metrics, "omat24")
    with pytest.raises(KeyError, match="force_mae_ev_per_a"):
        per_substituent.select(metrics.drop(columns="force_mae_ev_per_a"), "perovs_dopants")


def test_metric_table_html_shows_every_value(tmp_path):
    csv = tmp_path / "table1.csv"
    pd.DataFrame(
        {
            "model": ["zero-shot", "finetuned"],
            "MPtrj": [0.0271234, None],
            "Perovs-Dopants": [0.119, 0.037],
        }
    ).to_csv(csv, index=False)
    out = tmp_path / "report" / "table1.html"
    tables.main(["html", "--csv", str(csv), "--title", "Force MAE (eV/Å)", "--out", str(out)])
    page = out.read_text()
    assert "<h3>Force MAE (eV/Å)</h3>" in page
    assert page.count("<tr") == 3  # header and two models
    assert "<td>0.02712</td>" in page.replace(" ", "").replace("<tdclass", "<td")
    assert "<td>0.119</td>" in page and "<td></td>" in page
