"""Scoring a model's screen against DFT's, from hand-made energies."""

import math

import pandas as pd
import pytest

from workflow_scripts.screening import compare, formation

HOST_SYMBOLS = ["Sr", "Sr", "Ti", "Ti"] + ["O"] * 6
REFERENCES = {"Sr": -1.5, "Ti": -7.0, "O": -4.5, "Ba": -1.8, "Pb": -3.5}
REFERENCE_ATOMS = {"Sr": 1, "Ti": 2, "O": 2, "Ba": 1, "Pb": 1}
# (defect, kind, site, species, replaced, E_defect, held out)
DEFECTS = [
    ("sub_Ba_on_A", "substitution", "A", "Ba", "Sr", -80.7, False),
    ("vac_A", "vacancy", "A", "Sr", "Sr", -76.0, False),
    ("sub_Pb_on_A", "substitution", "A", "Pb", "Sr", -81.5, True),
    ("sub_Pb_on_B", "substitution", "B", "Pb", "Ti", -75.0, True),
]


def dft_inputs():
    defects = [formation.Defect("SrTiO3", n, k, s, sp, r, e) for n, k, s, sp, r, e, _ in DEFECTS]
    rows, _ = formation.formation_rows(defects, {"SrTiO3": (-80.0, HOST_SYMBOLS)}, REFERENCES)
    held = {n for n, *_, h in DEFECTS if h}
    for row in rows:
        row["held_out"] = row["defect"] in held
    entries = pd.DataFrame({"used": [True, True], "dft_wall_s": [100.0, 50.0]})
    structures = {"hosts": {"SrTiO3": HOST_SYMBOLS}, "references": REFERENCE_ATOMS}
    return pd.DataFrame(rows), entries, structures


def model_table(shift: dict[str, float], defect_errors: dict[str, float] | None = None):
    """Energies = DFT's + a per-element shift (a DFT-code offset) + per-defect errors."""
    from collections import Counter

    def shifted(energy, counts):
        return energy + sum(shift.get(e, 0.0) * n for e, n in counts.items())

    host = Counter(HOST_SYMBOLS)
    rows = [{"screen_id": "host:SrTiO3", "energy": shifted(-80.0, host)}]
    for element, n in REFERENCE_ATOMS.items():
        energy = REFERENCES[element] * n
        rows.append({"screen_id": f"reference:{element}", "energy": shifted(energy, {element: n})})
    for name, kind, _, species, replaced, energy, _ in DEFECTS:
        counts = Counter(host)
        counts[replaced] -= 1
        if kind == "substitution":
            counts[species] += 1
        value = shifted(energy, counts) + (defect_errors or {}).get(name, 0.0)
        rows.append({"screen_id": f"defect:SrTiO3/{name}", "energy": value})
    table = pd.DataFrame(rows)
    table["energy_relaxed_ev"] = table["energy"]
    table["energy_at_dft_ev"] = table["energy"]
    table["seconds"] = 1.5
    return table


def test_per_element_offsets_cancel_and_errors_are_scored_by_subset():
    dft, entries, structures = dft_inputs()
    offset = {"Sr": 3.0, "Ti": -2.0, "O": 1.0, "Ba": 0.5, "Pb": -4.0}  # a code's offsets
    tables = {
        "exact": model_table(offset),
        "off": model_table({}, {"sub_Pb_on_A": 0.9, "sub_Ba_on_A": 0.1}),
    }
    values, rows = compare.compare(dft, entries, structures, tables)
    by = {(r["model"], r["mode"], r["subset"]): r for r in rows}
    exact = by["exact", "relaxed", "held-out"]
    assert exact["ef_mae_ev"] == pytest.approx(0.0, abs=1e-9)
    assert exact["site_agreement_pct"] == 100.0 and exact["n_site_choices"] == 4  # 4 limits
    assert exact["could_replace_dft"] is True
    off = by["off", "relaxed", "held-out"]
    # Pb_A off by 0.9 eV in every limit, Pb_B exact: MAE 0.45, and Pb now prefers B where
    # E_f(Pb_A) + 0.9 > E_f(Pb_B)
    assert off["ef_mae_ev"] == pytest.approx(0.45)
    assert off["ef_max_error_ev"] == pytest.approx(0.9)
    assert off["could_replace_dft"] is False
    assert by["off", "relaxed", "in-sample"]["ef_mae_ev"] == pytest.approx(0.1 / 2)
    assert by["off", "relaxed", "in-sample"]["could_replace_dft"] == ""  # judged on held-out
    assert by["off", "relaxed", "all"]["n_defects"] == 4
    # ranking within the host: 4 defects per limit, a 0.9 eV error on one of them
    assert by["exact", "relaxed", "all"]["spearman_rho"] == pytest.approx(1.0)
    assert by["exact", "relaxed", "all"]["n_rankings"] == 4
    assert by["off", "relaxed", "all"]["model_seconds"] == pytest.approx(1.5 * 10)
    assert by["off", "relaxed", "all"]["dft_seconds"] == pytest.approx(150.0)
    assert {v["mode"] for v in values} == {"relaxed", "at_dft_geometry"}
    text = compare.markdown(rows, "test")
    assert "Could have replaced DFT for this screen" in text and ": exact." in text


def test_no_model_passing_says_so_and_undefined_metrics_are_nan():
    metrics = {"n_defects": 1, "ef_mae_ev": 0.2, "spearman_rho": math.nan,
               "site_agreement_pct": math.nan}  # fmt: skip
    assert compare.replaces_dft(metrics) is False
    assert compare.replaces_dft(metrics | {"ef_mae_ev": 0.1}) is True
    line = compare.verdict_line([{"model": "m", "subset": "all", "could_replace_dft": False}])
    assert line.startswith("No model could have replaced DFT")
