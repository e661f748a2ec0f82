"""Perovs-Dopants trajectories -> train/valid/test extxyz (8:1:1 by default, seeded).

Two modes (config ``dataset.split.mode``):

- ``frame``: every frame is drawn at random, as in the papers (needed to reproduce their
  tables). Frames of one relaxation land in train and test alike, so test errors are
  optimistic: consecutive ionic steps are nearly the same structure.
- ``trajectory``: whole relaxations are assigned to splits (no leakage); split sizes then
  match the fractions only to within about one trajectory.

Isolated-atom frames (E0s) go to train only, first in the file. Frames whose SCF did not
converge (``scf_converged=F``) are dropped. Frames are copied as text, so labels are written
exactly as the trajectory stage wrote them. The same inputs and seed give identical files.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.reference.extxyz import RawFrame, is_isolated_atom, iter_raw_frames

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Trajectory:
    path: str
    frames: list[RawFrame]


def read_trajectory(path: Path | str) -> tuple[Trajectory, int]:
    """The usable frames of one trajectory file and the number of unconverged ones dropped."""
    kept, dropped = [], 0
    for frame in iter_raw_frames(path):
        info = frame.info()
        if info.get("scf_converged") is False:
            dropped += 1
            continue
        if is_isolated_atom(frame, info):
            raise ValueError(
                f"{path}: frame {frame.index} is an isolated atom, not a trajectory step"
            )
        kept.append(frame)
    return Trajectory(str(path), kept), dropped


def split_sizes(n: int, fractions) -> list[int]:
    """Sizes summing to ``n``, each within one of ``n * fraction`` (fractions normalised),
    except that every split with a positive fraction gets at least one frame when ``n``
    allows it (an empty test split would crash evaluation far downstream): the frame comes
    from the largest split, so with 8:1:1 sizes stay within one frame from n = 5 on."""
    weights = np.asarray(fractions, dtype=float) / float(np.sum(fractions))
    first = [int(round(n * w)) for w in weights[:-1]]
    sizes = [*first, n - sum(first)]
    for s in np.flatnonzero(weights > 0):
        largest = int(np.argmax(sizes))
        if sizes[s] == 0 and sizes[largest] > 1:
            sizes[s] += 1
            sizes[largest] -= 1
    return sizes


def frame_split(n_frames: int, fractions, seed: int) -> list[np.ndarray]:
    """Frame indices per split: a seeded permutation cut at :func:`split_sizes`."""
    order = np.random.default_rng(seed).permutation(n_frames)
    bounds = np.cumsum([0, *split_sizes(n_frames, fractions)])
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def trajectory_split(lengths, fractions, seed: int) -> list[np.ndarray]:
    """Trajectory indices per split. Trajectories are taken in a seeded random order, each to
    the split furthest below its share (relative to the share, ties to train, valid, test), so
    every split with a positive fraction gets a trajectory when there are enough of them."""
    lengths = np.asarray(lengths, dtype=float)
    weights = np.asarray(fractions, dtype=float) / float(np.sum(fractions))
    target = weights * lengths.sum()
    filled = np.zeros(len(weights))
    members: list[list[int]] = [[] for _ in weights]
    for t in np.random.default_rng(seed).permutation(len(lengths)):
        deficit = np.where(target > 0, (target - filled) / np.where(target > 0, target, 1), -np.inf)
        s = int(np.argmax(deficit))
        members[s].append(int(t))
        filled[s] += lengths[t]
    return [np.sort(np.asarray(m, dtype=int)) for m in members]


def split_frames(
    trajectories: list[Trajectory], mode: str, fractions, seed: int
) -> dict[str, list[RawFrame]]:
    if mode == "frame":
        frames = [f for traj in trajectories for f in traj.frames]
        parts = frame_split(len(frames), fractions, seed)
        return {name: [frames[i] for i in idx] for name, idx in zip(SPLITS, parts, strict=True)}
    if mode == "trajectory":
        parts = trajectory_split([len(t.frames) for t in trajectories], fractions, seed)
        return {
            name: [f for i in idx for f in trajectories[i].frames]
            for name, idx in zip(SPLITS, parts, strict=True)
        }
    raise ValueError(f"unknown split mode {mode!r} (frame | trajectory)")


def write_splits(
    trajectory_files: list[Path],
    isolated_atoms: Path,
    outputs: dict[str, Path],
    mode: str,
    fractions,
    seed: int,
) -> dict[str, int]:
    """Write train/valid/test; returns frames per split (train counts its isolated atoms)."""
    trajectories, dropped = [], 0
    for path in sorted(map(str, trajectory_files)):  # input order must not change the split
        trajectory, n_dropped = read_trajectory(path)
        trajectories.append(trajectory)
        dropped += n_dropped
    if not any(t.frames for t in trajectories):
        raise ValueError("no usable frames in the trajectories")
    atoms = list(iter_raw_frames(isolated_atoms))
    not_isolated = [f.index for f in atoms if not is_isolated_atom(f)]
    if not_isolated:
        raise ValueError(f"{isolated_atoms}: frames {not_isolated} are not isolated atoms")
    parts = split_frames(trajectories, mode, fractions, seed)
    empty = [name for name, w in zip(SPLITS, fractions, strict=True) if w > 0 and not parts[name]]
    if empty:
        n_frames = sum(len(t.frames) for t in trajectories)
        raise ValueError(
            f"split(s) {', '.join(empty)} would be empty: {n_frames} usable frames in "
            f"{len(trajectories)} trajectories cannot fill fractions {list(fractions)} in "
            f"{mode!r} mode; add defects or substituents"
            + (", or use dataset.split.mode: frame" if mode == "trajectory" else "")
        )
    parts["train"] = atoms + parts["train"]
    for name, frames in parts.items():
        outputs[name].parent.mkdir(parents=True, exist_ok=True)
        with open(outputs[name], "w", encoding="utf-8") as handle:
            handle.writelines(f.text for f in frames)
    counts = {name: len(frames) for name, frames in parts.items()}
    print(
        f"mode={mode} seed={seed}: {sum(len(t.frames) for t in trajectories)} frames of "
        f"{len(trajectories)} trajectories ({dropped} unconverged dropped) + {len(atoms)} "
        f"isolated atoms -> " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.splits")
    parser.add_argument("--settings", type=Path, required=True, help="results/config/dataset.json")
    parser.add_argument("--isolated-atoms", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("trajectories", type=Path, nargs="+", help="trajectory extxyz files")
    args = parser.parse_args(argv)
    split = json.loads(args.settings.read_text())["split"]
    write_splits(
        args.trajectories,
        args.isolated_atoms,
        {"train": args.train, "valid": args.valid, "test": args.test},
        split["mode"],
        split["fractions"],
        split["seed"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
