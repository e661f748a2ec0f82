"""Per-element CP2K/VASP energy offsets: exact recovery, rank deficiency, U frames, direction."""

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.io import write

from workflow_scripts.analysis import alignment_fit
from workflow_scripts.analysis import energy_alignment as ea

# offsets (eV per atom of the element): E_VASP = E_CP2K + sum n_Z delta_Z
DELTA = {"O": 425.3, "Ti": 1580.25, "Sr": 832.125, "Ba": 677.5, "Br": 360.75}


def _frame(formula_counts: dict[str, int], cp2k_per_atom=-3.7, noise=0.0, vasp=True):
    symbols = [el for el, n in formula_counts.items() for _ in range(n)]
    atoms = Atoms(symbols, positions=np.arange(3 * len(symbols)).reshape(-1, 3) * 1.3)
    atoms.cell = [12.0, 12.0, 12.0]
    atoms.pbc = True
    e_cp2k = -sum(DELTA.get(el, 100.0) * n for el, n in formula_counts.items()) + cp2k_per_atom
    atoms.info["REF_energy"] = e_cp2k
    if vasp:
        shift = sum(DELTA.get(el, 100.0) * n for el, n in formula_counts.items())
        atoms.info["VASP_energy"] = e_cp2k + shift + noise
    return atoms


FULL_RANK = [
    {"Sr": 1, "Ti": 1, "O": 3},
    {"Ba": 1, "Ti": 1, "O": 3},
    {"Sr": 1, "O": 1},
    {"Ti": 1, "O": 2},
    {"Ba": 2},
    {"Ba": 1, "Br": 2},
    {"Sr": 2, "Ti": 1, "O": 4},
]


def test_fit_recovers_known_offsets_exactly_with_full_rank_compositions():
    frames = [_frame(c) for c in FULL_RANK]
    fit = alignment_fit.fit_frames(frames, source="synthetic")
    assert fit.full_rank and fit.status == "determined"
    assert fit.elements == ["O", "Ti", "Br", "Sr", "Ba"]  # by atomic number
    for element, delta in DELTA.items():
        assert fit.delta[fit.elements.index(element)] == pytest.approx(delta, abs=1e-9)
    assert fit.residual_mae < 1e-9
    assert fit.n_frames == 7
    assert fit.n_atoms["O"] == 3 + 3 + 1 + 2 + 4
    assert fit.n_frames_with["Ba"] == 3
    # a structure not in the fit, shifted both ways
    symbols = ["Sr"] * 7 + ["Ba"] + ["Ti"] * 8 + ["O"] * 24
    shift = 7 * DELTA["Sr"] + DELTA["Ba"] + 8 * DELTA["Ti"] + 24 * DELTA["O"]
    assert fit.shift(symbols) == pytest.approx(shift, abs=1e-8)
    assert fit.to_scale(-1000.0, symbols, ea.CP2K, ea.VASP) == pytest.approx(-1000.0 + shift)
    assert fit.to_scale(-1000.0, symbols, ea.VASP, ea.CP2K) == pytest.approx(-1000.0 - shift)
    assert fit.to_scale(-1000.0, symbols, ea.CP2K, ea.CP2K) == -1000.0


def test_residual_mae_reports_how_well_per_element_offsets_hold():
    noise = [0.4, -0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, -0.2]
    comps = FULL_RANK + [{"Sr": 1, "Ti": 1, "O": 3}, {"Ba": 1, "Ti": 1, "O": 3}]
    fit = alignment_fit.fit_frames([_frame(c, noise=n) for c, n in zip(comps, noise, strict=True)])
    assert 0 < fit.residual_mae < 0.1 and fit.residual_max < 0.1


def test_an_element_without_data_is_refused_with_its_name():
    fit = alignment_fit.fit_frames([_frame(c) for c in FULL_RANK])
    with pytest.raises(alignment_fit.AlignmentError, match="Nd not covered") as error:
        fit.shift(["Sr", "Ti", "O", "Nd"])
    assert error.value.uncovered == ["Nd"]
    shifts, status = ea.alignment_status([["Sr", "Nd"], ["Sr", "O"]], ea.VASP, ea.CP2K, fit)
    assert shifts[0] is None and shifts[1] == pytest.approx(-(DELTA["Sr"] + DELTA["O"]))
    assert status == "not aligned: element(s) Nd not covered"


def test_rank_deficient_fit_flags_elements_and_aligns_only_determined_compositions():
    # only SrTiO3 and SrO: no single offset is determined, but combinations in their span are
    frames = [_frame({"Sr": 1, "Ti": 1, "O": 3}), _frame({"Sr": 2, "Ti": 2, "O": 6})]
    frames.append(_frame({"Sr": 1, "O": 1}))
    fit = alignment_fit.fit_frames(frames)
    assert fit.rank == 2 and not fit.full_rank
    assert fit.status.startswith("rank-deficient")
    assert [fit.determined(el) for el in ("O", "Ti", "Sr")] == [False, False, False]
    assert fit.confounded_with("Ti") == ["O", "Sr"]
    # a composition in the fitted row space is determined, whatever the minimum-norm choice
    assert fit.shift(["Sr", "Ti", "O", "O", "O"]) == pytest.approx(
        DELTA["Sr"] + DELTA["Ti"] + 3 * DELTA["O"], abs=1e-8
    )
    # TiO2 = SrTiO3 - SrO lies in the span: determined although no element alone is
    assert fit.shift(["Ti", "O", "O"]) == pytest.approx(DELTA["Ti"] + 2 * DELTA["O"], abs=1e-8)
    with pytest.raises(alignment_fit.AlignmentError, match="not determined") as error:
        fit.shift(["Ti", "O"])
    assert error.value.undetermined == ["O", "Ti"]
    _, status = ea.alignment_status([["Ti", "O"]], ea.CP2K, ea.VASP, fit)
    assert status == "not aligned: element(s) O, Ti not determined (fixed ratios in fit)"
    table = fit.table()
    assert not table["determined"].any()
    assert set(table["fit_status"]) == {"rank-deficient (minimum-norm solution)"}


def test_frames_with_hubbard_u_are_left_out():
    clean = [_frame(c) for c in FULL_RANK]
    # Fe with O: PBE+U in MPtrj, and a wrong offset to prove it is not used
    with_u = _frame({"Fe": 2, "O": 3}, noise=50.0)
    fit = alignment_fit.fit_frames(clean + [with_u])
    assert "Fe" not in fit.elements
    assert fit.n_frames == len(clean) and fit.n_frames_excluded_u == 1
    assert fit.delta[fit.elements.index("O")] == pytest.approx(DELTA["O"], abs=1e-9)
    # Fe without O or F carries no U: it is fitted
    fit = alignment_fit.fit_frames(clean + [_frame({"Fe": 2}), with_u])
    assert fit.delta[fit.elements.index("Fe")] == pytest.approx(100.0, abs=1e-9)


def test_cli_writes_csv_and_json_that_load_back(tmp_path):
    reference = tmp_path / "cp2k_subset.extxyz"
    write(reference, [_frame(c) for c in FULL_RANK] + [_frame({"Ni": 1, "O": 1})])
    out = tmp_path / "metrics" / "energy_alignment.csv"
    ea.main(["fit", "--reference", str(reference), "--out", str(out)])
    table = pd.read_csv(out)
    assert list(table.columns) == list(alignment_fit.CSV_COLUMNS)
    row = table.set_index("element").loc["Ti"]
    assert row["delta_ev"] == pytest.approx(DELTA["Ti"], abs=1e-9)
    assert row["n_frames_in_fit"] == 4 and bool(row["determined"])
    assert (table["fit_n_frames_excluded_u"] == 1).all()
    assert (table["fit_residual_mae_ev_per_atom"] < 1e-9).all()
    fit = alignment_fit.load_fit(out)  # the JSON beside the CSV
    assert fit.shift(["Ba", "Br", "Br"]) == pytest.approx(DELTA["Ba"] + 2 * DELTA["Br"])
    assert "Ni" not in fit.elements


def test_model_and_label_scales_follow_the_training_data():
    variants = {
        "zero": {"method": "zero_shot"},
        "ft": {"method": "standard", "data": "perovs_dopants"},
        "mh": {"method": "multihead", "data": "perovs_dopants", "replay": "mptrj_fps"},
        "cp2k-mptrj": {"method": "standard", "data": "mptrj_cp2k"},
        "omat": {"method": "multihead", "data": "omat24", "replay": "mptrj_fps"},
        "scratch": {"method": "scratch", "data": "perovs_dopants"},
    }
    scale = {m: ea.model_energy_scale(m, variants) for m in [*variants, "chgnet"]}
    assert scale == {
        "zero": "VASP",
        "ft": "CP2K",
        "mh": "CP2K",
        "cp2k-mptrj": "CP2K",
        "omat": "VASP",
        "scratch": "CP2K",
        "chgnet": "VASP",
    }
    assert ea.model_energy_scale("mh", variants, "pretraining") == "VASP"
    assert [ea.label_energy_scale(t) for t in ("perovs_dopants", "mptrj", "omat24")] == [
        "CP2K",
        "VASP",
        "VASP",
    ]
    assert ea.label_energy_scale("mptrj_cp2k_subset") == "CP2K"


def test_embedding_map_energy_errors_are_aligned_across_codes_and_raw_within(tmp_path):
    from workflow_scripts.analysis import embeddings

    fit = alignment_fit.fit_frames([_frame(c) for c in FULL_RANK])
    frames = []
    for symbols, error in ((["Sr", "Ti", "O", "O", "O"], 0.5), (["Sr", "Nd"], 0.1)):
        atoms = Atoms(symbols, positions=np.arange(3 * len(symbols)).reshape(-1, 3) * 1.5)
        atoms.cell, atoms.pbc = [9.0, 9.0, 9.0], True
        atoms.info["REF_energy"] = -100.0  # CP2K labels
        vasp_shift = sum(DELTA.get(el, 0.0) for el in symbols)
        atoms.info["MACE_energy"] = -100.0 + vasp_shift + error  # a VASP-scale model
        frames.append(atoms)
    path = tmp_path / "predictions.extxyz"
    write(path, frames)
    errors, _ = embeddings.energy_errors(path, ea.VASP, ea.CP2K, fit)
    assert errors[0] == pytest.approx(0.5 / 5, abs=1e-9)
    assert np.isnan(errors[1])  # Nd: not covered -> not coloured, never zero
    raw, _ = embeddings.energy_errors(path, ea.CP2K, ea.CP2K, fit)
    assert raw[0] == pytest.approx((DELTA["Sr"] + DELTA["Ti"] + 3 * DELTA["O"] + 0.5) / 5)
    assert np.array_equal(raw, embeddings.energy_errors(path)[0])


def test_per_substituent_chart_marks_aligned_and_not_aligned_cells(tmp_path):
    from workflow_scripts.analysis import per_substituent
    from workflow_scripts.mace.metrics import PER_SUBSTITUENT_COLUMNS

    rows = [
        ("zero", "perovs_dopants", "Zr", 3, 0.05, 0.1, 1150.0, "aligned"),
        ("zero", "perovs_dopants", "Nd", 2, float("nan"), 0.2, 1100.0,
         "not aligned: element(s) Nd not covered"),
        ("ft", "perovs_dopants", "Zr", 3, 0.01, 0.05, 0.01, "raw"),
        ("ft", "perovs_dopants", "Nd", 2, 0.02, 0.06, 0.02, "raw"),
    ]  # fmt: skip
    metrics = tmp_path / "per_substituent.csv"
    pd.DataFrame(rows, columns=list(PER_SUBSTITUENT_COLUMNS)).to_csv(metrics, index=False)
    table = per_substituent.select(pd.read_csv(metrics), "perovs_dopants")
    assert list(table.columns) == list(PER_SUBSTITUENT_COLUMNS)
    assert per_substituent.alignment_by_model(table) == {
        "zero": "not aligned: element(s) Nd not covered",
        "ft": "raw",
    }
    note = per_substituent.alignment_note(table)
    assert "zero / Nd: not aligned: element(s) Nd not covered" in note
    settings = tmp_path / "analysis.json"
    settings.write_text('{"run_label": "test"}')
    out = tmp_path / "per_substituent_errors.png"
    per_substituent.main(["--metrics", str(metrics), "--settings", str(settings),
                          "--dataset-name", "Perovs-Dopants", "--out", str(out)])  # fmt: skip
    written = pd.read_csv(out.with_suffix(".csv"))
    assert np.isnan(written.query("model == 'zero' and substituent == 'Nd'")[
        "energy_mae_ev_per_atom"].item())  # fmt: skip
