"""OMat24 ``.aselmdb`` shards (ASE databases in LMDB files, read with ase-db-backends) ->
seeded random train and test subsets as extxyz with mace-torch's keys.

OMat24 rows hold energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign, Voigt) on a
single-point calculator; they are written unchanged as REF_energy, REF_forces, REF_stress.
The subsets are drawn by row over all shards (sorted by path): test first, then train from
the remaining rows, so no row is in both. OMat24 has several rattled or MD frames per parent
structure, so train and test can share parents; the test subset is only used to evaluate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def shard_files(source: Path) -> list[Path]:
    """One ``.aselmdb`` file, or every ``*.aselmdb`` below a folder (sorted)."""
    source = Path(source)
    if source.is_file():
        return [source]
    files = sorted(source.rglob("*.aselmdb"))
    if not files:
        raise FileNotFoundError(f"no .aselmdb files in {source}")
    return files


def _connect(path: Path):
    import ase.db

    return ase.db.connect(str(path), type="aselmdb", readonly=True, use_lock_file=False)


def _row_ids(db) -> list[int]:
    ids = getattr(db, "ids", None)
    return list(ids) if ids is not None else [row.id for row in db.select(include_data=False)]


def _voigt(stress) -> np.ndarray:
    """Voigt (xx yy zz yz xz xy) from a 6-vector or a 3x3 matrix."""
    s = np.asarray(stress, dtype=float)
    if s.shape == (3, 3):
        return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    if s.shape != (6,):
        raise ValueError(f"stress of shape {s.shape}: expected (6,) or (3, 3)")
    return s


def row_to_frame(row, name: str, source: str):
    """An OMat24 row as Atoms with REF_* labels (the calculator is dropped)."""
    atoms = row.toatoms()
    frame = atoms.copy()
    frame.info = {
        "REF_energy": float(row.energy),
        "REF_stress": _voigt(row.stress),
        "config_type": name,
        "dataset": name,
        "source": source,
    }
    for key, value in row.key_value_pairs.items():
        if isinstance(value, str | int | float | bool):
            frame.info.setdefault(key, value)
    frame.arrays["REF_forces"] = np.asarray(row.forces, dtype=float)
    return frame


def ingest(
    source: Path,
    train_out: Path,
    test_out: Path,
    name: str,
    train_size: int,
    test_size: int,
    seed: int,
) -> tuple[int, int, int]:
    """Write the subsets; returns (rows available, train rows, test rows)."""
    import ase.io

    shards = []
    for path in shard_files(source):
        db = _connect(path)
        shards.append((path, db, _row_ids(db)))
    sizes = np.array([len(ids) for _, _, ids in shards])
    total = int(sizes.sum())
    if train_size + test_size > total:
        raise ValueError(f"train_size + test_size = {train_size + test_size} > {total} OMat24 rows")
    order = np.random.default_rng(seed).permutation(total)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    root = Path(source) if Path(source).is_dir() else Path(source).parent
    for out, chosen in ((test_out, order[:test_size]), (train_out, order[test_size:][:train_size])):
        frames = []
        for index in np.sort(chosen):
            shard = int(np.searchsorted(starts, index, side="right") - 1)
            path, db, ids = shards[shard]
            row_id = ids[index - starts[shard]]
            frames.append(
                row_to_frame(db.get(id=row_id), name, f"{path.relative_to(root)}:{row_id}")
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(str(out), frames, format="extxyz")
    return total, train_size, test_size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.reference.omat24")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help=".aselmdb shards -> train.extxyz + test.extxyz")
    p.add_argument("--source", type=Path, required=True, help=".aselmdb file or folder")
    p.add_argument("--settings", type=Path, required=True, help="the reference settings (JSON)")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = json.loads(args.settings.read_text())["omat24"]
    total, n_train, n_test = ingest(
        args.source,
        args.train,
        args.test,
        settings["name"],
        settings["train_size"],
        settings["test_size"],
        settings["seed"],
    )
    print(
        f"{total} {settings['name']} rows: {n_train} train, {n_test} test (seed {settings['seed']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
