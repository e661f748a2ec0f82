"""The leaderboard: ranks (ties, NaN, the labeller), marks, values, sections and the figure."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.analysis import leaderboard
from workflow_scripts.analysis import plan as analysis_plan
from workflow_scripts.config import REPO_ROOT, load_config
from workflow_scripts.mace import metrics

DEMO = Path(__file__).parent / "data" / "demo_metrics"  # a real demo run (SOURCES.md)
NAMES = {"mptrj": "MPtrj", "perovs_dopants": "Perovs-Dopants"}
SCALES = {"zero": "VASP", "ft-a": "CP2K", "ft-b": "CP2K", "scratch": "CP2K", "chgnet": "VASP"}
METHODS = {"zero": "zero-shot", "ft-a": "standard", "ft-b": "multihead"}
METHODS |= {"scratch": "from scratch", "chgnet": "zero-shot"}
VARIANTS = {"zero": "zero_shot", "ft-a": "standard", "ft-b": "multihead", "scratch": "scratch"}
NOT_COVERED = "not aligned: element(s) Xx not covered"
# model, test set, force MAE, energy MAE, raw energy MAE, alignment, evaluated/frames
ROWS = [
    ("zero", "mptrj", 0.030, 0.010, 0.010, "raw", 10),
    ("ft-a", "mptrj", 0.050, 0.020, 500.0, "aligned", 10),
    ("ft-b", "mptrj", 0.050, np.nan, 501.0, NOT_COVERED, 10),  # ties ft-a on forces
    ("scratch", "mptrj", np.nan, np.nan, np.nan, "", 0),  # nothing evaluated
    ("chgnet", "mptrj", 0.0, 0.0, 0.0, "raw", 10),  # made the labels
    ("zero", "perovs_dopants", 0.120, 0.300, 600.0, "aligned", 10),
    ("ft-a", "perovs_dopants", 0.040, 0.005, 0.005, "raw", 10),
    ("ft-b", "perovs_dopants", 0.045, 0.006, 0.006, "raw", 9),  # partly evaluated
    ("scratch", "perovs_dopants", 0.041, 0.004, 0.004, "raw", 10),
    ("chgnet", "perovs_dopants", 0.100, 0.250, 601.0, "aligned", 10),
]


def _summary_rows() -> list[dict]:
    rows = []
    for model, test_set, force, energy, raw, status, evaluated in ROWS:
        label = "CP2K" if test_set == "perovs_dopants" else "VASP"
        rows.append(
            {"model": model, "method": METHODS[model], "finetune_data": "–", "head": "–"}
            | {"test_set": test_set, "test_set_name": NAMES[test_set], "n_frames": 10}
            | {"n_evaluated": evaluated, "energy_mae_ev_per_atom": energy}
            | {"force_mae_ev_per_a": force, "force_rmse_ev_per_a": force, "n_stress": 0}
            | {"stress_mae_ev_per_a3": np.nan, "energy_mae_raw_ev_per_atom": raw}
            | {"energy_alignment": status, "model_energy_scale": SCALES[model]}
            | {"label_energy_scale": label}
        )
    return rows


def _run(tmp_path, table_dir=None, variants=None, extra=()):
    """Writes Table A1 with metrics' own writer (unless given), runs the CLI."""
    if table_dir is None:
        table_dir = tmp_path / "metrics"
        table_dir.mkdir()
        metrics.write_table_a1(_summary_rows(), table_dir, "unit test")
        variants = tmp_path / "variants.json"
        content = {m: {"method": v} for m, v in VARIANTS.items()} | {"run_label": "unit test"}
        variants.write_text(json.dumps(content))
    out = tmp_path / "out" / "leaderboard.csv"
    figure = tmp_path / "figures" / "leaderboard.png"
    argv = ["--table-a1", str(table_dir / "tableA1.csv"), "--variants-config", str(variants)]
    argv += ["--out", str(out), "--figure", str(figure), *extra]
    assert leaderboard.main(argv) == 0
    board = pd.read_csv(out, keep_default_na=False, na_values=[""])
    return board, out.with_suffix(".md").read_text(), figure


def _section(markdown: str, heading: str) -> list[list[str]]:
    """The table rows (cells) of one ``## heading`` section of the Markdown."""
    part = markdown.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in part.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _ranks(board, test_set: str, column: str) -> dict:
    part = board[board["test_set"] == test_set]
    ranks = zip(part["model"], part[column], strict=True)
    return {model: (None if pd.isna(r) else int(r)) for model, r in ranks}


def test_ranks_share_ties_and_leave_nan_and_the_labeller_unranked_and_last(tmp_path):
    board, _, _ = _run(tmp_path, extra=["--labeller", "mptrj=CHGNet"])
    assert _ranks(board, "mptrj", "rank_force") == {
        "zero": 1, "ft-a": 2, "ft-b": 2, "scratch": None, "chgnet": None,
    }  # fmt: skip
    assert _ranks(board, "mptrj", "rank_energy") == {
        "zero": 1, "ft-a": 2, "ft-b": None, "scratch": None, "chgnet": None,
    }  # fmt: skip
    # rows in force-rank order, unranked last in table order; chgnet ranked where CP2K labels
    assert list(board["model"]) == ["zero", "ft-a", "ft-b", "scratch", "chgnet"] + [
        "ft-a", "scratch", "ft-b", "chgnet", "zero",
    ]  # fmt: skip
    assert _ranks(board, "perovs_dopants", "rank_energy") == {
        "ft-a": 2, "scratch": 1, "ft-b": 3, "chgnet": 4, "zero": 5,
    }  # fmt: skip
    assert list(board["produced_labels"]) == [False] * 4 + [True] + [False] * 5
    kinds = dict(zip(board["model"], board["kind"], strict=False))
    assert kinds == {
        "zero": "foundation", "ft-a": "finetuned", "ft-b": "finetuned",
        "scratch": "from scratch", "chgnet": "baseline",
    }  # fmt: skip


def test_csv_values_are_table_a1s(tmp_path):
    board, _, _ = _run(tmp_path)
    table = leaderboard.read_table(tmp_path / "metrics" / "tableA1.csv")
    merged = board.merge(table, on=["model", "test_set"], suffixes=("", "_a1"))
    assert len(merged) == len(table) == len(board) == len(ROWS)
    for column in leaderboard.REQUIRED:
        if column in ("model", "test_set"):
            continue
        left, right = merged[column], merged[f"{column}_a1"]
        if left.dtype.kind == "f":
            np.testing.assert_array_equal(left.to_numpy(), right.to_numpy())  # NaN == NaN
        else:
            assert list(left.fillna("")) == list(right.fillna("")), column
    assert list(board.columns) == leaderboard.COLUMNS


def test_markdown_has_a_section_per_test_set_with_table_a1s_marks(tmp_path):
    _, markdown, _ = _run(tmp_path, extra=["--labeller", "mptrj=chgnet"])
    assert markdown.startswith("# Leaderboard — unit test\n")
    mptrj = _section(markdown, "MPtrj (`mptrj`)")
    # rank, model, kind, method, F MAE, E rank, E MAE, E MAE raw, scale
    assert [row[:2] for row in mptrj] == [
        ["1", "zero"], ["2", "ft-a"], ["2", "ft-b"], ["–", "scratch"], ["–", "chgnet §"],
    ]  # fmt: skip
    assert mptrj[1][4:7] == ["0.050", "2", "0.020†"]  # aligned: †
    assert mptrj[2][5:8] == ["–", "n/a‡", "501.000"]  # not alignable: n/a‡, raw kept
    assert mptrj[3][4:8] == ["n/a", "–", "n/a", "n/a"]  # nothing computed
    assert mptrj[4][4:7] == ["0.000", "–", "0.000"]
    dopants = _section(markdown, "Perovs-Dopants (`perovs_dopants`)")
    assert [row[1] for row in dopants] == ["ft-a", "scratch", "ft-b", "chgnet", "zero"]
    assert dopants[2][4] == "0.045*" and metrics.PARTIAL_NOTE in markdown
    assert dopants[4][6:9] == ["0.300†", "600.000", "VASP → CP2K"]
    # the notes of tableA1.md, from the same code
    assert "† aligned: ft-a on MPtrj (CP2K → VASP), zero on Perovs-Dopants" in markdown
    assert f"n/a‡ ft-b on MPtrj: {NOT_COVERED}." in markdown
    assert "Fit: none" in markdown
    assert "§ this model made the test set's labels" in markdown
    assert "chgnet on MPtrj." in markdown and "chgnet on Perovs-Dopants." not in markdown


def test_without_a_labeller_the_lowest_error_is_first(tmp_path):
    board, markdown, _ = _run(tmp_path)
    assert _ranks(board, "mptrj", "rank_force")["chgnet"] == 1
    assert "§" not in markdown


def test_figure_and_its_table_are_written_in_drawing_order(tmp_path):
    board, _, figure = _run(tmp_path)
    assert figure.stat().st_size > 10_000
    table = pd.read_csv(figure.with_suffix(".csv"), keep_default_na=False, na_values=[""])
    assert list(table.columns) == leaderboard.FIGURE_COLUMNS
    models = ["zero", "ft-a", "ft-b", "scratch", "chgnet"]
    assert list(table["model"]) == models * 2
    assert list(table["test_set"]) == ["mptrj"] * 5 + ["perovs_dopants"] * 5
    fig = leaderboard.draw(board, models, "note")
    assert fig.axes[0].get_yscale() == "linear"  # 0.030 to 0.120: within 10x


def test_real_demo_table(tmp_path):
    labellers = ["--labeller", "mptrj=chgnet", "--labeller", "omat24=chgnet"]
    extra = ["--energy-alignment", str(DEMO / "energy_alignment.json"), *labellers]
    board, markdown, figure = _run(tmp_path, DEMO, DEMO / "variants.json", extra)
    table = leaderboard.read_table(DEMO / "tableA1.csv")
    assert len(board) == len(table) == 24
    best = board[board["rank_force"] == 1].set_index("test_set")["model"].to_dict()
    assert best == {
        "mptrj": "MACE-stand-in-foundation",
        "perovs_dopants": "ft-dopants-standard",
        "omat24": "ft-omat24-multihead",
    }
    chgnet = board[board["model"] == "chgnet"].set_index("test_set")
    assert chgnet["rank_force"].isna().to_dict() == {
        "mptrj": True, "perovs_dopants": False, "omat24": True,
    }  # fmt: skip
    assert chgnet.loc["perovs_dopants", "kind"] == "baseline"
    merged = board.merge(table, on=["model", "test_set"], suffixes=("", "_a1"))
    for column in ("force_mae_ev_per_a", "energy_mae_ev_per_atom", "energy_mae_raw_ev_per_atom"):
        assert (merged[column] == merged[f"{column}_a1"]).all()
    assert "## Perovs-Dopants (`perovs_dopants`)" in markdown
    assert "| 5 | MACE-stand-in-foundation | foundation | zero-shot | 0.070 | 3 | 0.294† |" in (
        markdown
    )
    assert "Fit (" in markdown and "12 frames" in markdown  # the fit, named as in tableA1.md
    assert markdown.count("chgnet §") == 2
    models = list(dict.fromkeys(table["model"]))
    assert leaderboard.draw(board, models, "note").axes[0].get_yscale() == "log"  # 0.055-1.16
    assert figure.stat().st_size > 10_000


def test_a_table_without_table_a1s_columns_is_refused(tmp_path):
    path = tmp_path / "tableA1.csv"
    pd.DataFrame({"model": ["zero"], "test_set": ["mptrj"]}).to_csv(path, index=False)
    with pytest.raises(KeyError, match="force_mae_ev_per_a"):
        leaderboard.read_table(path)


def test_the_rule_flags_only_stand_in_labellers():
    demo = load_config(REPO_ROOT / "demo" / "config.yaml")
    flags = "--labeller mptrj=chgnet --labeller omat24=chgnet"
    assert analysis_plan.labeller_flags(demo) == flags
    study = load_config(REPO_ROOT / "config.yaml")
    assert analysis_plan.labeller_flags(study) == ""
    targets = analysis_plan.analysis_targets(study, ["tableA1"])
    assert set(analysis_plan.LEADERBOARD_FILES) <= set(targets)
    assert "results/report/leaderboard.html" in targets
