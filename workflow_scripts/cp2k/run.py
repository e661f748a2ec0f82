"""Run one CP2K calculation under custodian, one fresh directory per attempt.

Layout of a calculation directory (the folder of ``paths.CP2K_RELAX``, e.g. SrTiO3/sub_Ba_on_A)::

    run_000/  cp2k.inp cp2k.out cp2k-pos-1.xyz ... attempt.json attempt_result.json custodian.json
    run_001/  ...                  (a restart, or a retry with a stronger SCF strategy)
    custodian.json                 (the log of the custodian session in progress)

Nothing is ever written into an earlier attempt's CP2K files: CP2K appends to existing
outputs, so every attempt runs in its own new folder. A new attempt starts from

- after a kill, walltime or crash: the geometry of the last complete force evaluation and the
  last wavefunction file (SCF_GUESS RESTART); that evaluation is re-done and supersedes the
  old one (:mod:`.trajectory`);
- after an SCF that did not converge within MAX_SCF: the geometry of the first unconverged
  evaluation, with the next rung of the SCF ladder (:mod:`.scf`) and an atomic guess.

custodian runs the job, handlers and validator of :mod:`.custodian_jobs`; the attempts and their
folders are :mod:`.attempts`. Every correction is logged in ``custodian.json``, a copy of which
is kept in each attempt's folder.

How a job ends (:mod:`.failures`): done (summary, exit 0); failed for a physical reason (SCF
ladder exhausted, no basis, a deterministic CP2K abort, a blown-up geometry, wall time with no
progress over ``dft.failures.walltime_attempts`` attempts: a summary with ``status: failed``,
exit 0, the converged frames kept); or stopped for a transient reason (killed, wall time on a
run that still progresses, custodian out of corrections: no summary, exit 1, so Snakemake or
SLURM retries and the rerun resumes). Input errors that are mistakes (a bad override, no CP2K
data folder) exit 2.

CLI (``--threads`` from Snakemake's ``{threads}``; ``--walltime-min`` from the rule's runtime)::

    python -m workflow_scripts.cp2k.run relax --structure S.json --settings dft.json \
        --workdir cp2k/relax/H/D --summary cp2k/relax/H/D/summary.json --threads 2
    python -m workflow_scripts.cp2k.run cell-relax --structure hosts/H.json \
        --kpoints 2 2 2 ...            (a host cell: CELL_OPT, frames with their cells)
    python -m workflow_scripts.cp2k.run single-point --structure S.extxyz --index 3 ...
    python -m workflow_scripts.cp2k.run isolated-atom --element Ti ...

MPtrj single points run several to a job, each in its own folder: :mod:`.batch`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from workflow_scripts.cli import setup_logging
from workflow_scripts.cp2k.attempts import (
    CUSTODIAN_LOG,
    Cp2kRunError,
    Plan,
    next_attempt,
    set_aside_other_calculations,
    structure_hash,
)
from workflow_scripts.cp2k.basis import BasisError, NoBasisError
from workflow_scripts.cp2k.failures import DftFailure, classify, failure_limits
from workflow_scripts.cp2k.inputs import (
    OPTIMISATIONS,
    InputError,
    load_settings,
    load_structure,
    prepare,
    prepare_isolated_atom,
    settings_hash,
)
from workflow_scripts.cp2k.scf import MAX_LEVEL, ScfLadderExhausted, strategy
from workflow_scripts.cp2k.trajectory import attempt_dirs, stitch
from workflow_scripts.cp2k.units import HARTREE_TO_EV
from workflow_scripts.files import write_json

logger = logging.getLogger("workflow_scripts.cp2k.run")
TASK_NAMES = {
    "relax": "relax",
    "cell-relax": "cell_relax",
    "single-point": "single_point",
    "isolated-atom": "isolated_atom",
}


def terminal_failure(plan: Plan) -> DftFailure | None:
    """The physical failure the run folders show (:func:`.failures.classify`), or None."""
    if not attempt_dirs(plan.workdir):
        return None
    return classify(
        stitch(plan.workdir, complete=False),
        failure_limits(plan.settings),
        MAX_LEVEL,
        strategy(plan.calc.base_scf, MAX_LEVEL).describe(),
    )


def run_calculation(plan: Plan) -> dict:
    """Run (or resume) until finished or failed for good; returns the summary (``status:
    failed`` for a physical failure). Raises :class:`Cp2kRunError` on a transient stop."""
    from custodian.custodian import Custodian, CustodianError

    plan.workdir.mkdir(parents=True, exist_ok=True)
    set_aside_other_calculations(plan)
    failure = terminal_failure(plan)  # a rerun of a failed job: the same failed summary
    if failure is None and next_attempt(plan) is not None:
        from workflow_scripts.cp2k import custodian_jobs  # custodian only when a run starts

        job = custodian_jobs.Cp2kAttemptJob(plan)
        validator = custodian_jobs.CompletionValidator(job)
        custodian_settings = plan.settings["custodian"]
        runner = Custodian(
            handlers=[
                custodian_jobs.ScfConvergenceHandler(job),
                custodian_jobs.GeometryHandler(job),
            ],
            jobs=[job],
            validators=[validator],
            max_errors=custodian_settings["max_errors"],
            polling_time_step=custodian_settings["polling_s"],
            monitor_freq=custodian_settings["monitor_every"],
            directory=str(plan.workdir),
        )
        stopped = None
        try:
            runner.run()
        except CustodianError as error:
            stopped = error
        finally:
            job.terminate()
            job.finish_attempt()
            log = plan.workdir / CUSTODIAN_LOG
            if log.is_file() and job.run_dir is not None:
                log.replace(job.run_dir / CUSTODIAN_LOG)
        failure = terminal_failure(plan)
        if failure is None and stopped is not None:
            detail = f" ({validator.reason})" if validator.reason else ""
            raise Cp2kRunError(
                f"{plan.workdir}: {stopped}{detail}; a rerun resumes from the last complete step"
            ) from stopped
        if failure is None and next_attempt(plan) is not None:
            raise Cp2kRunError(f"{plan.workdir}: custodian stopped before CP2K finished")
    if failure is not None:
        return failed_summary(plan, failure)
    return summarize(plan)


def failed_summary(plan: Plan, failure: DftFailure, task: str | None = None) -> dict:
    """The summary of a job that failed for good: the reason, and the frames kept (a
    relaxation's converged steps before the failure; none for other tasks). ``plan.calc`` is
    None when the input could not be built (``no_basis``; then ``task`` names the task)."""
    summary = {
        "task": plan.calc.task if plan.calc is not None else task,
        "status": "failed",
        "failure_kind": failure.kind,
        "failure_reason": failure.reason,
        "first_excluded_step": failure.first_excluded_step,
        "attempts": [],
        "scf_level": None,
        "n_force_evaluations": 0,
        "n_frames": 0,
        "n_scf_unconverged_excluded": 0,
        "n_superseded": 0,
        "final_energy_eV": None,
        "cp2k_version": None,
        "settings_hash": (
            plan.calc.settings_hash if plan.calc is not None else settings_hash(plan.settings)
        ),
        "wall_s": 0.0,
    }
    if plan.calc is None or not attempt_dirs(plan.workdir):
        return summary
    stitched = stitch(plan.workdir, complete=False)
    kept = kept_frames(stitched.frames, summary["task"], failure.first_excluded_step)
    last = stitched.attempts[-1]
    summary.update(
        attempts=[a.run_dir.name for a in stitched.attempts],
        scf_level=int(last.record["scf_level"]),
        n_force_evaluations=stitched.n_evaluations,
        n_frames=len(kept),
        n_scf_unconverged_excluded=stitched.n_unconverged,
        n_superseded=stitched.n_superseded,
        final_energy_eV=kept[-1].energy * HARTREE_TO_EV if kept else None,
        cp2k_version=next((a.output.version for a in stitched.attempts if a.output.version), None),
        wall_s=sum((a.result or {}).get("wall_s", 0.0) for a in stitched.attempts),
    )
    return summary


def kept_frames(frames, task: str | None, first_excluded_step: int | None) -> list:
    """Frames of a failed job that still count: a relaxation's converged steps before the
    first excluded one (a blown-up geometry); no frame of a failed single point or atom."""
    if task not in OPTIMISATIONS:
        return []
    return [f for f in frames if first_excluded_step is None or f.step < first_excluded_step]


def summarize(plan: Plan) -> dict:
    stitched = stitch(plan.workdir)
    last = stitched.attempts[-1]

    return {
        "task": plan.calc.task,
        "status": last.output.geo_opt or "done",
        "attempts": [a.run_dir.name for a in stitched.attempts],
        "scf_level": int(last.record["scf_level"]),
        "n_force_evaluations": stitched.n_evaluations,
        "n_frames": len(stitched.frames),
        "n_scf_unconverged_excluded": stitched.n_unconverged,
        "n_superseded": stitched.n_superseded,
        "final_energy_eV": stitched.frames[-1].energy * HARTREE_TO_EV if stitched.frames else None,
        "cp2k_version": last.output.version,
        "settings_hash": plan.calc.settings_hash,
        "wall_s": sum((a.result or {}).get("wall_s", 0.0) for a in stitched.attempts),
    }


def _terminate_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through custodian; `finally` stops CP2K


def run_task(
    task: str,
    workdir: Path | str,
    summary_path: Path | str,
    settings: dict,
    threads: int = 1,
    deadline: float | None = None,
    *,
    atoms=None,
    element: str | None = None,
) -> int:
    """One calculation: build its input, run or resume it, write its summary. ``atoms`` for a
    relaxation or single point, ``element`` for an isolated atom. Returns the exit code: 0 done
    or failed for good (summary written), 1 stopped for a transient reason (no summary; a
    rerun resumes), 2 an input that is a mistake (no summary)."""
    workdir = Path(workdir)
    identity = {} if atoms is None else {"structure_hash": structure_hash(atoms)}
    try:
        if task == "isolated_atom":
            calc = prepare_isolated_atom(element, settings)
        else:
            calc = prepare(task, atoms, settings)
    except NoBasisError as error:
        failure = DftFailure("no_basis", str(error))
        plan = Plan(workdir, None, settings, threads)
        return _write_summary(summary_path, {**failed_summary(plan, failure, task), **identity})
    except (InputError, BasisError, KeyError) as error:
        logger.error("cannot build the CP2K input: %s", error)
        return 2
    plan = Plan(workdir, calc, settings, threads, deadline)
    try:
        summary = run_calculation(plan)
    except (Cp2kRunError, ScfLadderExhausted) as error:
        logger.error("%s", error)
        return 1
    return _write_summary(summary_path, {**summary, **identity})


def runtime_settings(path, runtime_path=None, mpi_launcher=None, mpi_ranks=None) -> dict:
    """The settings files, with the launcher and ranks the rule passes on top."""
    settings = load_settings(path, runtime_path)
    if mpi_launcher:
        settings["mpi_launcher"] = mpi_launcher
    if mpi_ranks:
        settings["mpi_ranks"] = mpi_ranks
    return settings


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every CP2K command line shares (settings, threads, wall time, MPI)."""
    parser.add_argument("--settings", required=True, help="the dft settings (JSON)")
    parser.add_argument("--runtime-settings", help="the dft_runtime settings (JSON)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--walltime-min", type=float, default=None, help="job runtime limit")
    parser.add_argument(
        "--mpi-launcher", choices=["none", "srun", "mpirun"], help="overrides dft.mpi_launcher"
    )
    parser.add_argument("--mpi-ranks", type=int, help="overrides dft.mpi_ranks")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.cp2k.run")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in TASK_NAMES:
        task = sub.add_parser(name)
        if name == "isolated-atom":
            task.add_argument("--element", required=True)
        else:
            task.add_argument("--structure", required=True, help="pymatgen JSON or extxyz")
            task.add_argument("--index", type=int, default=None, help="frame of an extxyz file")
        if name == "cell-relax":
            task.add_argument(
                "--kpoints", type=int, nargs=3, default=None, help="host mesh (default: Γ)"
            )
        if name == "relax":
            task.add_argument(
                "--kpoints", type=int, nargs=3, default=None,
                help="mesh instead of dft.kpoints (1 1 1: Γ, e.g. a molecule in a box)",
            )  # fmt: skip
        if name == "single-point":
            task.add_argument(
                "--kpoints", type=int, nargs=3, default=None,
                help="mesh instead of one from dft.single_point.kpoint_spacing",
            )  # fmt: skip
        task.add_argument("--workdir", required=True, help="calculation folder (run_NNN inside)")
        task.add_argument("--summary", required=True, help="summary JSON written on success")
        add_launch_arguments(task)
    args = parser.parse_args(argv)
    setup_logging()
    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    task = TASK_NAMES[args.command]
    atoms = None
    try:
        settings = runtime_settings(
            args.settings, args.runtime_settings, args.mpi_launcher, args.mpi_ranks
        )
        if task != "isolated_atom":
            atoms, _ = load_structure(args.structure, args.index)
        # a host cell's own mesh, or a relaxation's instead of dft.kpoints (Γ for a molecule);
        # part of the settings hash either way
        if task == "cell_relax" or (task == "relax" and args.kpoints is not None):
            settings["kpoints"] = args.kpoints
        elif task == "single_point" and args.kpoints is not None:
            settings["single_point"] = {**settings["single_point"], "kpoints": args.kpoints}
    except (InputError, KeyError) as error:
        logger.error("cannot build the CP2K input: %s", error)
        return 2
    deadline = None
    if args.walltime_min:
        deadline = time.time() + 60 * (args.walltime_min - settings["walltime_margin_min"])
    return run_task(
        task,
        args.workdir,
        args.summary,
        settings,
        args.threads,
        deadline,
        atoms=atoms,
        element=getattr(args, "element", None),
    )


def _write_summary(path, summary: dict) -> int:
    """The summary JSON; a failed job is logged as such and, like a finished one, exits 0."""
    write_json(path, summary, indent=1, atomic=True)
    if summary["status"] == "failed":
        logger.error(
            "FAILED for good (%s): %s; %d frame(s) kept. The workflow goes on without this "
            "job (listed among the failed CP2K jobs); delete its folder to redo it.",
            summary["failure_kind"],
            summary["failure_reason"],
            summary["n_frames"],
        )
    logger.info("summary: %s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
