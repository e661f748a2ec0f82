"""Farthest point sampling: exact greedy max-min picks, determinism, exclusions, replay CLI."""

import json

import ase.io
import fpsample
import numpy as np
import pytest
from ase import Atoms

from workflow_scripts.reference import fps


def plain_greedy_maxmin(points, n, start):
    """The textbook algorithm, written out independently of the module."""
    x = np.asarray(points, dtype=np.float64)
    picks = [start]
    nearest = np.full(len(x), np.inf)
    for _ in range(n - 1):
        nearest = np.minimum(nearest, ((x - x[picks[-1]]) ** 2).sum(axis=1))
        nearest[picks] = -1.0
        picks.append(int(np.argmax(nearest)))
    return np.array(picks)


def datasets():
    rng = np.random.default_rng(0)
    isotropic = rng.normal(size=(3000, 24)).astype(np.float32)
    centres = rng.normal(size=(25, 24)) * 4 + 30  # far from the origin: tests cancellation
    clustered = (centres[rng.integers(0, 25, 3000)] + rng.normal(size=(3000, 24)) * 0.05).astype(
        np.float32
    )
    duplicates = np.repeat(rng.normal(size=(50, 8)), 6, axis=0).astype(np.float32)
    grid = np.stack(np.meshgrid(np.arange(12), np.arange(12)), -1).reshape(-1, 2).astype(np.float32)
    return {
        "isotropic": isotropic,
        "clustered": clustered,
        "duplicates": duplicates,
        "grid (ties)": grid,
    }


@pytest.mark.parametrize("name", list(datasets()))
@pytest.mark.parametrize("group_rows", [16, 64, 1024])
def test_same_picks_as_the_plain_algorithm(name, group_rows):
    x = datasets()[name]
    n = min(200, len(x))
    for start in (0, 17):
        expected = plain_greedy_maxmin(x, n, start)
        np.testing.assert_array_equal(fps.fps_cpu(x, n, start, group_rows=group_rows), expected)
    np.testing.assert_array_equal(
        fps.greedy_maxmin_reference(x, n, 5), plain_greedy_maxmin(x, n, 5)
    )


def test_same_picks_as_fpsample():
    x = datasets()["isotropic"]
    np.testing.assert_array_equal(
        fps.fps_cpu(x, 150, 3), fpsample.fps_sampling(x, 150, start_idx=3)
    )


def test_torch_path_gives_the_same_picks():
    x = datasets()["clustered"]
    np.testing.assert_array_equal(
        fps.fps_torch(x, 100, 9, device="cpu"), plain_greedy_maxmin(x, 100, 9)
    )


def test_distinct_and_deterministic():
    x = datasets()["duplicates"]  # 50 distinct points, each 6 times: ties everywhere
    picks = fps.farthest_point_sampling(x, 300, start=4)
    assert len(picks) == len(set(picks.tolist())) == 300
    np.testing.assert_array_equal(picks, fps.farthest_point_sampling(x, 300, start=4))
    assert len({tuple(x[i]) for i in picks[:50]}) == 50  # every distinct point before any repeat
    assert not np.array_equal(picks, fps.farthest_point_sampling(x, 300, start=5))


def test_excluded_rows_are_never_picked():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    x[[3, 250, 499]] = 100.0 + np.arange(3)[:, None]  # far away: the first picks otherwise
    exclude = np.zeros(500, dtype=bool)
    exclude[[3, 250, 499]] = True
    assert 3 in plain_greedy_maxmin(x, 5, 0)
    picks = fps.farthest_point_sampling(x, 497, start=0, exclude=exclude)
    assert not set(picks.tolist()) & {3, 250, 499}
    assert sorted(picks.tolist()) == sorted(set(range(500)) - {3, 250, 499})
    keep = np.flatnonzero(~exclude)
    np.testing.assert_array_equal(picks[:50], keep[plain_greedy_maxmin(x[keep], 50, 0)])
    with pytest.raises(ValueError, match="excluded"):
        fps.farthest_point_sampling(x, 5, start=250, exclude=exclude)
    with pytest.raises(ValueError, match="cannot pick 498"):
        fps.farthest_point_sampling(x, 498, start=0, exclude=exclude)


def test_replay_selection_from_a_pool(tmp_path):
    rng = np.random.default_rng(2)
    frames, descriptors = [], []
    for i in range(40):
        if i in (5, 30):
            atoms = Atoms("O", positions=[[6, 6, 6]], cell=np.eye(3) * 12, pbc=False)
            atoms.info["config_type"] = "IsolatedAtom"
            descriptors.append(np.full(4, 50.0 + i))  # outliers: FPS would take them first
        else:
            atoms = Atoms(
                "SrO", positions=[[0, 0, 0], [1.3, 1.3, 1.3]], cell=np.eye(3) * 2.6, pbc=True
            )
            atoms.info["config_type"] = "MPtrj"
            descriptors.append(rng.normal(size=4))
        atoms.info["frame_id"] = f"f{i}"
        atoms.info["REF_energy"] = -float(i)
        frames.append(atoms)
    pool = tmp_path / "pool.extxyz"
    ase.io.write(pool, frames, format="extxyz")
    np.save(tmp_path / "pool.npy", np.asarray(descriptors, dtype=np.float32))
    settings = tmp_path / "reference.json"
    settings.write_text(
        json.dumps({"mptrj": {"replay_size": 12, "seed": 0}, "fps": {"device": "auto"}})
    )
    out = tmp_path / "replay_fps.extxyz"
    argv = ["replay", "--pool", str(pool), "--descriptors", str(tmp_path / "pool.npy")]
    assert fps.main([*argv, "--settings", str(settings), "--out", str(out), "--device", "cpu"]) == 0
    replay = ase.io.read(out, index=":")
    ids = [a.info["frame_id"] for a in replay]
    assert len(ids) == len(set(ids)) == 12
    assert "f5" not in ids and "f30" not in ids
    assert all(a.info["config_type"] == "MPtrj" for a in replay)
    keep = [i for i in range(40) if i not in (5, 30)]
    start = int(np.random.default_rng(0).choice(keep))
    expected = plain_greedy_maxmin(np.asarray(descriptors)[keep], 12, keep.index(start))
    assert ids == [f"f{keep[i]}" for i in expected]
    assert replay[0].info["REF_energy"] == -float(keep[expected[0]])
    np.save(tmp_path / "short.npy", np.zeros((39, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="39 rows but"):
        fps.select_replay(pool, tmp_path / "short.npy", out, 5, 0, "cpu")
