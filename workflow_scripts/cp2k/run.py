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

custodian: one job (:class:`Cp2kAttemptJob`; its ``terminate`` ends only the process it
started, never ``killall``), one handler (:class:`ScfConvergenceHandler`, also a monitor,
so a GEO_OPT that carries on after "SCF run NOT converged" is stopped), one validator
(:class:`CompletionValidator`). custodian's stock CP2K handlers are not used: they rewrite
the input in place and rerun in the same directory, which overwrites the earlier output.
Every correction is logged in ``custodian.json``, a copy of which is kept in each attempt's
folder. A second monitor (:class:`GeometryHandler`) stops a blown-up geometry.

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
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.cp2k.basis import BasisError, NoBasisError
from workflow_scripts.cp2k.failures import (
    DftFailure,
    classify,
    failure_limits,
    first_geometry_problem,
)
from workflow_scripts.cp2k.inputs import (
    INPUT_NAME,
    OPTIMISATIONS,
    OUTPUT_NAME,
    PROJECT,
    Calculation,
    InputError,
    load_settings,
    load_structure,
    optimiser_max_iter,
    prepare,
    prepare_isolated_atom,
    render_input,
    settings_hash,
)
from workflow_scripts.cp2k.scf import MAX_LEVEL, ScfLadderExhausted, strategy
from workflow_scripts.cp2k.trajectory import (
    ATTEMPT_FILE,
    RESULT_FILE,
    RUN_PREFIX,
    Attempt,
    attempt_dirs,
    read_attempt,
    stitch,
)
from workflow_scripts.cp2k.units import HARTREE_TO_EV

logger = logging.getLogger("workflow_scripts.cp2k.run")
CUSTODIAN_LOG = "custodian.json"
TASK_NAMES = {
    "relax": "relax",
    "cell-relax": "cell_relax",
    "single-point": "single_point",
    "isolated-atom": "isolated_atom",
}


class Cp2kRunError(RuntimeError):
    """The calculation cannot go on; the message says why and what a rerun would do."""


@dataclass
class Plan:
    """One calculation: what to compute and how to start CP2K."""

    workdir: Path
    calc: Calculation
    settings: dict
    threads: int
    deadline: float | None = None  # time.time() by which CP2K must have stopped


@dataclass
class NextAttempt:
    number: int
    start_step: int
    positions: object  # (n, 3) Å
    scf_level: int
    wfn_from: Path | None
    reason: str
    cell: object = None  # (3, 3) Å of the restart frame (a cell relaxation); None: the input's


def cp2k_command(settings: dict) -> list[str]:
    """The command line: the binary, wrapped by the configured MPI launcher."""
    binary = settings["command"]
    launcher = settings["mpi_launcher"]
    if launcher == "srun":
        return ["srun", "-n", str(settings["mpi_ranks"]), binary]
    if launcher == "mpirun":
        return ["mpirun", "-n", str(settings["mpi_ranks"]), binary]
    return [binary]


def cp2k_environment(settings: dict, threads: int) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(max(1, threads // settings["mpi_ranks"]))
    # busy-waiting threads halve speed (docs/cp2k_behaviour.md)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if settings["mpi_launcher"] == "mpirun" and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def _is_done(attempt: Attempt) -> bool:
    """CP2K finished normally and every SCF of the attempt converged."""
    return (
        attempt.finished
        and bool(attempt.frames)
        and attempt.first_unconverged is None
        and not attempt.output.scf_failed_in_tail
    )


def calculation_hash(calc: Calculation) -> str:
    """Identity of a calculation: settings hash + initial structure (species, cell, positions,
    moments). Attempts of another calculation in the same folder are set aside, not reused."""
    import hashlib

    atoms = calc.atoms
    parts = [
        calc.task,
        calc.settings_hash,
        " ".join(atoms.get_chemical_symbols()),
        " ".join(f"{x:.8f}" for x in atoms.cell.array.ravel()),
        " ".join(f"{x:.8f}" for x in atoms.positions.ravel()),
        " ".join(f"{x:.4f}" for x in atoms.get_initial_magnetic_moments()),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def set_aside_other_calculations(plan: Plan) -> None:
    """Attempts made with other settings or another structure move to ``other_<hash>/``."""
    dirs = attempt_dirs(plan.workdir)
    if not dirs:
        return
    record = json.loads((dirs[-1] / ATTEMPT_FILE).read_text())
    current = calculation_hash(plan.calc)
    if record.get("calculation_hash") == current:
        return
    old = record.get("calculation_hash", "unknown")
    target = plan.workdir / f"other_{old}"
    suffix = 0
    while target.exists():
        suffix += 1
        target = plan.workdir / f"other_{old}_{suffix}"
    target.mkdir()
    for path in dirs:
        path.rename(target / path.name)
    logger.warning(
        "%s: earlier attempts were for calculation %s (now %s: settings or structure changed); "
        "moved to %s, starting afresh",
        plan.workdir,
        old,
        current,
        target,
    )


def next_attempt(plan: Plan) -> NextAttempt | None:
    """What the next attempt starts from, derived from the files alone (None: finished)."""
    dirs = attempt_dirs(plan.workdir)
    if not dirs:
        return NextAttempt(0, 0, plan.calc.atoms.positions.copy(), 0, None, "first attempt")
    last = read_attempt(dirs[-1], strict=False)
    if _is_done(last):
        return None
    number = int(dirs[-1].name[len(RUN_PREFIX) :]) + 1
    level = int(last.record["scf_level"])
    unconverged = last.first_unconverged
    if unconverged is not None or last.output.scf_failed_in_tail:
        level += 1
        if level > MAX_LEVEL:
            raise ScfLadderExhausted(
                f"{dirs[-1]}: SCF did not converge with any strategy up to level {MAX_LEVEL} "
                f"({strategy(plan.calc.base_scf, MAX_LEVEL).describe()})"
            )
        restart = unconverged or (last.frames[-1] if last.frames else None)
        wfn_from = None
        reason = f"SCF not converged in {dirs[-1].name}: SCF level {level}, atomic guess"
    else:
        restart = last.frames[-1] if last.frames else None
        # After a CP2K abort, not its wavefunction (it may be what CP2K choked on).
        wfn_from = None if last.output.aborted else _wavefunction(dirs[-1])
        reason = f"{dirs[-1].name} stopped before finishing ({_stop_reason(last)}): resume"
    if restart is None:  # nothing complete: the same start again
        positions, cell = _start_geometry(last)
        return NextAttempt(number, last.start_step, positions, level, wfn_from, reason, cell)
    return NextAttempt(
        number, restart.step, restart.positions, level, wfn_from, reason, restart.cell
    )


def _start_geometry(attempt: Attempt):
    from workflow_scripts.cp2k.parse import read_input_geometry

    geometry = read_input_geometry(attempt.run_dir / INPUT_NAME)
    return geometry.positions, geometry.cell


def _stop_reason(attempt: Attempt) -> str:
    out = attempt.output
    if out.aborted:
        return f"CP2K aborted: {out.aborted}"
    if out.walltime_exceeded:
        return "CP2K walltime reached"
    if attempt.result is None:
        return "killed (no attempt_result.json)"
    return f"exit code {attempt.result.get('returncode')}"


def _wavefunction(run_dir: Path) -> Path | None:
    for suffix in ("wfn", "kp"):
        path = run_dir / f"{PROJECT}-RESTART.{suffix}"
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def _max_iter(plan: Plan, start_step: int) -> int:
    # BFGS counts steps over all attempts; at least one so a re-evaluation can happen.
    return max(1, optimiser_max_iter(plan.calc.task, plan.settings) - start_step)


def create_attempt(plan: Plan, nxt: NextAttempt) -> Path:
    """A new ``run_NNN`` with input, restart wavefunction and ``attempt.json``."""
    run_dir = plan.workdir / f"{RUN_PREFIX}{nxt.number:03d}"
    run_dir.mkdir(parents=True, exist_ok=False)  # never reuse a folder
    calc = plan.calc
    atoms = calc.atoms.copy()
    if nxt.cell is not None:  # a cell relaxation resumes in the cell it had reached
        atoms.set_cell(nxt.cell, scale_atoms=False)
    atoms.positions = nxt.positions
    attempt_calc = Calculation(**{**calc.__dict__, "atoms": atoms})
    wfn_name = None
    if nxt.wfn_from is not None:
        wfn_name = f"previous-RESTART.{nxt.wfn_from.suffix.lstrip('.')}"
        shutil.copy2(nxt.wfn_from, run_dir / wfn_name)
    walltime_s = None
    if plan.deadline is not None:
        walltime_s = plan.deadline - time.time()
        if walltime_s < 60:
            raise Cp2kRunError("less than a minute of walltime left: not starting CP2K")
    max_iter = _max_iter(plan, nxt.start_step) if calc.task in OPTIMISATIONS else None
    text = render_input(
        attempt_calc,
        plan.settings,
        scf_level=nxt.scf_level,
        wfn_restart=wfn_name,
        max_iter=max_iter,
        walltime_s=walltime_s,
    )
    (run_dir / INPUT_NAME).write_text(text)
    record = {
        "attempt": nxt.number,
        "task": calc.task,
        "reason": nxt.reason,
        "start_step": nxt.start_step,
        "scf_level": nxt.scf_level,
        "scf_strategy": strategy(calc.base_scf, nxt.scf_level).describe(),
        "wfn_restart": str(nxt.wfn_from) if nxt.wfn_from else None,
        "max_iter": max_iter,
        "n_atoms": len(atoms),
        "stress": calc.stress,
        "multiplicity": calc.spin.multiplicity,
        "settings_hash": calc.settings_hash,
        "calculation_hash": calculation_hash(calc),
        "command": cp2k_command(plan.settings),
        "threads": plan.threads,
        "started": _now(),
    }
    _write_json(run_dir / ATTEMPT_FILE, record)
    logger.info("%s: %s", run_dir, nxt.reason)
    return run_dir


# --- custodian pieces ----------------------------------------------------------------------------


def _custodian_classes():
    """Job, handler and validator classes (custodian imported only when a run starts)."""
    from custodian.custodian import ErrorHandler, Job, Validator

    class Cp2kAttemptJob(Job):
        """Each ``run`` starts a new attempt in a new folder; ``terminate`` ends only it."""

        def __init__(self, plan: Plan):
            self.plan = plan
            self.process: subprocess.Popen | None = None
            self.run_dir: Path | None = None
            self.started = 0.0

        @property
        def name(self):
            return f"cp2k {self.plan.calc.task} in {self.plan.workdir}"

        def setup(self, directory="./"):
            archive_stale_custodian_log(self.plan.workdir)

        def run(self, directory="./"):
            self.finish_attempt()
            nxt = next_attempt(self.plan)
            if nxt is None:
                raise Cp2kRunError(f"{self.plan.workdir}: already finished")
            self.run_dir = create_attempt(self.plan, nxt)
            command = cp2k_command(self.plan.settings) + ["-i", INPUT_NAME]
            env = cp2k_environment(self.plan.settings, self.plan.threads)
            self.started = time.time()
            with (
                open(self.run_dir / OUTPUT_NAME, "x") as out,
                open(self.run_dir / "cp2k.err", "x") as err,
            ):
                self.process = subprocess.Popen(
                    command,
                    cwd=self.run_dir,
                    stdout=out,
                    stderr=err,
                    env=env,
                    preexec_fn=_die_with_parent,
                )
            logger.info("started %s (pid %d) in %s", command, self.process.pid, self.run_dir)
            return self.process

        def finish_attempt(self, status: str | None = None):
            """``attempt_result.json`` and a custodian.json copy for the attempt that ran."""
            if self.process is None or self.run_dir is None:
                return
            returncode = self.process.poll()
            _write_json(
                self.run_dir / RESULT_FILE,
                {
                    "returncode": returncode,
                    "status": status or ("finished" if returncode == 0 else "stopped"),
                    "ended": _now(),
                    "wall_s": round(time.time() - self.started, 1),
                },
            )
            log = self.plan.workdir / CUSTODIAN_LOG
            if log.is_file():
                shutil.copy2(log, self.run_dir / CUSTODIAN_LOG)
            self.process = None

        def postprocess(self, directory="./"):
            pass

        def as_dict(self):  # custodian.json: a readable record, not the whole plan
            return _record(self, workdir=str(self.plan.workdir), run_dir=str(self.run_dir))

        def terminate(self, directory="./"):
            """SIGTERM to the process this job started, SIGKILL if it lingers; no killall."""
            process = self.process
            if process is None or process.poll() is not None:
                return
            logger.info("terminating pid %d", process.pid)
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    class ScfConvergenceHandler(ErrorHandler):
        """An SCF that did not converge within MAX_SCF: stop the attempt, climb one rung."""

        is_monitor = True
        is_terminating = True
        raises_runtime_error = True

        def __init__(self, job):
            self.job = job

        def as_dict(self):
            return _record(self, max_level=MAX_LEVEL)

        def _attempt(self):
            return read_attempt(self.job.run_dir, strict=False) if self.job.run_dir else None

        def check(self, directory="./"):
            attempt = self._attempt()
            if attempt is None:
                return False
            return attempt.first_unconverged is not None or attempt.output.scf_failed_in_tail

        def correct(self, directory="./"):
            attempt = self._attempt()
            level = int(attempt.record["scf_level"]) + 1
            unconverged = attempt.first_unconverged
            where = (
                f"force evaluation {unconverged.evaluation} (step {unconverged.step})"
                if unconverged
                else "the last force evaluation (CP2K stopped)"
            )
            error = f"SCF not converged in {where} of {attempt.run_dir.name}"
            if level > MAX_LEVEL:
                return {"errors": [error], "actions": []}
            action = {
                "scf_level": level,
                "scf_strategy": strategy(self.job.plan.calc.base_scf, level).describe(),
                "restart": f"from step {unconverged.step if unconverged else 'same start'} "
                "in a new run folder, atomic guess",
            }
            return {"errors": [error], "actions": [action]}

    class GeometryHandler(ErrorHandler):
        """A converged force evaluation with a blown-up geometry (:mod:`.failures`): stop;
        no correction, the job fails for good (``failure_kind: geometry``)."""

        is_monitor = True
        is_terminating = True
        raises_runtime_error = True

        def __init__(self, job):
            self.job = job
            self.problem = None

        def as_dict(self):
            return _record(self, problem=self.problem)

        def check(self, directory="./"):
            if self.job.run_dir is None:
                return False
            attempt = read_attempt(self.job.run_dir, strict=False)
            limits = failure_limits(self.job.plan.settings)
            found = first_geometry_problem(attempt.frames, attempt.symbols, attempt.cell, limits)
            self.problem = found[1] if found else None
            return found is not None

        def correct(self, directory="./"):
            return {"errors": [f"blown-up geometry: {self.problem}"], "actions": []}

    class CompletionValidator(Validator):
        """The last attempt reached CP2K's normal end with a converged last SCF."""

        def __init__(self, job):
            self.job = job
            self.reason = ""

        def as_dict(self):
            return _record(self, reason=self.reason)

        def check(self, directory="./"):
            attempt = read_attempt(self.job.run_dir, strict=False)
            if _is_done(attempt):
                return False
            self.reason = _stop_reason(attempt)
            return True

    return Cp2kAttemptJob, ScfConvergenceHandler, GeometryHandler, CompletionValidator


def _record(obj, **fields) -> dict:
    return {"@module": type(obj).__module__, "@class": type(obj).__name__, **fields}


def _die_with_parent() -> None:
    """In the child: SIGTERM when the Python runner dies, even by SIGKILL (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def archive_stale_custodian_log(workdir: Path) -> None:
    """A custodian.json left by a killed session goes into that session's last attempt."""
    log = workdir / CUSTODIAN_LOG
    if not log.is_file():
        return
    dirs = attempt_dirs(workdir)
    target = dirs[-1] / CUSTODIAN_LOG if dirs else workdir / "custodian_orphan.json"
    if target.exists():
        target = target.with_name(f"custodian_{int(time.time())}.json")
    log.replace(target)


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
        job_class, handler_class, geometry_class, validator_class = _custodian_classes()
        job = job_class(plan)
        validator = validator_class(job)
        custodian_settings = plan.settings["custodian"]
        runner = Custodian(
            handlers=[handler_class(job), geometry_class(job)],
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


def structure_hash(atoms) -> str:
    """Identity of an input structure as read (species, cell, positions, initial moments),
    recorded in the summary: a batch of single points (:mod:`.batch`) skips a structure whose
    summary has the current settings and structure hashes."""
    import hashlib

    parts = [
        " ".join(atoms.get_chemical_symbols()),
        " ".join(f"{x:.8f}" for x in atoms.cell.array.ravel()),
        " ".join(f"{x:.8f}" for x in atoms.positions.ravel()),
        " ".join(f"{x:.4f}" for x in atoms.get_initial_magnetic_moments()),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _write_json(Path(path), summary)
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
