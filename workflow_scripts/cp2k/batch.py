"""MPtrj single points in batches: several structures per job, each in its own folder.

The CP2K-recomputed MPtrj subset (2,000 structures in the study) would be as many scheduler
jobs of minutes each. A batch job (rule ``cp2k_mptrj_single_point``, one per batch of
``dft.batch.single_points`` consecutive subset indices) runs them one after the other, each
exactly as a job of its own would (:func:`.run.run_task`), in its own calculation folder
``paths.CP2K_SINGLE_POINTS/{index}/`` with its own ``summary.json``:

- a structure whose summary is there, with the current settings hash and structure hash, is
  skipped: a rerun never redoes finished DFT (nor a failure for good). A summary from other
  settings or another structure is not trusted; the structure's folder then resumes or sets
  the other calculation aside (:mod:`.run`), without CP2K when it had finished;
- a physical failure (:mod:`.failures`) writes that structure's failed summary, and the batch
  goes on;
- a transient stop of one structure (killed CP2K, wall time on a run that progresses,
  custodian out of corrections) leaves it without a summary and the batch goes on with the
  others, then exits 1 without its listing: Snakemake/SLURM retry the batch, the retry skips
  what finished and resumes the stopped one. Going on is what makes a retry cheap (one
  stubborn structure does not hold the others back to the next retry); the job's exit status
  is the same as when failing fast, so the retry semantics do not change;
- an input that is a mistake (exit 2 of :func:`.run.run_task`) stops the batch at once (exit
  2): every structure would hit it;
- SIGTERM (scancel, wall time) ends the batch at once; CP2K is stopped, the folders resume.

Wall time: the structures still to compute share what is left of the job's runtime (the rule
asks for ``single_point_runtime_min`` x the batch's size, at most ``dft.batch.max_runtime_min``):
each gets ``(time left) / (structures left)`` as its CP2K wall time, so a quick one leaves
more to the next. When less than a minute is left, the rest are not started (transient: the
retry does them).

The batch's declared output, the listing ``paths.CP2K_SINGLE_POINT_BATCH``, names
every index with its summary path and status; what reads the single points (the MPtrj CP2K
labels, the failures check) takes the listings as inputs and reads the summaries they name.

CLI::

    python -m workflow_scripts.cp2k.batch single-points --structures S.extxyz \\
        --indices 20 21 ... 39 --root cp2k/mptrj_sp \\
        --listing cp2k/mptrj_sp/batch_1.json --settings dft.json \\
        --runtime-settings dft_runtime.json --threads 2 --walltime-min 2880
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import time
from pathlib import Path

from workflow_scripts.cli import setup_logging
from workflow_scripts.files import write_json

logger = logging.getLogger("workflow_scripts.cp2k.batch")
SUMMARY_NAME = "summary.json"
MIN_WALLTIME_S = 60  # as in :func:`.run.create_attempt`: no CP2K start with less left


class BatchStopped(RuntimeError):
    """Some structures of the batch stopped for a transient reason (a retry resumes them)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


# --- batch plan: which indices a batch holds -----------------------------------------------


def n_batches(total: int, size: int) -> int:
    return math.ceil(total / size) if total else 0


def batch_indices(batch: int, total: int, size: int) -> list[int]:
    """Subset indices of one batch: ``size`` consecutive ones, the last batch the rest."""
    if not 0 <= batch < n_batches(total, size):
        raise ValueError(f"no batch {batch}: {total} structures in batches of {size}")
    return list(range(batch * size, min((batch + 1) * size, total)))


def summary_path(root: Path | str, index: int) -> Path:
    return Path(root) / str(index) / SUMMARY_NAME


# --- listings: what a batch computed, read by the aggregations -------------------------------


def read_listing(path: Path | str) -> dict:
    return json.loads(Path(path).read_text())


def listed_summaries(paths) -> list[Path]:
    """Summary paths named by batch listings, in subset-index order."""
    points = [point for path in paths for point in read_listing(path)["points"]]
    return [Path(p["summary"]) for p in sorted(points, key=lambda p: p["index"])]


def expand_summaries(paths) -> list[Path]:
    """``summary.json`` paths as given; any other file is a batch listing, replaced by the
    summaries it names."""
    summaries = []
    for path in map(Path, paths):
        summaries += [path] if path.name == SUMMARY_NAME else listed_summaries([path])
    return summaries


# --- running a batch -------------------------------------------------------------------------


def load_summary(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, or cut short by a kill


def is_current(summary: dict | None, settings_hash: str, structure_hash: str) -> bool:
    """A summary of this very calculation: same settings, same structure."""
    return (
        summary is not None
        and summary.get("settings_hash") == settings_hash
        and summary.get("structure_hash") == structure_hash
    )


def run_point(
    index: int,
    atoms,
    workdir: Path,
    summary: Path,
    settings: dict,
    threads: int,
    deadline: float | None,
) -> int:
    """One single point, as its own job would run it (:func:`.run.run_task`); the exit code
    (0 summary written, 1 transient stop, 2 input mistake)."""
    from workflow_scripts.cp2k.run import run_task

    return run_task("single_point", workdir, summary, settings, threads, deadline, atoms=atoms)


def finished_points(frames: dict, root: Path | str, settings: dict) -> tuple[dict, list[int]]:
    """The listing points of the structures already computed at these settings (skipped),
    and the indices still to compute."""
    from workflow_scripts.cp2k.attempts import structure_hash
    from workflow_scripts.cp2k.inputs import settings_hash

    current = settings_hash(settings)
    points, pending = {}, []
    for index, atoms in sorted(frames.items()):
        path = summary_path(root, index)
        summary = load_summary(path)
        if is_current(summary, current, structure_hash(atoms)):
            points[index] = {"status": summary["status"], "ran": False}
            logger.info("%d: already %s (%s), skipped", index, summary["status"], path)
        else:
            pending.append(index)
    return points, pending


def run_batch(
    frames: dict,
    root: Path | str,
    settings: dict,
    threads: int = 1,
    deadline: float | None = None,
    clock=time.time,
) -> list[dict]:
    """Compute (or skip) each index of ``frames`` (index -> atoms with initial moments) in
    ``root/{index}/``. Returns the listing's points; raises :class:`BatchStopped` when a
    structure stopped for a transient reason (after trying the others) or an input is a
    mistake (at once)."""
    points, pending = finished_points(frames, root, settings)
    logger.info("%d of %d structures to compute: %s", len(pending), len(frames), pending)
    stopped = []
    for k, index in enumerate(pending):
        point_deadline = None
        if deadline is not None:
            left = deadline - clock()
            if left < MIN_WALLTIME_S:
                not_started = pending[k:]
                logger.error("batch wall time used up: %s not started", not_started)
                stopped += not_started
                for rest in not_started:
                    points[rest] = {"status": "not started", "ran": False}
                break
            share = max(left / (len(pending) - k), min(left, 2 * MIN_WALLTIME_S))
            point_deadline = clock() + share
        path = summary_path(root, index)
        path.unlink(missing_ok=True)  # another calculation's (as Snakemake removes outputs)
        code = run_point(index, frames[index], path.parent, path, settings, threads, point_deadline)
        if code == 2:
            raise BatchStopped(f"structure {index}: the CP2K input is a mistake (see above)", 2)
        summary = load_summary(path) if code == 0 else None
        if summary is None:
            logger.error("%d: stopped for a transient reason; the retry resumes it", index)
            stopped.append(index)
            points[index] = {"status": "stopped", "ran": True}
            continue
        points[index] = {"status": summary["status"], "ran": True}
        logger.info("%d: %s", index, summary["status"])
    listing = [
        {"index": index, "summary": str(summary_path(root, index)), **points[index]}
        for index in sorted(frames)
    ]
    if stopped:
        raise BatchStopped(
            f"{len(stopped)} of {len(frames)} structures stopped for a transient reason "
            f"(indices {stopped}); the others are done. A retry or rerun resumes them."
        )
    return listing


def read_frames(structures: Path | str, indices: list[int]) -> dict:
    """index -> atoms (with initial moments) of the subset file, read once."""
    from ase.io import read

    from workflow_scripts.cp2k.inputs import InputError, with_initial_moments

    frames = read(structures, index=":")
    missing = [i for i in indices if not 0 <= i < len(frames)]
    if missing:
        raise InputError(f"{structures}: no frames {missing} (the file has {len(frames)})")
    return {i: with_initial_moments(frames[i]) for i in indices}


def write_listing(path: Path | str, batch: dict) -> None:
    write_json(path, batch, indent=1, atomic=True)


def main(argv=None) -> int:
    from workflow_scripts.cp2k.inputs import InputError
    from workflow_scripts.cp2k.run import (
        _terminate_on_sigterm,
        add_launch_arguments,
        runtime_settings,
    )

    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.cp2k.batch")
    sub = parser.add_subparsers(dest="command", required=True)
    points = sub.add_parser("single-points", help="a batch of MPtrj single points")
    points.add_argument("--structures", required=True, help="the CP2K subset's extxyz")
    points.add_argument("--indices", type=int, nargs="+", required=True)
    points.add_argument("--root", required=True, help="folder of the {index}/ folders")
    points.add_argument("--listing", required=True, help="batch listing JSON (the output)")
    add_launch_arguments(points)
    args = parser.parse_args(argv)
    setup_logging()
    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    started = time.time()
    try:
        settings = runtime_settings(
            args.settings, args.runtime_settings, args.mpi_launcher, args.mpi_ranks
        )
        frames = read_frames(args.structures, args.indices)
    except (InputError, KeyError) as error:
        logger.error("cannot build the CP2K inputs: %s", error)
        return 2
    deadline = None
    if args.walltime_min:
        deadline = started + 60 * (args.walltime_min - settings["walltime_margin_min"])
    try:
        listing = run_batch(frames, args.root, settings, args.threads, deadline)
    except BatchStopped as error:
        logger.error("%s", error)
        return error.exit_code
    write_listing(
        args.listing,
        {"structures": args.structures, "indices": args.indices, "points": listing},
    )
    failed = [p["index"] for p in listing if p["status"] == "failed"]
    logger.info(
        "%d structures: %d computed, %d skipped (done before), %d failed for good %s",
        len(listing),
        sum(p["ran"] for p in listing),
        sum(not p["ran"] for p in listing),
        len(failed),
        failed,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
