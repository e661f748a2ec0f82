"""The demo's stand-in foundation: E0s on its labeller's scale from CP2K isolated atoms and the
energy-alignment fit (no training here; the pipeline test trains it)."""

import ast

import pytest
from ase import Atoms
from ase.io import write
from test_analysis_energy_alignment import DELTA, FULL_RANK, _frame

from workflow_scripts.analysis import energy_alignment as ea
from workflow_scripts.config import load_schema, validate_schema
from workflow_scripts.mace import plan as mace_plan
from workflow_scripts.mace.foundation import aligned_isolated_atom_e0s, standin_command

# CP2K isolated-atom energies (eV), as results/dataset/isolated_atoms.extxyz holds them
ATOM_CP2K = {"O": -431.5, "Ti": -1576.6, "Sr": -835.1, "Ba": -692.5, "Br": -363.6}


def isolated_atoms(tmp_path, elements):
    frames = []
    for element in elements:
        atoms = Atoms(element, positions=[[3.5, 3.5, 3.5]], cell=[7, 7, 7], pbc=False)
        atoms.info.update(REF_energy=ATOM_CP2K[element], config_type="IsolatedAtom")
        frames.append(atoms)
    path = tmp_path / "isolated_atoms.extxyz"
    write(path, frames)
    return path


def pool(tmp_path, formulas):
    path = tmp_path / "pool.extxyz"
    write(path, [_frame(formula) for formula in formulas])
    return path


@pytest.fixture
def alignment(tmp_path):
    reference = tmp_path / "cp2k_subset.extxyz"
    write(reference, [_frame(c) for c in FULL_RANK])
    out = tmp_path / "energy_alignment.csv"
    ea.main(["fit", "--reference", str(reference), "--out", str(out)])
    return out.with_suffix(".json")


def test_e0s_are_cp2k_atoms_moved_to_the_labeller_scale(tmp_path, alignment):
    e0s = aligned_isolated_atom_e0s(
        pool(tmp_path, [{"Sr": 1, "Ti": 1, "O": 3}, {"Ba": 1, "Br": 2}]),
        isolated_atoms(tmp_path, ATOM_CP2K),
        alignment,
    )
    # E_VASP-scale = E_CP2K + delta_Z, per atom of Z; Z 8 O, 22 Ti, 35 Br, 38 Sr, 56 Ba
    expected = {z: ATOM_CP2K[el] + DELTA[el] for z, el in
                [(8, "O"), (22, "Ti"), (35, "Br"), (38, "Sr"), (56, "Ba")]}  # fmt: skip
    assert e0s.keys() == expected.keys()
    for z, value in expected.items():
        assert e0s[z] == pytest.approx(value, abs=1e-9)
    # mace reads the flag with ast.literal_eval: a dict literal with integer keys
    mace_section = validate_schema(
        {"foundation_model": "stand-in"}, load_schema()["properties"]["mace"]
    )
    command = standin_command(tmp_path / "pool.extxyz", tmp_path / "work", mace_section, "cpu", e0s)
    flag = next(arg for arg in command if arg.startswith("--E0s="))
    parsed = ast.literal_eval(flag.removeprefix("--E0s="))
    assert parsed == pytest.approx(expected) and all(type(z) is int for z in parsed)
    default = standin_command(tmp_path / "pool.extxyz", tmp_path / "work", mace_section, "cpu")
    assert "--E0s=average" in default


def test_an_element_without_isolated_atom_or_offset_is_named(tmp_path, alignment):
    atoms = isolated_atoms(tmp_path, ["O", "Ti", "Sr"])  # no Ba, Br
    with pytest.raises(ValueError, match=r"no CP2K isolated atom for \['Ba', 'Br'\]"):
        aligned_isolated_atom_e0s(pool(tmp_path, [{"Ba": 1, "Br": 2}]), atoms, alignment)
    with_ni = {**ATOM_CP2K, "Ni": -1200.0}  # an isolated atom, but Ni is not in the fit
    frames = [Atoms(el, cell=[7, 7, 7]) for el in with_ni]
    for frame, energy in zip(frames, with_ni.values(), strict=True):
        frame.info["REF_energy"] = energy
    write(tmp_path / "with_ni.extxyz", frames)
    with pytest.raises(ValueError, match=r"offset not determined for \['Ni'\]"):
        aligned_isolated_atom_e0s(
            pool(tmp_path, [{"Ni": 1, "O": 1}]), tmp_path / "with_ni.extxyz", alignment
        )


def test_the_stand_in_waits_for_isolated_atoms_and_the_fit_only_when_it_uses_them():
    config = {"mace": {"foundation_model": "stand-in", "standin_foundation": {"e0s": "average"}}}
    assert mace_plan.foundation_inputs(config, "MPtrj-stand-in") == {
        "pool": "results/reference/MPtrj-stand-in/pool.extxyz"
    }
    config["mace"]["standin_foundation"]["e0s"] = "aligned_isolated_atoms"
    inputs = mace_plan.foundation_inputs(config, "MPtrj-stand-in")
    assert inputs["isolated_atoms"] == "results/dataset/isolated_atoms.extxyz"
    assert inputs["alignment"] == ea.FIT_JSON


def test_aligned_e0s_without_a_cp2k_subset_are_refused_before_any_job():
    from workflow_scripts.config import REPO_ROOT, ConfigError, load_config, validate_config

    config = load_config(REPO_ROOT / "demo" / "config.yaml")
    config["reference"]["mptrj"]["cp2k_subset_size"] = 0
    config["variants"] = {
        k: v for k, v in config["variants"].items() if v.get("data") != "mptrj_cp2k"
    }
    with pytest.raises(ConfigError, match=r"mace\.standin_foundation\.e0s.*cp2k_subset_size"):
        validate_config(config, REPO_ROOT)
    config["mace"]["standin_foundation"]["e0s"] = "average"
    validate_config(config, REPO_ROOT)
