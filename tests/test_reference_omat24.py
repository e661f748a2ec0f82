"""OMat24 ingestion from .aselmdb files written by ase-db-backends."""

import json

import ase.db
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from workflow_scripts.reference import omat24


def row_atoms(i):
    atoms = Atoms("SrTiO3" if i % 2 else "CsPbBr3", cell=np.eye(3) * (3.9 + 0.01 * i), pbc=True)
    atoms.set_scaled_positions(
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=-30.0 - i,
        forces=np.full((5, 3), 0.01 * i),
        stress=np.array([1, 2, 3, 4, 5, 6]) * 1e-3 * i,
    )
    return atoms


@pytest.fixture
def shards(tmp_path):
    folder = tmp_path / "omat24" / "val"
    for shard, rows in (
        ("rattled-300/data.0000.aselmdb", range(0, 25)),
        ("aimd/data.0000.aselmdb", range(25, 40)),
    ):
        path = folder / shard
        path.parent.mkdir(parents=True, exist_ok=True)
        with ase.db.connect(str(path), type="aselmdb") as db:
            for i in rows:
                db.write(row_atoms(i), sid=f"row-{i}")
    return folder


def test_reads_aselmdb_written_by_ase_db_backends(tmp_path, shards):
    train, test = tmp_path / "train.extxyz", tmp_path / "test.extxyz"
    total, n_train, n_test = omat24.ingest(shards, train, test, "OMat24", 20, 8, seed=0)
    assert (total, n_train, n_test) == (40, 20, 8)
    train_frames, test_frames = ase.io.read(train, index=":"), ase.io.read(test, index=":")
    assert len(train_frames) == 20 and len(test_frames) == 8
    sids = [f.info["sid"] for f in train_frames + test_frames]
    assert len(set(sids)) == 28  # train and test disjoint
    for frame in train_frames + test_frames:
        i = int(frame.info["sid"].split("-")[1])
        assert frame.info["REF_energy"] == -30.0 - i
        np.testing.assert_allclose(frame.arrays["REF_forces"], 0.01 * i)
        np.testing.assert_allclose(frame.info["REF_stress"], np.arange(1, 7) * 1e-3 * i)
        np.testing.assert_allclose(frame.cell.array, np.eye(3) * (3.9 + 0.01 * i))
        assert frame.info["config_type"] == frame.info["dataset"] == "OMat24"
        assert frame.calc is None
    assert any(f.info["source"].startswith("aimd/") for f in train_frames + test_frames)


def test_seeded_and_single_file(tmp_path, shards):
    outputs = []
    for tag, seed in (("a", 1), ("b", 1), ("c", 2)):
        train, test = tmp_path / tag / "train.extxyz", tmp_path / tag / "test.extxyz"
        omat24.ingest(shards, train, test, "OMat24", 10, 5, seed=seed)
        outputs.append((train.read_bytes(), test.read_bytes()))
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2]
    single = shards / "aimd" / "data.0000.aselmdb"
    total, _, _ = omat24.ingest(
        single, tmp_path / "s1.extxyz", tmp_path / "s2.extxyz", "x", 10, 5, 0
    )
    assert total == 15
    with pytest.raises(ValueError, match="> 15"):
        omat24.ingest(single, tmp_path / "s1.extxyz", tmp_path / "s2.extxyz", "x", 10, 6, 0)
    with pytest.raises(FileNotFoundError, match="no .aselmdb"):
        omat24.shard_files(tmp_path / "a")


def test_stress_as_a_matrix_becomes_voigt():
    matrix = [[1, 6, 5], [6, 2, 4], [5, 4, 3]]
    np.testing.assert_array_equal(omat24._voigt(matrix), [1, 2, 3, 4, 5, 6])


def test_cli(tmp_path, shards):
    settings = tmp_path / "reference.json"
    settings.write_text(
        json.dumps(
            {"omat24": {"name": "OMat24-stand-in", "train_size": 6, "test_size": 4, "seed": 0}}
        )
    )
    train, test = tmp_path / "o" / "train.extxyz", tmp_path / "o" / "test.extxyz"
    argv = [
        "ingest",
        "--source",
        str(shards),
        "--settings",
        str(settings),
        "--train",
        str(train),
        "--test",
        str(test),
    ]
    assert omat24.main(argv) == 0
    assert [len(ase.io.read(p, index=":")) for p in (train, test)] == [6, 4]
    assert ase.io.read(test).info["dataset"] == "OMat24-stand-in"
