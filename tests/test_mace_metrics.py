"""Metric functions against hand-computed values, and the metric tables' layout."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.io import write

from workflow_scripts.analysis import alignment_fit
from workflow_scripts.mace import errors, metrics


def test_energy_mae_is_per_atom_mean_of_absolute_errors():
    # |10-9|/2 = 0.5 and |20-22|/4 = 0.5 -> 0.5; |3-0|/3 = 1 -> mean of (0.5, 0.5, 1) = 2/3
    value = errors.energy_mae_per_atom([10.0, 20.0, 3.0], [9.0, 22.0, 0.0], [2, 4, 3])
    assert value == pytest.approx(2 / 3)


def test_force_mae_and_rmse_over_cartesian_components():
    predicted = np.array([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0]])
    reference = np.zeros((2, 3))
    assert errors.force_mae(predicted, reference) == pytest.approx(3 / 6)
    assert errors.force_rmse(predicted, reference) == pytest.approx(math.sqrt(5 / 6))


def test_stress_mae_over_voigt_components():
    predicted = np.array([[0.01, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, -0.03]])
    reference = np.zeros((2, 6))
    assert errors.stress_mae(predicted, reference) == pytest.approx(0.04 / 12)


def _frame(symbols, energy_ref, energy_pred, forces_ref, forces_pred, **info):
    atoms = Atoms(symbols, positions=np.arange(3 * len(symbols)).reshape(-1, 3) * 1.7)
    atoms.cell = [10.0, 10.0, 10.0]
    atoms.pbc = True
    atoms.info["REF_energy"] = energy_ref
    atoms.arrays["REF_forces"] = np.array(forces_ref, float)
    if energy_pred is not None:
        atoms.info["MACE_energy"] = energy_pred
        atoms.arrays["MACE_forces"] = np.array(forces_pred, float)
    atoms.info.update(info)
    return atoms


def _frames():
    zeros = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    return [
        # Sr-Ti frame with a Zr substituent: E error 0.2 eV over 2 atoms; forces off by 0.3 on Sr x
        _frame(
            ["Sr", "Ti"],
            -10.0,
            -9.8,
            zeros,
            [[0.3, 0.0, 0.0], [0.0, 0.0, 0.0]],
            substituent="Zr",
            REF_stress=np.zeros(6),
            MACE_stress=np.full(6, 0.006),
            head="Default",
        ),
        # vacancy frame: E error 0.6 eV over 2 atoms; Ti force off by 0.6 in z; no stress label
        _frame(
            ["Ti", "O"],
            -20.0,
            -20.6,
            zeros,
            [[0.0, 0.0, 0.6], [0.0, 0.0, 0.0]],
            substituent="vacancy",
            head="Default",
        ),
        # element unknown to the model: no prediction
        _frame(["Nd", "O"], -5.0, None, zeros, None, MACE_skipped="elements not in model: Nd"),
    ]


def test_summary_counts_evaluated_frames_and_averages_errors():
    row = errors.summary(errors.collect(_frames()))
    assert row["n_frames"] == 3
    assert row["n_evaluated"] == 2
    assert row["energy_mae_ev_per_atom"] == pytest.approx((0.1 + 0.3) / 2)
    assert row["force_mae_ev_per_a"] == pytest.approx(0.9 / 12)
    assert row["force_rmse_ev_per_a"] == pytest.approx(math.sqrt((0.09 + 0.36) / 12))
    assert row["stress_mae_ev_per_a3"] == pytest.approx(0.006)
    assert row["n_stress"] == 1


def test_per_element_and_per_substituent_errors():
    collected = errors.collect(_frames())
    by_element = errors.per_element(collected)
    assert by_element["Sr"] == (1, pytest.approx(0.1))
    assert by_element["Ti"] == (2, pytest.approx(0.6 / 6))
    assert "Nd" not in by_element
    by_substituent = errors.per_substituent(collected)
    assert by_substituent["Zr"][:3] == (1, pytest.approx(0.1), pytest.approx(0.3 / 6))
    assert by_substituent["vacancy"][:3] == (1, pytest.approx(0.3), pytest.approx(0.6 / 6))
    assert by_substituent["Zr"][3:] == (pytest.approx(0.1), "raw")


def _prediction_flags(root) -> list[str]:
    """``--prediction MODEL/TEST_SET=FILE`` for every file under ``root/{model}/``."""
    return [
        f"--prediction={path.parent.name}/{path.stem}={path}"
        for path in sorted(root.glob("*/*.extxyz"))
    ]


def _write_predictions(root, model, test_set, force_error, skip_last=False, head="Default"):
    frames = []
    for index in range(3):
        predicted = None if (skip_last and index == 2) else -10.0 + force_error
        frame = _frame(
            ["Sr", "Ti"],
            -10.0,
            predicted,
            [[0.0] * 3] * 2,
            [[force_error, 0.0, 0.0], [0.0, 0.0, 0.0]],
            head=head,
        )
        if predicted is None:
            frame.info["MACE_skipped"] = "elements not in model: Ti"
        frames.append(frame)
    (root / model).mkdir(parents=True, exist_ok=True)
    write(root / model / f"{test_set}.extxyz", frames)


def test_tables_have_the_study_layout_with_names_from_config(tmp_path):
    predictions = tmp_path / "predictions"
    _write_predictions(predictions, "zero-shot", "mptrj", 0.06)
    _write_predictions(predictions, "zero-shot", "perovs_dopants", 0.3)
    _write_predictions(predictions, "ft-mh", "mptrj", 0.12)
    _write_predictions(predictions, "ft-mh", "perovs_dopants", 0.6)
    _write_predictions(predictions, "scratch", "mptrj", 0.9, skip_last=True)
    _write_predictions(predictions, "scratch", "perovs_dopants", 0.3)
    config = tmp_path / "config"
    config.mkdir()
    sections = {
        "variants": {
            "zero-shot": {"method": "zero_shot"},
            "ft-mh": {"method": "multihead", "data": "perovs_dopants", "replay": "mptrj_fps"},
            "scratch": {"method": "scratch", "data": "perovs_dopants"},
            "run_label": "demo",
        },
        "evaluation": {"test_sets": ["mptrj", "perovs_dopants"]},
        "baselines": {"run_label": "demo"},
        "dataset": {"name": "Perovs-Dopants-demo"},
        "reference": {"mptrj": {"name": "MPtrj-stand-in"}, "omat24": {"name": "OMat24-stand-in"}},
    }
    for name, content in sections.items():
        (config / f"{name}.json").write_text(json.dumps(content))
    (tmp_path / "foundation.json").write_text(json.dumps({"name": "MACE-stand-in-foundation"}))
    out = tmp_path / "metrics"
    metrics.main(
        ["tables", *_prediction_flags(predictions), "--models", "zero-shot", "ft-mh",
         "scratch", "--variants-config", str(config / "variants.json"),
         "--evaluation-config", str(config / "evaluation.json"),
         "--baselines-config", str(config / "baselines.json"),
         "--dataset-config", str(config / "dataset.json"),
         "--reference-config", str(config / "reference.json"),
         "--foundation-info", str(tmp_path / "foundation.json"), "--out-dir", str(out)]
    )  # fmt: skip
    table1 = pd.read_csv(out / "table1_force_mae.csv")
    assert list(table1.columns) == [
        "model", "base_model", "finetune_data", "method", "head",
        "MPtrj-stand-in", "Perovs-Dopants-demo",
    ]  # fmt: skip
    assert list(table1["model"]) == ["zero-shot", "ft-mh", "scratch"]
    row = table1.set_index("model").loc["ft-mh"]
    assert row["finetune_data"] == "Perovs-Dopants-demo"
    assert row["base_model"] == "MACE-stand-in-foundation"
    # one component of six per frame is off: MAE = error / 6
    assert row["MPtrj-stand-in"] == pytest.approx(0.12 / 6)
    assert row["Perovs-Dopants-demo"] == pytest.approx(0.6 / 6)
    markdown = (out / "table1_force_mae.md").read_text()
    assert (
        "| scratch | – | Perovs-Dopants-demo | from scratch | Default | 0.150* | 0.050 |"
        in markdown
    )
    table_a1 = pd.read_csv(out / "tableA1.csv")
    scratch = table_a1[(table_a1["model"] == "scratch") & (table_a1["test_set"] == "mptrj")]
    assert scratch[["n_frames", "n_evaluated"]].values.tolist() == [[3, 2]]
    # a CP2K-scale model on VASP labels without an alignment fit: raw MAE kept, no aligned one
    assert scratch["energy_mae_raw_ev_per_atom"].item() == pytest.approx(0.9 / 2)
    assert math.isnan(scratch["energy_mae_ev_per_atom"].item())
    assert scratch["energy_alignment"].item().startswith("not aligned: no energy-alignment fit")
    within = table_a1[(table_a1["model"] == "scratch") & (table_a1["test_set"] == "perovs_dopants")]
    assert within["energy_alignment"].item() == "raw"
    assert within["energy_mae_ev_per_atom"].item() == pytest.approx(0.3 / 2)
    per_substituent = pd.read_csv(out / "per_substituent.csv")
    assert list(per_substituent.columns) == list(metrics.PER_SUBSTITUENT_COLUMNS)
    per_element = pd.read_csv(out / "per_element_force_mae.csv")
    zero_shot_sr = per_element.query("model == 'zero-shot' and test_set == 'mptrj'")
    assert zero_shot_sr.set_index("element").loc["Sr", "force_mae_ev_per_a"] == pytest.approx(0.02)


# --- energies across DFT codes -------------------------------------------------------------------

# offsets of the synthetic fit: E_VASP = E_CP2K + 800 n_Sr + 1500 n_Ti (+ 400 n_O)
SR, TI, OX = 800.0, 1500.0, 400.0


def _alignment_fit(tmp_path):

    compositions = [{"Sr": 1}, {"Ti": 1}, {"O": 2}, {"Sr": 1, "Ti": 1, "O": 3}]
    differences = [SR, TI, 2 * OX, SR + TI + 3 * OX]
    fit = alignment_fit.fit_offsets(compositions, differences, source="synthetic")
    return alignment_fit.write_fit(fit, tmp_path / "energy_alignment.csv")


def _energy_frames(path, energies, symbols=("Sr", "Ti"), substituents=None):
    frames = []
    for k, (reference, predicted) in enumerate(energies):
        frame = _frame(list(symbols), reference, predicted, [[0.0] * 3] * len(symbols),
                       [[0.0] * 3] * len(symbols))  # fmt: skip
        frame.info["substituent"] = (substituents or ["Zr"] * len(energies))[k]
        frames.append(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, frames)


def test_cross_code_cells_use_aligned_energies_and_within_code_cells_raw(tmp_path):
    predictions = tmp_path / "predictions"
    # zero-shot (VASP scale) on Perovs-Dopants (CP2K labels): predictions sit 2300 eV above the
    # CP2K labels plus a model error of +0.4 and -0.2 eV: aligned E' = E - (800 + 1500)
    _energy_frames(predictions / "zero" / "perovs_dopants.extxyz",
                   [(-10.0, -10.0 + SR + TI + 0.4), (-20.0, -20.0 + SR + TI - 0.2)])  # fmt: skip
    # zero-shot on MPtrj (VASP labels): raw, 0.6 eV error over 2 atoms
    _energy_frames(predictions / "zero" / "mptrj.extxyz", [(-5.0, -5.6)])
    # CP2K-head model on MPtrj (VASP labels): E' = E + 2300; model error -0.2 eV
    _energy_frames(predictions / "ft" / "mptrj.extxyz", [(-5.0, -5.0 - SR - TI - 0.2)])
    # CP2K-head model on Perovs-Dopants: raw, 0.1 eV over 2 atoms; one frame has Nd (no offset)
    _energy_frames(predictions / "ft" / "perovs_dopants.extxyz", [(-10.0, -10.1), (-20.0, -20.3)])
    # ... and a cross-code cell with an element the fit does not cover: NaN, never zero
    _energy_frames(predictions / "zero" / "omat24.extxyz", [(-1.0, -1.0)])
    _energy_frames(predictions / "ft" / "omat24.extxyz", [(-3.0, -3.0 - SR - 0.1)],
                   symbols=("Sr", "Nd"))  # fmt: skip
    config = tmp_path / "config"
    config.mkdir()
    sections = {
        "variants": {
            "zero": {"method": "zero_shot"},
            "ft": {"method": "standard", "data": "perovs_dopants"},
            "run_label": "test",
        },
        "evaluation": {"test_sets": ["mptrj", "perovs_dopants", "omat24"]},
        "baselines": {"run_label": "test"},
        "dataset": {"name": "Perovs-Dopants"},
        "reference": {"mptrj": {"name": "MPtrj"}, "omat24": {"name": "OMat24"}},
    }
    for name, content in sections.items():
        (config / f"{name}.json").write_text(json.dumps(content))
    (tmp_path / "foundation.json").write_text(json.dumps({"name": "MACE-MP-0b3"}))
    out = tmp_path / "metrics"
    fit_file = _alignment_fit(tmp_path)
    metrics.main(
        ["tables", *_prediction_flags(predictions), "--models", "zero", "ft",
         "--variants-config", str(config / "variants.json"),
         "--evaluation-config", str(config / "evaluation.json"),
         "--baselines-config", str(config / "baselines.json"),
         "--dataset-config", str(config / "dataset.json"),
         "--reference-config", str(config / "reference.json"),
         "--foundation-info", str(tmp_path / "foundation.json"),
         "--energy-alignment", str(fit_file), "--out-dir", str(out)]
    )  # fmt: skip
    table = pd.read_csv(out / "tableA1.csv").set_index(["model", "test_set"])
    cell = table.loc[("zero", "perovs_dopants")]
    assert (cell["model_energy_scale"], cell["label_energy_scale"]) == ("VASP", "CP2K")
    assert cell["energy_alignment"] == "aligned"
    assert cell["energy_mae_ev_per_atom"] == pytest.approx((0.4 / 2 + 0.2 / 2) / 2, abs=1e-9)
    assert cell["energy_mae_raw_ev_per_atom"] == pytest.approx(
        ((SR + TI + 0.4) / 2 + (SR + TI - 0.2) / 2) / 2
    )
    cell = table.loc[("ft", "mptrj")]
    assert (cell["model_energy_scale"], cell["label_energy_scale"]) == ("CP2K", "VASP")
    assert cell["energy_alignment"] == "aligned"
    assert cell["energy_mae_ev_per_atom"] == pytest.approx(0.2 / 2, abs=1e-9)
    for key, value in ((("zero", "mptrj"), 0.6 / 2), (("ft", "perovs_dopants"), 0.2 / 2)):
        assert table.loc[key, "energy_alignment"] == "raw"
        assert table.loc[key, "energy_mae_ev_per_atom"] == pytest.approx(value)
        assert table.loc[key, "energy_mae_raw_ev_per_atom"] == pytest.approx(value)
    cell = table.loc[("ft", "omat24")]
    assert cell["energy_alignment"] == "not aligned: element(s) Nd not covered"
    assert math.isnan(cell["energy_mae_ev_per_atom"])
    assert cell["energy_mae_raw_ev_per_atom"] == pytest.approx((SR + 0.1) / 2)
    # forces untouched, and the markdown says which cells are aligned and with which fit
    markdown = (out / "tableA1.md").read_text()
    assert "| zero | zero-shot | Perovs-Dopants | 2/2 | VASP → CP2K | 0.150† |" in markdown
    assert "| ft | standard | OMat24 | 1/1 | CP2K → VASP | n/a‡ |" in markdown
    assert "† aligned: zero on Perovs-Dopants (VASP → CP2K), ft on MPtrj (CP2K → VASP)" in markdown
    assert f"Fit ({fit_file.with_suffix('.csv')}): 4 frames of synthetic" in markdown
    per_substituent = pd.read_csv(out / "per_substituent.csv").set_index(["model", "test_set"])
    zr = per_substituent.loc[("zero", "perovs_dopants")]
    assert zr["energy_alignment"] == "aligned"
    assert zr["energy_mae_ev_per_atom"] == pytest.approx(0.15, abs=1e-9)


def test_aligned_energy_direction_by_hand():

    fit = alignment_fit.fit_offsets([{"Sr": 1}, {"Ti": 1}], [SR, TI])
    collected = errors.collect(
        [_frame(["Sr", "Ti"], -10.0, -10.0 + SR + TI + 0.5, [[0.0] * 3] * 2, [[0.0] * 3] * 2)]
    )
    # VASP-scale prediction on CP2K labels: subtract 2300 -> error 0.5 eV / 2 atoms
    vasp_on_cp2k = errors.EnergyScales("VASP", "CP2K", fit)
    assert errors.energy_maes(collected, vasp_on_cp2k)["energy_mae_ev_per_atom"] == pytest.approx(
        0.25
    )
    # the same numbers read as a CP2K-scale prediction on VASP labels: add 2300 -> 4600.5 / 2
    cp2k_on_vasp = errors.EnergyScales("CP2K", "VASP", fit)
    assert errors.energy_maes(collected, cp2k_on_vasp)["energy_mae_ev_per_atom"] == pytest.approx(
        (2 * (SR + TI) + 0.5) / 2
    )


def test_baseline_rows_carry_their_label_and_declared_energy_scale():
    from workflow_scripts.analysis import energy_alignment

    variants = {"zero": {"method": "zero_shot"}}
    baselines = {
        "sevennet-0": {"label": "SevenNet-0 (11Jul2024)", "energy_scale": "VASP"},
        "cp2k-model": {"label": "in-house CP2K model", "energy_scale": "CP2K"},
    }
    rows = metrics.model_rows(
        ["zero", "sevennet-0", "cp2k-model"], variants, {}, "MACE-MP-0b3", baselines
    )
    assert [r["base_model"] for r in rows] == [
        "MACE-MP-0b3", "SevenNet-0 (11Jul2024)", "in-house CP2K model"
    ]  # fmt: skip
    assert [r["method"] for r in rows] == ["zero-shot"] * 3
    scales = [
        energy_alignment.model_energy_scale(m, variants, "finetuned", baselines)
        for m in ("zero", "sevennet-0", "cp2k-model")
    ]
    assert scales == ["VASP", "VASP", "CP2K"]
