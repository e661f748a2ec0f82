"""Perovs-Dopants splits: 8:1:1 sizes, no leakage in trajectory mode, isolated atoms in train
only, unconverged frames dropped, identical files for the same seed."""

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms

from workflow_scripts import splits

LENGTHS = [12, 7, 23, 5, 16, 9, 14, 11, 8, 19]  # frames per trajectory (one unconverged each)


def _frame(host, defect, step, converged=True):
    atoms = Atoms("SrTiO3", positions=np.random.default_rng(step).random((5, 3)) * 3.9)
    atoms.cell = np.eye(3) * 3.9
    atoms.pbc = True
    atoms.info.update(
        REF_energy=-40.0 - 0.01 * step,
        REF_stress=np.full(6, 0.001 * step),
        host=host,
        defect=defect,
        step=step,
        scf_converged=converged,
        config_type="Perovs-Dopants",
    )
    atoms.arrays["REF_forces"] = np.full((5, 3), 0.1 * step)
    return atoms


@pytest.fixture
def inputs(tmp_path):
    files = []
    for k, n in enumerate(LENGTHS):
        path = tmp_path / "trajectories" / "SrTiO3" / f"sub_{k}.extxyz"
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = [_frame("SrTiO3", f"sub_{k}", step) for step in range(n)]
        frames.append(_frame("SrTiO3", f"sub_{k}", n, converged=False))
        ase.io.write(path, frames, format="extxyz")
        files.append(path)
    atoms = []
    for symbol in ("Sr", "Ti", "O"):
        atom = Atoms(symbol, positions=[[6, 6, 6]], cell=np.eye(3) * 12, pbc=False)
        atom.info.update(REF_energy=-100.0, config_type="IsolatedAtom")
        atom.arrays["REF_forces"] = np.zeros((1, 3))
        atoms.append(atom)
    isolated = tmp_path / "isolated_atoms.extxyz"
    ase.io.write(isolated, atoms, format="extxyz")
    return files, isolated


def _run(tmp_path, inputs, mode, seed=0, tag="a"):
    files, isolated = inputs
    outputs = {name: tmp_path / tag / f"{name}.extxyz" for name in splits.SPLITS}
    counts = splits.write_splits(files, isolated, outputs, mode, [0.8, 0.1, 0.1], seed)
    frames = {name: ase.io.read(path, index=":") for name, path in outputs.items()}
    return outputs, counts, frames


def test_split_sizes_are_within_one_frame_of_the_fractions():
    for n in range(5, 300):
        sizes = splits.split_sizes(n, [0.8, 0.1, 0.1])
        assert sum(sizes) == n
        assert all(abs(s - n * f) <= 1 for s, f in zip(sizes, [0.8, 0.1, 0.1], strict=True))
    assert splits.split_sizes(143, [8, 1, 1]) == [114, 14, 15]


def test_every_split_gets_a_frame_when_there_are_enough():
    # 7 frames at 8:1:1 round to 6/1/0; an empty test split crashed mace evaluation
    assert splits.split_sizes(7, [0.8, 0.1, 0.1]) == [5, 1, 1]
    assert splits.split_sizes(3, [0.8, 0.1, 0.1]) == [1, 1, 1]
    assert splits.split_sizes(2, [0.8, 0.1, 0.1]) == [1, 1, 0]
    assert splits.split_sizes(7, [0.9, 0.1, 0.0]) == [6, 1, 0]  # zero fraction stays empty


def test_too_few_trajectories_is_a_clear_error(tmp_path, inputs):
    files, isolated = inputs
    outputs = {name: tmp_path / f"{name}.extxyz" for name in splits.SPLITS}
    with pytest.raises(ValueError, match="would be empty: 35 usable frames in 2 trajectories"):
        splits.write_splits(files[:3:2], isolated, outputs, "trajectory", [0.8, 0.1, 0.1], 0)
    with pytest.raises(ValueError, match="valid, test would be empty"):
        splits.write_splits(files[:1], isolated, outputs, "trajectory", [0.8, 0.1, 0.1], 0)
    assert not outputs["train"].exists()  # nothing half-written
    # a zero fraction may stay empty
    counts = splits.write_splits(files[:2], isolated, outputs, "trajectory", [0.5, 0.5, 0.0], 0)
    assert counts == {"train": 3 + 12, "valid": 7, "test": 0}


def test_frame_split_sizes_and_isolated_atoms(tmp_path, inputs):
    _, counts, frames = _run(tmp_path, inputs, "frame")
    n = sum(LENGTHS)  # the unconverged frames are dropped
    train = [f for f in frames["train"] if f.info["config_type"] != "IsolatedAtom"]
    assert counts == {
        "train": len(train) + 3,
        "valid": len(frames["valid"]),
        "test": len(frames["test"]),
    }
    assert len(train) + len(frames["valid"]) + len(frames["test"]) == n
    for part, fraction in (("valid", 0.1), ("test", 0.1)):
        assert abs(len(frames[part]) - fraction * n) <= 1
    assert abs(len(train) - 0.8 * n) <= 1
    # isolated atoms: all of them, first, in train only
    assert [f.info["config_type"] for f in frames["train"][:3]] == ["IsolatedAtom"] * 3
    assert [f.get_chemical_symbols() for f in frames["train"][:3]] == [["Sr"], ["Ti"], ["O"]]
    for part in ("valid", "test"):
        assert all(f.info["config_type"] != "IsolatedAtom" for f in frames[part])
        assert all(len(f) > 1 for f in frames[part])
    # no frame twice, no unconverged frame, labels copied unchanged
    keys = [
        (f.info["defect"], f.info["step"]) for part in frames.values() for f in part if len(f) > 1
    ]
    assert len(keys) == len(set(keys)) == n
    assert all(f.info["scf_converged"] for part in frames.values() for f in part if len(f) > 1)
    some = frames["test"][0]
    assert some.info["REF_energy"] == pytest.approx(-40.0 - 0.01 * some.info["step"], abs=1e-12)
    np.testing.assert_allclose(some.arrays["REF_forces"], 0.1 * some.info["step"])


def test_trajectory_split_has_no_leakage(tmp_path, inputs):
    _, _, frames = _run(tmp_path, inputs, "trajectory")
    members = {
        part: {f.info["defect"] for f in part_frames if len(f) > 1}
        for part, part_frames in frames.items()
    }
    assert all(members.values())  # every split gets at least one trajectory
    assert not members["train"] & members["valid"]
    assert not members["train"] & members["test"]
    assert not members["valid"] & members["test"]
    assert len(set().union(*members.values())) == len(LENGTHS)
    n = sum(LENGTHS)
    for part, fraction in (("train", 0.8), ("valid", 0.1), ("test", 0.1)):
        size = sum(1 for f in frames[part] if len(f) > 1)
        assert abs(size - fraction * n) <= max(LENGTHS)
    assert sum(1 for f in frames["train"] if f.info["config_type"] == "IsolatedAtom") == 3


def test_trajectory_split_with_few_trajectories_fills_every_split():
    parts = splits.trajectory_split([10, 10, 10, 10, 10, 10], [0.8, 0.1, 0.1], seed=0)
    assert [len(p) for p in parts] == [4, 1, 1]
    assert sorted(np.concatenate(parts).tolist()) == list(range(6))


@pytest.mark.parametrize("mode", ["frame", "trajectory"])
def test_same_seed_same_files_other_seed_other_files(tmp_path, inputs, mode):
    first, _, _ = _run(tmp_path, inputs, mode, seed=3, tag="first")
    second, _, _ = _run(tmp_path, inputs, mode, seed=3, tag="second")
    other, _, _ = _run(tmp_path, inputs, mode, seed=4, tag="other")
    for name in splits.SPLITS:
        assert first[name].read_bytes() == second[name].read_bytes()
    assert any(first[n].read_bytes() != other[n].read_bytes() for n in splits.SPLITS)


def test_input_order_does_not_change_the_split(tmp_path, inputs):
    files, isolated = inputs
    a = {n: tmp_path / "a" / f"{n}.extxyz" for n in splits.SPLITS}
    b = {n: tmp_path / "b" / f"{n}.extxyz" for n in splits.SPLITS}
    splits.write_splits(files, isolated, a, "frame", [0.8, 0.1, 0.1], 0)
    splits.write_splits(files[::-1], isolated, b, "frame", [0.8, 0.1, 0.1], 0)
    assert all(a[n].read_bytes() == b[n].read_bytes() for n in splits.SPLITS)


def test_isolated_atom_inside_a_trajectory_is_rejected(tmp_path, inputs):
    files, isolated = inputs
    ase.io.write(files[0], ase.io.read(isolated, index=":"), format="extxyz", append=True)
    with pytest.raises(ValueError, match="isolated atom"):
        splits.write_splits(
            files, isolated, {n: tmp_path / n for n in splits.SPLITS}, "frame", [8, 1, 1], 0
        )


def test_cli(tmp_path, inputs):
    files, isolated = inputs
    settings = tmp_path / "dataset.json"
    settings.write_text(
        json.dumps(
            {"name": "x", "split": {"mode": "frame", "fractions": [0.8, 0.1, 0.1], "seed": 0}}
        )
    )
    out = {n: tmp_path / "cli" / f"{n}.extxyz" for n in splits.SPLITS}
    argv = ["--settings", str(settings), "--isolated-atoms", str(isolated)]
    argv += [a for n in splits.SPLITS for a in (f"--{n}", str(out[n]))] + [str(f) for f in files]
    assert splits.main(argv) == 0
    expected = splits.split_sizes(sum(LENGTHS), [0.8, 0.1, 0.1])  # [99, 12, 13]
    assert [len(ase.io.read(out[n], index=":")) for n in splits.SPLITS] == [
        expected[0] + 3,
        *expected[1:],
    ]


@pytest.mark.parametrize("mode", ["frame", "trajectory"])
def test_held_out_dopant_goes_whole_to_its_own_file_and_changes_no_other_split(
    tmp_path, inputs, mode
):
    files, isolated = inputs
    _, _, before = _run(tmp_path, (files[:-1], isolated), mode, tag="before")
    held = ase.io.read(files[-1], index=":")
    for atoms in held:
        atoms.info["substituent"] = "Pb"
    ase.io.write(files[-1], held, format="extxyz")
    outputs = {name: tmp_path / "after" / f"{name}.extxyz" for name in splits.SPLITS}
    outputs[splits.HELD_OUT] = tmp_path / "after" / "held_out.extxyz"
    counts = splits.write_splits(
        files, isolated, outputs, mode, [0.8, 0.1, 0.1], 0, held_out=["Pb"]
    )
    assert counts[splits.HELD_OUT] == LENGTHS[-1]  # the unconverged frame is dropped
    assert {a.info["defect"] for a in ase.io.read(outputs["held_out"], ":")} == {"sub_9"}
    for name in splits.SPLITS:  # byte for byte what the split was without the held-out dopant
        assert outputs[name].read_text() == (tmp_path / "before" / f"{name}.extxyz").read_text()
    assert len(before["test"]) == counts["test"]
    with pytest.raises(ValueError, match="no file to write their frames to"):
        splits.write_splits(
            files, isolated, {n: tmp_path / "x" / f"{n}.extxyz" for n in splits.SPLITS},
            mode, [0.8, 0.1, 0.1], 0, held_out=["Pb"],
        )  # fmt: skip
