"""CP2K jobs that fail for good: classification, failed summaries, ``failures.csv``.

A CP2K job (:mod:`.run`) ends in one of three ways:

- **done**: ``summary.json`` with ``status`` converged | max_iter | done; exit 0.
- **failed for a physical reason** (this module): running it again would fail the same way.
  ``summary.json`` gets ``status: failed``, ``failure_kind``, ``failure_reason`` and the frames
  kept (``n_frames``); the job exits 0, so the workflow goes on without it and one failed job
  costs one row of the data set, not the study. Kinds:

  ``scf_exhausted``  the SCF did not converge at the top rung of the SCF ladder (:mod:`.scf`).
  ``no_basis``       no basis of the preferred tiers with a matching potential for an element
                     (:class:`~workflow_scripts.cp2k.basis.NoBasisError`, at input build).
  ``cp2k_aborted``   CP2K printed an [ABORT] box in an attempt that read no wavefunction of an
                     earlier attempt: CP2K's own check failed on the input (structure +
                     settings) alone, and the same input aborts again. An abort that names
                     files, I/O, MPI or memory is treated as transient (machine-dependent), and
                     so is one after a restart wavefunction was read (the retry starts from an
                     atomic guess instead).
  ``geometry``       a converged force evaluation with an atom's \\|F\\| above
                     ``dft.failures.max_force`` (eV/Å) or two atoms (with periodic images)
                     closer than ``dft.failures.min_distance`` (Å): a blown-up geometry. That
                     frame and every later one are left out.
  ``walltime``       the last ``dft.failures.walltime_attempts`` attempts were each stopped by
                     CP2K's wall time without a new complete ionic step.

- **stopped for a transient reason**: killed (SIGKILL/SIGTERM, node lost), CP2K's wall time on
  a run that still makes progress, "less than a minute of walltime left", custodian stopping
  after ``max_errors`` corrections, an abort that is not deterministic as above. No summary,
  a non-zero exit: Snakemake/SLURM retry, and the rerun resumes from the run folders.

A failed job stays failed: its rerun reads the same files and writes the same summary. To redo
it, delete its folder (the summary's folder) or change the settings.
Only a relaxation keeps frames (its converged steps before the failure, flagged
``relaxation_status=failed`` by :mod:`.labelled_frames`); a failed isolated atom or single point
gives no label.

The aggregations skip failed jobs: isolated atoms (an element without E0: the dataset split
leaves out frames that contain it, :mod:`workflow_scripts.splits`), the dataset split (failed
relaxations skipped by default, ``dataset.failed_relaxations``) and the MPtrj CP2K labels.
``check`` lists the failed jobs of one kind and stops the workflow when more than
``dft.failures.max_failed_fraction`` of them failed; ``combine`` joins the lists into
the combined table of failed jobs (``paths.CP2K_FAILURES``, in the report).

CLI: ``check --job relax --max-failed-fraction 0.05 --out relax.csv SUMMARY ...`` (for
single points, the batch listings, which name the summaries) and ``combine --out CSV CSV ...``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.cli import setup_logging
from workflow_scripts.cp2k.units import HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM

log = logging.getLogger("workflow_scripts.cp2k.failures")

FAILURE_KINDS = ("scf_exhausted", "no_basis", "cp2k_aborted", "geometry", "walltime")
# Job kinds, as the rules name them, and the folder of their summaries (paths.CP2K_*).
JOBS = {"relax": "relax", "isolated_atom": "atoms", "single_point": "mptrj_sp"}
COLUMNS = (
    "job",
    "host",
    "defect",
    "element",
    "index",
    "failure_kind",
    "frames_kept",
    "failure_reason",
    "summary",
)
SUMMARY_NAME = "summary.json"
# Aborts that depend on the machine, not on the input: retried, never a failure for good.
_TRANSIENT_ABORT = re.compile(
    r"\b(file|open|read|writ|disk|space|quota|MPI|memory|allocat|signal)", re.IGNORECASE
)


class DftFailure(RuntimeError):
    """A CP2K job failed for a physical reason; the job ends with a failed summary."""

    def __init__(self, kind: str, reason: str, first_excluded_step: int | None = None):
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; one of {FAILURE_KINDS}")
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
        self.first_excluded_step = first_excluded_step


class FailedFractionError(RuntimeError):
    """More failed jobs of one kind than ``dft.failures.max_failed_fraction`` allows."""


def failure_limits(settings: dict) -> dict:
    """``dft.failures`` of the settings, schema defaults where the settings lack it."""
    limits = settings.get("failures")
    if limits is None:
        from workflow_scripts.cp2k.inputs import dft_settings

        limits = dft_settings()["failures"]
    return limits


# --- classification ------------------------------------------------------------------------------


def geometry_problem(symbols, positions, cell, forces, limits: dict) -> str | None:
    """Why one geometry counts as blown up (None: it does not). ``forces`` in Hartree/bohr."""
    forces_ev = np.asarray(forces, dtype=float) * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    norms = np.linalg.norm(forces_ev, axis=1) if len(forces_ev) else np.zeros(0)
    if len(norms) and norms.max() > limits["max_force"]:
        atom = int(norms.argmax())
        return (
            f"|F| = {norms[atom]:.1f} eV/Å on atom {atom} ({symbols[atom]}) is above "
            f"dft.failures.max_force = {limits['max_force']:g} eV/Å"
        )
    if limits["min_distance"] > 0 and len(symbols) > 0:
        pair = closest_pair(symbols, positions, cell, limits["min_distance"])
        if pair is not None:
            i, j, d = pair
            return (
                f"atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are {d:.3f} Å apart, closer "
                f"than dft.failures.min_distance = {limits['min_distance']:g} Å"
            )
    return None


def closest_pair(symbols, positions, cell, cutoff: float):
    """(i, j, distance) of the closest pair below ``cutoff`` Å, periodic images included."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    cell = np.asarray(cell, dtype=float)
    periodic = bool(np.abs(np.linalg.det(cell)) > 1e-9)
    atoms = Atoms(symbols, positions=positions, cell=cell if periodic else None, pbc=periodic)
    first, second, distance = neighbor_list("ijd", atoms, cutoff)
    if len(distance) == 0:
        return None
    k = int(np.argmin(distance))
    return int(first[k]), int(second[k]), float(distance[k])


def first_geometry_problem(frames, symbols, cell, limits: dict):
    """(step, reason) of the first SCF-converged frame with a blown-up geometry, or None.
    ``frames``: :class:`~workflow_scripts.cp2k.trajectory.Frame` (CP2K units)."""
    for frame in frames:
        if not frame.scf_converged:
            continue
        problem = geometry_problem(symbols, frame.positions, cell, frame.forces, limits)
        if problem is not None:
            return frame.step, f"{problem} (step {frame.step}, {frame.run})"
    return None


def abort_is_transient(message: str) -> bool:
    return bool(_TRANSIENT_ABORT.search(message or ""))


def _made_progress(attempt, earlier_frames: bool) -> bool:
    """A new complete ionic step: beyond its start geometry, or the very first one."""
    if any(f.step > attempt.start_step for f in attempt.frames):
        return True
    return bool(attempt.frames) and attempt.start_step == 0 and not earlier_frames


def classify(stitched, limits: dict, max_level: int, ladder_top: str = "") -> DftFailure | None:
    """The physical failure the run folders show, or None (finished, or worth a retry).

    ``stitched``: :func:`~workflow_scripts.cp2k.trajectory.stitch` of every attempt, the last
    one allowed to be incomplete; ``max_level``: the top rung of the SCF ladder, described by
    ``ladder_top``. Checked in this order: blown-up geometry, SCF ladder, CP2K abort, wall time.
    """
    attempts = stitched.attempts
    if not attempts:
        return None
    problem = first_geometry_problem(stitched.frames, stitched.symbols, stitched.cell, limits)
    if problem is not None:
        step, reason = problem
        return DftFailure("geometry", f"blown-up geometry: {reason}", first_excluded_step=step)
    last = attempts[-1]
    name = last.run_dir.name
    if last.first_unconverged is not None or last.output.scf_failed_in_tail:
        level = int(last.record.get("scf_level", 0))
        if level < max_level:
            return None  # the next rung of the ladder is still to be tried
        where = (
            f"step {last.first_unconverged.step}"
            if last.first_unconverged is not None
            else "the last force evaluation"
        )
        return DftFailure(
            "scf_exhausted",
            f"SCF not converged at {where} in {name} with the last rung of the SCF ladder "
            f"({ladder_top or f'level {level}'})",
        )
    if last.finished:
        return None
    aborted = last.output.aborted
    if aborted:
        if abort_is_transient(aborted) or last.record.get("wfn_restart"):
            return None
        return DftFailure("cp2k_aborted", f"CP2K aborted in {name}: {aborted}")
    stuck = 0
    for k in range(len(attempts) - 1, -1, -1):
        attempt = attempts[k]
        earlier = any(a.frames for a in attempts[:k])
        if not attempt.output.walltime_exceeded or _made_progress(attempt, earlier):
            break
        stuck += 1
    if stuck >= limits["walltime_attempts"]:
        first = attempts[len(attempts) - stuck].run_dir.name
        return DftFailure(
            "walltime",
            f"the last {stuck} attempts ({first} to {name}) each reached CP2K's wall time "
            f"without a new complete ionic step (dft.failures.walltime_attempts = "
            f"{limits['walltime_attempts']}); give the jobs a longer runtime "
            "(dft.resources) and delete the folder to redo it",
        )
    return None


# --- summaries -----------------------------------------------------------------------------------


def read_summary(workdir: Path | str) -> dict | None:
    path = Path(workdir) / SUMMARY_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def is_failed(summary: dict | None) -> bool:
    return bool(summary) and summary.get("status") == "failed"


def failed_summary_of(workdir: Path | str) -> dict | None:
    """The summary of the job in ``workdir`` if it failed for good, else None."""
    summary = read_summary(workdir)
    return summary if is_failed(summary) else None


@dataclass(frozen=True)
class JobId:
    job: str
    host: str = ""
    defect: str = ""
    element: str = ""
    index: str = ""

    @property
    def label(self) -> str:
        name = {
            "relax": f"{self.host}/{self.defect}",
            "isolated_atom": self.element,
            "single_point": self.index,
        }[self.job]
        return f"{self.job} {name}"


def job_id(summary_path: Path | str, job: str) -> JobId:
    """Which job a summary belongs to, from its path: ``.../relax/{host}/{defect}/``,
    ``.../atoms/{element}/`` or ``.../mptrj_sp/{index}/`` (then ``summary.json``)."""
    parts = Path(summary_path).parts
    if job == "relax":
        return JobId(job, host=parts[-3], defect=parts[-2])
    if job == "isolated_atom":
        return JobId(job, element=parts[-2])
    if job == "single_point":
        return JobId(job, index=parts[-2])
    raise ValueError(f"unknown job kind {job!r}; one of {list(JOBS)}")


def failure_rows(summaries: list[Path], job: str) -> list[dict]:
    """One row per failed job among ``summaries`` (all of kind ``job``)."""
    rows = []
    for path in summaries:
        summary = json.loads(Path(path).read_text())
        if not is_failed(summary):
            continue
        ident = job_id(path, job)
        rows.append(
            {
                "job": job,
                "host": ident.host,
                "defect": ident.defect,
                "element": ident.element,
                "index": ident.index,
                "failure_kind": summary.get("failure_kind", ""),
                "frames_kept": int(summary.get("n_frames") or 0),
                "failure_reason": summary.get("failure_reason", ""),
                "summary": str(path),
            }
        )
    return rows


def row_label(row: dict) -> str:
    ident = JobId(row["job"], row["host"], row["defect"], row["element"], str(row["index"]))
    return f"{ident.label} ({row['failure_kind']}: {row['failure_reason']})"


def check_fraction(rows: list[dict], n_jobs: int, max_fraction: float, job: str) -> None:
    """Raise :class:`FailedFractionError` naming every failed job when too many failed."""
    if not n_jobs or len(rows) / n_jobs <= max_fraction:
        return
    listed = "\n".join(f"  {row_label(row)}" for row in rows)
    raise FailedFractionError(
        f"{len(rows)} of {n_jobs} CP2K {job} jobs failed ({len(rows) / n_jobs:.1%}), more "
        f"than dft.failures.max_failed_fraction = {max_fraction:g}:\n{listed}\n"
        "Fix the cause (see each job's log and run folders) and delete the failed jobs' "
        "folders to redo them, or raise dft.failures.max_failed_fraction to go on without them."
    )


def write_rows(rows: list[dict], path: Path | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def read_rows(path: Path | str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_failures(paths) -> list[dict]:
    """Rows of every ``failures`` CSV given (per-kind lists or ``failures.csv``)."""
    return [row for path in paths or [] for row in read_rows(path)]


# --- CLI -----------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.cp2k.failures")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="failed jobs of one kind -> CSV; stop above the limit")
    check.add_argument("--job", choices=list(JOBS), required=True)
    check.add_argument("--max-failed-fraction", type=float, required=True)
    check.add_argument("--out", required=True, type=Path)
    check.add_argument(
        "summaries",
        nargs="*",
        type=Path,
        help="every summary.json of that kind, or batch listings naming them (single points)",
    )
    combine = sub.add_parser("combine", help="the per-kind CSVs into one table of failed jobs")
    combine.add_argument("--out", required=True, type=Path)
    combine.add_argument("parts", nargs="*", type=Path)
    return parser.parse_args(argv)


def run(args) -> list[dict]:
    if args.command == "check":
        from workflow_scripts.cp2k.batch import expand_summaries

        summaries = expand_summaries(args.summaries)
        rows = failure_rows(summaries, args.job)
        for row in rows:
            log.warning("failed: %s", row_label(row))
        check_fraction(rows, len(summaries), args.max_failed_fraction, args.job)
        write_rows(rows, args.out)
        counts = (len(rows), len(summaries))
        limit = args.max_failed_fraction
        log.info("%d of %d %s jobs failed (limit %g): %s", *counts, args.job, limit, args.out)
        return rows
    rows = read_failures(args.parts)
    write_rows(rows, args.out)
    log.info("%d failed CP2K jobs: %s", len(rows), args.out)
    return rows


def main(argv=None) -> int:
    setup_logging()
    try:
        run(parse_args(argv))
    except FailedFractionError as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
