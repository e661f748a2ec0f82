"""Perovs-Dopants trajectories -> train/valid/test extxyz (8:1:1 by default, seeded).

Two modes (config ``dataset.split.mode``):

- ``frame``: every frame is drawn at random, as in the papers (needed to reproduce their
  tables). Frames of one relaxation land in train and test alike, so test errors are
  optimistic: consecutive ionic steps are nearly the same structure.
- ``trajectory``: whole relaxations are assigned to splits (no leakage); split sizes then
  match the fractions only to within about one trajectory.

Held-out substituents (``dataset.split.held_out_substituents``): their relaxations go whole to
``held_out.extxyz``, in no training, validation or test split (the screen's held-out dopants);
the other relaxations are split exactly as without them. Isolated-atom frames
(E0s) go to train only, first in the file. Frames whose SCF did not
converge (``scf_converged=F``) are dropped. Frames are copied as text, so labels are written
exactly as the trajectory stage wrote them. The same inputs and seed give identical files.

CP2K jobs that failed for good (:mod:`workflow_scripts.cp2k.failures`; ``--failures`` lists
them): a failed relaxation's frames (``relaxation_status=failed``) are left out and listed
(``dataset.failed_relaxations: skip``, the default) or split like the others (``include``).
A trajectory frame with an element whose isolated atom failed has no CP2K E0 to train with,
so every frame with that element is left out, with the element and the reason logged (one
failed atom costs the relaxations with that element, not the study: the failed fraction
limit of the failures check bounds it). An element with no E0 and no failed isolated-atom
job is an error.
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
HELD_OUT = "held_out"


@dataclass(frozen=True)
class Trajectory:
    path: str
    frames: list[RawFrame]
    failed: str = ""  # failure_kind of a relaxation that failed for good, else ""
    elements: frozenset[str] = frozenset()
    substituent: str = ""  # the defect's substituent ("vacancy" for a vacancy)


def read_trajectory(path: Path | str) -> tuple[Trajectory, int]:
    """The usable frames of one trajectory file and the number of unconverged ones dropped."""
    kept, dropped, failed, elements, substituent = [], 0, "", set(), ""
    for frame in iter_raw_frames(path):
        info = frame.info()
        substituent = substituent or str(info.get("substituent", ""))
        if info.get("relaxation_status") == "failed":
            failed = str(info.get("failure_kind") or "failed")
        if info.get("scf_converged") is False:
            dropped += 1
            continue
        if is_isolated_atom(frame, info):
            raise ValueError(
                f"{path}: frame {frame.index} is an isolated atom, not a trajectory step"
            )
        if not kept:
            elements = frame_elements(frame, info)  # one composition per relaxation
        kept.append(frame)
    return Trajectory(str(path), kept, failed, frozenset(elements), substituent), dropped


def frame_elements(frame: RawFrame, info: dict | None = None) -> set[str]:
    """Chemical symbols of one frame (the ``species`` column of its Properties)."""
    info = frame.info() if info is None else info
    column = 0
    fields = str(info.get("Properties", "species:S:1:pos:R:3")).split(":")
    for name, _, width in zip(fields[::3], fields[1::3], fields[2::3], strict=True):
        if name == "species":
            break
        column += int(width)
    else:
        raise ValueError(f"frame {frame.index}: no species column in {fields}")
    atom_lines = frame.text.split("\n")[2 : 2 + frame.natoms]
    return {line.split()[column] for line in atom_lines}


def drop_failed(
    trajectories: list[Trajectory],
    e0_elements: set[str],
    failures: list[dict],
    failed_relaxations: str = "skip",
) -> list[Trajectory]:
    """The trajectories the split uses; what is left out, and why, is printed.

    ``failures``: rows of the CP2K failures CSVs (:mod:`workflow_scripts.cp2k.failures`)."""
    failed_atoms = {
        row["element"]: f"{row['failure_kind']}: {row['failure_reason']}"
        for row in failures
        if row["job"] == "isolated_atom"
    }
    failed_relax = [row for row in failures if row["job"] == "relax"]
    if failed_relax:
        print(
            f"{len(failed_relax)} relaxation(s) failed for good (dataset.failed_relaxations: "
            f"{failed_relaxations}):"
        )
        for row in failed_relax:
            print(
                f"  {row['host']}/{row['defect']}: {row['failure_kind']}, "
                f"{row['frames_kept']} frame(s) kept ({row['failure_reason']})"
            )
    kept, no_e0 = [], {}
    for trajectory in trajectories:
        if not trajectory.frames:
            print(f"  {trajectory.path}: no usable frames")
            continue
        if trajectory.failed and failed_relaxations == "skip":
            print(
                f"  {trajectory.path}: skipped, a failed relaxation ({trajectory.failed}), "
                f"{len(trajectory.frames)} frame(s)"
            )
            continue
        missing = sorted(trajectory.elements - e0_elements)
        unexplained = [el for el in missing if el not in failed_atoms]
        if unexplained:
            raise ValueError(
                f"{trajectory.path}: no isolated-atom E0 for {', '.join(unexplained)} and no "
                "failed isolated-atom CP2K job for it in the failures lists"
            )
        if missing:
            for element in missing:
                no_e0.setdefault(element, []).append(trajectory)
            continue
        kept.append(trajectory)
    for element, dropped in sorted(no_e0.items()):
        print(
            f"left out {sum(len(t.frames) for t in dropped)} frames of {len(dropped)} "
            f"trajectories with {element}: its isolated atom failed ({failed_atoms[element]}), "
            "so there is no CP2K E0 for it: " + ", ".join(t.path for t in dropped)
        )
    return kept


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
    trajectories: list[Trajectory], mode: str, fractions, seed: int, held_out=()
) -> dict[str, list[RawFrame]]:
    """Frames per split; relaxations of ``held_out`` substituents go whole to a fourth part,
    ``held_out``, and the others are split as if they were all there is (so holding a new
    dopant out changes no frame of train, valid or test)."""
    if held_out:
        kept = [t for t in trajectories if t.substituent not in held_out]
        parts = split_frames(kept, mode, fractions, seed)
        parts[HELD_OUT] = [f for t in trajectories if t.substituent in held_out for f in t.frames]
        return parts
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
    failures: list[dict] | None = None,
    failed_relaxations: str = "skip",
    held_out=(),
) -> dict[str, int]:
    """Write train/valid/test; returns frames per split (train counts its isolated atoms).
    ``failures``: rows of the CP2K failures CSVs; see the module docstring."""
    trajectories, dropped = [], 0
    for path in sorted(map(str, trajectory_files)):  # input order must not change the split
        trajectory, n_dropped = read_trajectory(path)
        trajectories.append(trajectory)
        dropped += n_dropped
    atoms = list(iter_raw_frames(isolated_atoms))
    not_isolated = [f.index for f in atoms if not is_isolated_atom(f)]
    if not_isolated:
        raise ValueError(f"{isolated_atoms}: frames {not_isolated} are not isolated atoms")
    e0_elements = set().union(*(frame_elements(f) for f in atoms)) if atoms else set()
    trajectories = drop_failed(trajectories, e0_elements, failures or [], failed_relaxations)
    if not any(t.frames for t in trajectories):
        raise ValueError("no usable frames in the trajectories")
    parts = split_frames(trajectories, mode, fractions, seed, set(held_out))
    held = parts.pop(HELD_OUT, [])
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
    if HELD_OUT in outputs:
        parts[HELD_OUT] = held
    elif held:
        raise ValueError("held-out substituents given but no file to write their frames to")
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
    parser.add_argument("--settings", type=Path, required=True, help="the dataset settings (JSON)")
    parser.add_argument("--isolated-atoms", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--held-out", type=Path, help="frames of held-out substituents")
    parser.add_argument(
        "--failures", type=Path, action="append", default=[], help="a CP2K failures CSV (repeat)"
    )
    parser.add_argument("trajectories", type=Path, nargs="+", help="trajectory extxyz files")
    args = parser.parse_args(argv)
    from workflow_scripts.cp2k.failures import read_failures

    settings = json.loads(args.settings.read_text())
    split = settings["split"]
    write_splits(
        args.trajectories,
        args.isolated_atoms,
        {"train": args.train, "valid": args.valid, "test": args.test}
        | ({HELD_OUT: args.held_out} if args.held_out else {}),
        split["mode"],
        split["fractions"],
        split["seed"],
        read_failures(args.failures),
        settings.get("failed_relaxations", "skip"),
        split.get("held_out_substituents", []),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
