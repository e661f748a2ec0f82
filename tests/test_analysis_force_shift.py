"""Force-shift figures (Fig. 1, Fig. A1) against synthetic frames with known differences."""

import json
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
import yaml
from ase import Atoms

from workflow_scripts.analysis import force_shift
from workflow_scripts.analysis.periodic_table import (
    HUBBARD_U_EV,
    elements_with_u,
    table_position,
)

SHIFT = np.array([0.3, 0.0, 0.0])  # VASP − CP2K, every atom
MODEL_OFFSET = np.array([0.0, 0.0, 0.1])  # foundation model − VASP, every atom


def _frame(symbols, seed):
    rng = np.random.default_rng(seed)
    atoms = Atoms(symbols, cell=[4, 4, 4], pbc=True)
    n = len(atoms)
    atoms.positions = rng.uniform(0, 4, (n, 3))
    vasp = rng.normal(0, 1, (n, 3))
    atoms.arrays["VASP_forces"] = vasp
    atoms.arrays["REF_forces"] = vasp - SHIFT
    atoms.info["REF_energy"] = -10.0 * n
    atoms.info["VASP_energy"] = -10.5 * n
    return atoms


def _write_inputs(tmp_path: Path, frames, settings=None):
    reference = tmp_path / "cp2k_subset.extxyz"
    ase.io.write(reference, frames, format="extxyz")
    predicted = []
    for atoms in frames:
        copy = atoms.copy()
        copy.arrays["MACE_forces"] = atoms.arrays["VASP_forces"] + MODEL_OFFSET
        predicted.append(copy)
    predictions = tmp_path / "predictions.extxyz"
    ase.io.write(predictions, predicted, format="extxyz")
    settings_file = tmp_path / "analysis.json"
    settings_file.write_text(json.dumps({"run_label": "test run", **(settings or {})}))
    return reference, predictions, settings_file


def test_density_csv_holds_the_known_differences(tmp_path):
    frames = [_frame("SrTiO3", 0), _frame("FeO", 1)]
    reference, predictions, settings = _write_inputs(
        tmp_path, frames, {"force_shift": {"bins": 30, "range_quantile": 1.0}}
    )
    out = tmp_path / "figures" / "force_shift_density.png"
    force_shift.main(
        [
            "density",
            "--reference",
            str(reference),
            "--predictions",
            str(predictions),
            "--settings",
            str(settings),
            "--dataset-name",
            "MPtrj-stand-in",
            "--model-name",
            "foundation",
            "--out",
            str(out),
        ]
    )
    assert out.stat().st_size > 10_000
    summary = pd.read_csv(out.with_name("force_shift_density_summary.csv")).set_index("series")
    n_components = 3 * 7
    assert (summary["n_components"] == n_components).all()
    # VASP − CP2K is +0.3 on x and 0 on y, z
    assert summary.loc["VASP - CP2K", "mean_ev_per_a"] == pytest.approx(0.1)
    assert summary.loc["VASP - CP2K", "mae_ev_per_a"] == pytest.approx(0.1)
    assert summary.loc["VASP - CP2K", "rmse_ev_per_a"] == pytest.approx(np.sqrt(0.09 / 3))
    assert summary.loc["VASP - foundation", "mean_ev_per_a"] == pytest.approx(-0.1 / 3)
    assert summary.loc["CP2K - foundation", "mae_ev_per_a"] == pytest.approx(0.4 / 3)
    assert summary.loc["CP2K - foundation", "rmse_ev_per_a"] == pytest.approx(np.sqrt(0.1 / 3))
    assert (summary["n_outside_plot"] == 0).all()

    histograms = pd.read_csv(out.with_suffix(".csv"))
    shift = histograms[histograms["series"] == "VASP - CP2K"]
    assert shift["count"].sum() == n_components
    zero_bin = shift[(shift["bin_left_ev_per_a"] <= 0) & (shift["bin_right_ev_per_a"] > 0)]
    assert zero_bin["count"].item() == 14  # y and z of 7 atoms
    assert shift["count"].iloc[-1] == 7  # x of 7 atoms, at the right edge (+0.3)
    widths = shift["bin_right_ev_per_a"] - shift["bin_left_ev_per_a"]
    assert (shift["density_per_ev_per_a"] * widths).sum() == pytest.approx(1.0)
    # the force panel holds the VASP forces themselves
    vasp = histograms[histograms["series"] == "VASP force"]
    assert vasp["count"].sum() == n_components
    assert vasp["bin_right_ev_per_a"].max() == pytest.approx(
        max(np.abs(f.arrays["VASP_forces"]).max() for f in frames)
    )


def test_periodic_table_means_per_element(tmp_path):
    oxide = _frame("FeTiO3", 2)
    alloy = _frame("FeAl", 3)
    # per-atom difference vectors of exactly known length
    oxide.arrays["REF_forces"] = oxide.arrays["VASP_forces"] - np.array(
        [[0.3, 0.4, 0.0], [0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.3]]
    )
    alloy.arrays["REF_forces"] = alloy.arrays["VASP_forces"] - np.array(
        [[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]]
    )
    reference, _, settings = _write_inputs(tmp_path, [oxide, alloy])
    out = tmp_path / "force_shift_periodic_table.png"
    force_shift.main(
        [
            "periodic-table",
            "--reference",
            str(reference),
            "--settings",
            str(settings),
            "--dataset-name",
            "MPtrj-stand-in",
            "--out",
            str(out),
        ]
    )
    assert out.stat().st_size > 10_000
    table = pd.read_csv(out.with_suffix(".csv")).set_index("element")
    assert list(table.index) == ["O", "Al", "Ti", "Fe"]  # by atomic number
    assert table.loc["Fe", "mean_abs_force_diff_ev_per_a"] == pytest.approx((0.5 + 1.0) / 2)
    assert table.loc["O", "mean_abs_force_diff_ev_per_a"] == pytest.approx(0.6 / 3)
    assert table.loc["Ti", "mean_abs_force_diff_ev_per_a"] == pytest.approx(0.0)
    assert table.loc["Al", "mean_abs_force_diff_ev_per_a"] == pytest.approx(1.0)
    assert table["n_atoms"].to_dict() == {"O": 3, "Al": 1, "Ti": 1, "Fe": 2}
    # Fe has a U only in the oxide; Ti never (not in MP's U table)
    assert table.loc["Fe", "n_atoms_with_u"] == 1
    assert table["carries_hubbard_u"].to_dict() == {
        "O": False,
        "Al": False,
        "Ti": False,
        "Fe": True,
    }
    assert (table.loc["Fe", "table_row"], table.loc["Fe", "table_column"]) == (4, 8)


def test_mismatched_predictions_are_rejected(tmp_path):
    frames = [_frame("SrTiO3", 0)]
    reference, predictions, _ = _write_inputs(tmp_path, frames)
    moved = ase.io.read(predictions)
    moved.positions[0] += 0.5
    ase.io.write(predictions, moved, format="extxyz")
    with pytest.raises(ValueError, match="frame 0 differs"):
        force_shift.load_forces(reference, predictions)


def test_missing_vasp_labels_name_the_key(tmp_path):
    atoms = _frame("SrTiO3", 0)
    del atoms.arrays["VASP_forces"]
    path = tmp_path / "x.extxyz"
    ase.io.write(path, atoms, format="extxyz")
    with pytest.raises(KeyError, match="VASP_forces"):
        force_shift.load_forces(path)


def test_hubbard_u_table_is_materials_projects():
    from pymatgen.io import vasp

    mp_set = yaml.safe_load((Path(vasp.__file__).parent / "MPRelaxSet.yaml").read_text())
    assert mp_set["INCAR"]["LDAUU"]["O"] == HUBBARD_U_EV
    assert mp_set["INCAR"]["LDAUU"]["F"] == HUBBARD_U_EV
    assert elements_with_u(["Fe", "Ni", "F"]) == {"Fe", "Ni"}
    assert elements_with_u(["Fe", "Si"]) == set()
    assert elements_with_u(["Ti", "Sr", "O"]) == set()


@pytest.mark.parametrize(
    ("symbol", "position"),
    [
        ("H", (1, 1)),
        ("He", (1, 18)),
        ("O", (2, 16)),
        ("Fe", (4, 8)),
        ("La", (6, 3)),
        ("Nd", (9, 6)),
        ("Hf", (6, 4)),
        ("Pb", (6, 14)),
        ("Th", (10, 4)),
        ("Lr", (10, 17)),
    ],
)
def test_periodic_table_positions(symbol, position):
    assert table_position(symbol) == position
