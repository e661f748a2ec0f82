"""The data set artefact: splits and isolated atoms copied byte for byte, one frames.csv row per
frame with its energy and max force, a card with counts and units, sha256sum-compatible
checksums, identical bytes on a rerun, and inputs it cannot use named in the error."""

import csv
import hashlib
import json

import ase.io
import numpy as np
import pytest
from ase import Atoms

from workflow_scripts import dataset_card
from workflow_scripts.cp2k.inputs import dft_settings

PROVENANCE = {"cp2k_version": "CP2K version 2023.1", "settings_hash": "afa8b029b8e6"}
SPLITS = {"train": [0, 1, 2], "valid": [3], "test": [4, 5]}  # relaxation frames per split
RUN_LABEL = "demo (toy size, stand-in reference data and foundation model)"


REQUIRED_FILES = [f for f in dataset_card.FILES if f not in dataset_card.OPTIONAL_FILES]


def _relaxation_frame(k):
    """A frame with the info keys cp2k.labelled_frames.relaxation_frames writes."""
    rng = np.random.default_rng(k)
    defect, substituent, site = [
        ("sub_Zr_on_B", "Zr", "B"),
        ("vac_A", "vacancy", "A"),
    ][k % 2]
    atoms = Atoms("SrTiO3SrTiO3", positions=rng.random((10, 3)) * 3.9, pbc=True)
    atoms.cell = np.diag([7.8, 3.9, 3.9])
    atoms.info.update(
        host="SrTiO3",
        defect=defect,
        substituent=substituent,
        site=site,
        config_type="Perovs-Dopants",
        dataset="Perovs-Dopants",
        **PROVENANCE,
        REF_energy=-6622.2 - 0.0123456789 * k,
        REF_stress=rng.normal(size=6) * 0.01,
        step=k // 2,
        scf_converged=True,
    )
    if k != 5:  # a frame without relaxation_status: its column stays empty
        atoms.info["relaxation_status"] = "converged"
    atoms.arrays["REF_forces"] = rng.normal(size=(10, 3))
    return atoms


def _isolated_atom(symbol, energy):
    atom = Atoms(symbol, positions=[[3.5, 3.5, 3.5]], cell=np.eye(3) * 7.0, pbc=False)
    atom.info.update(
        config_type="IsolatedAtom",
        dataset="Perovs-Dopants",
        multiplicity=3,
        **PROVENANCE,
        REF_energy=energy,
        step=0,
        scf_converged=True,
    )
    atom.arrays["REF_forces"] = np.array([[0.01, 0.06, -0.15]])
    return atom


@pytest.fixture
def inputs(tmp_path):
    src = tmp_path / "dataset"
    src.mkdir()
    energies = {"O": -431.5024319282078, "Sr": -830.1, "Ti": -1576.5883601969688, "Zr": -1270.0}
    atoms = [_isolated_atom(symbol, energy) for symbol, energy in energies.items()]
    paths = {"isolated_atoms": src / "isolated_atoms.extxyz"}
    ase.io.write(paths["isolated_atoms"], atoms, format="extxyz")
    for split, indices in SPLITS.items():
        frames = [_relaxation_frame(k) for k in indices]
        paths[split] = src / f"{split}.extxyz"
        ase.io.write(paths[split], (atoms if split == "train" else []) + frames, format="extxyz")
    paths["dft"] = tmp_path / "config" / "dft.json"
    paths["dft"].parent.mkdir()
    paths["dft"].write_text(json.dumps(dft_settings({}), indent=1, sort_keys=True))
    paths["dataset"] = tmp_path / "config" / "dataset.json"
    split = {"mode": "frame", "fractions": [0.4, 0.1, 0.5], "seed": 0}
    settings = {"name": "Perovs-Dopants", "run_label": RUN_LABEL, "split": split}
    paths["dataset"].write_text(json.dumps(settings))
    return paths


def _argv(paths, out_dir):
    argv = [f"--{name.replace('_', '-')}={paths[name]}" for name in REQUIRED_FILES]
    return argv + [
        f"--dft-settings={paths['dft']}",
        f"--dataset-settings={paths['dataset']}",
        "--name=Perovs-Dopants",
        f"--out-dir={out_dir}",
    ]


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_folder_loads_back_with_its_counts_energies_and_checksums(tmp_path, inputs):
    out = tmp_path / "results" / "dataset" / "Perovs-Dopants"
    assert dataset_card.main(_argv(inputs, out)) == 0

    rows = _read_csv(out / "frames.csv")
    originals = {name: ase.io.read(inputs[name], ":") for name in REQUIRED_FILES}
    assert len(rows) == sum(len(frames) for frames in originals.values()) == 14
    for name, frames in originals.items():
        assert (out / f"{name}.extxyz").read_bytes() == inputs[name].read_bytes()
        assert len(ase.io.read(out / f"{name}.extxyz", ":")) == len(frames)
        mine = [row for row in rows if row["split"] == name]
        assert [int(row["index"]) for row in mine] == list(range(len(frames)))
        for row, atoms in zip(mine, frames, strict=True):
            energy = atoms.info["REF_energy"]
            max_force = np.sqrt((atoms.arrays["REF_forces"] ** 2).sum(axis=1)).max()
            assert float(row["energy_eV"]) == pytest.approx(energy, abs=1e-9)
            assert float(row["energy_per_atom_eV"]) == pytest.approx(energy / len(atoms))
            assert float(row["max_force_eV_per_A"]) == pytest.approx(max_force, rel=1e-12)
            assert row["formula"] == atoms.get_chemical_formula()
            assert int(row["n_atoms"]) == len(atoms)
            assert row["scf_converged"] == "True"
            assert row["cp2k_version"] == PROVENANCE["cp2k_version"]
            assert row["settings_hash"] == PROVENANCE["settings_hash"]

    train = [row for row in rows if row["split"] == "train"]
    assert train[0]["config_type"] == "IsolatedAtom"
    assert train[0]["source"] == "results/cp2k/atoms/O"
    assert train[0]["host"] == train[0]["defect"] == train[0]["relaxation_status"] == ""
    relaxation = train[4]
    assert (relaxation["host"], relaxation["defect"]) == ("SrTiO3", "sub_Zr_on_B")
    assert (relaxation["site"], relaxation["substituent"], relaxation["step"]) == ("B", "Zr", "0")
    assert relaxation["source"] == "results/cp2k/relax/SrTiO3/sub_Zr_on_B"
    assert relaxation["relaxation_status"] == "converged"
    last_test = [row for row in rows if row["split"] == "test"][-1]
    assert last_test["relaxation_status"] == ""  # the frame does not carry it: not invented

    sums = (out / "SHA256SUMS").read_text().splitlines()
    listed = {}
    for line in sums:
        digest, name = line.split("  ", 1)
        listed[name] = digest
    others = sorted(p.name for p in out.iterdir() if p.name != "SHA256SUMS")
    assert (
        sorted(listed)
        == others
        == [
            "README.md",
            "frames.csv",
            "isolated_atoms.extxyz",
            "test.extxyz",
            "train.extxyz",
            "valid.extxyz",
        ]
    )
    for name, digest in listed.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


def test_the_card_states_counts_units_settings_and_the_stand_in_notice(tmp_path, inputs):
    out = tmp_path / "Perovs-Dopants"
    assert dataset_card.main(_argv(inputs, out)) == 0
    card = (out / "README.md").read_text()
    assert card.startswith("# Perovs-Dopants\n")
    assert "Not the study's data" in card and RUN_LABEL in card
    # file | frames | IsolatedAtom | relaxation frames | atoms
    assert "| `train.extxyz` | 7 | 4 | 3 | 34 |" in card
    assert "| `valid.extxyz` | 1 | 0 | 1 | 10 |" in card
    assert "| `test.extxyz` | 2 | 0 | 2 | 20 |" in card
    assert "| `isolated_atoms.extxyz` | 4 | 4 | 0 | 4 |" in card
    # host | defect kind | relaxations | train | valid | test
    assert "| SrTiO3 | substitution on B | 1 | 2 | 0 | 1 |" in card
    assert "| SrTiO3 | vacancy on A | 1 | 1 | 1 | 1 |" in card
    for text in ("`REF_energy` | info | eV", "`REF_forces` | arrays | eV/Å", "eV/Å³"):
        assert text in card
    assert "Voigt order xx yy zz yz xz xy" in card and "positive = tensile" in card
    assert "IsolatedAtom" in card and "--energy_key=REF_energy" in card
    assert 'ase.io.read("train.extxyz", ":")' in card
    settings = dft_settings({})
    assert f"functional {settings['xc']}" in card
    assert f"plane-wave cutoff {settings['cutoff']} Ry" in card
    assert "CDLA-Permissive-2.0" in card and "sha256sum -c SHA256SUMS" in card


def test_a_rerun_writes_identical_bytes(tmp_path, inputs):
    out = tmp_path / "Perovs-Dopants"
    assert dataset_card.main(_argv(inputs, out)) == 0
    first = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert dataset_card.main(_argv(inputs, out)) == 0
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == first
    elsewhere = tmp_path / "other" / "Perovs-Dopants"
    assert dataset_card.main(_argv(inputs, elsewhere)) == 0
    assert {p.name: p.read_bytes() for p in sorted(elsewhere.iterdir())} == first


def test_an_empty_split_is_counted_as_empty(tmp_path, inputs):
    inputs["valid"].write_text("")  # dataset.split.fractions with valid 0
    out = tmp_path / "Perovs-Dopants"
    assert dataset_card.main(_argv(inputs, out)) == 0
    assert "| `valid.extxyz` | 0 | 0 | 0 | 0 |" in (out / "README.md").read_text()
    assert not [row for row in _read_csv(out / "frames.csv") if row["split"] == "valid"]


def test_a_missing_input_is_an_error_naming_it(tmp_path, inputs, caplog):
    inputs["test"].unlink()
    out = tmp_path / "Perovs-Dopants"
    assert dataset_card.main(_argv(inputs, out)) == 1
    assert f"{inputs['test']}: no such file" in caplog.text
    assert not out.exists()
    inputs["dft"].unlink()
    with pytest.raises(dataset_card.DatasetCardError, match="dft.json"):
        paths = {name: inputs[name] for name in REQUIRED_FILES if name != "test"}
        paths["test"] = inputs["valid"]
        dataset_card.build_artefact(paths, inputs["dft"], "Perovs-Dopants", out)


def test_a_frame_without_ref_energy_is_an_error_naming_the_file_and_frame(tmp_path, inputs, caplog):
    frames = ase.io.read(inputs["valid"], ":") + [_relaxation_frame(6)]
    del frames[1].info["REF_energy"]
    ase.io.write(inputs["valid"], frames, format="extxyz")
    out = tmp_path / "Perovs-Dopants"
    assert dataset_card.main(_argv(inputs, out)) == 1
    assert f"{inputs['valid']}: frame 1 has no REF_energy" in caplog.text
    assert not out.exists()  # every input is checked before anything is written
