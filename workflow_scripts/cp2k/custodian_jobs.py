"""custodian's pieces for a CP2K calculation, defined once: the job (each ``run`` a new attempt
in a new folder; ``terminate`` ends only the process it started, never ``killall``), the SCF
handler (also a monitor: a GEO_OPT that carries on after "SCF run NOT converged" is stopped),
the blown-up-geometry monitor and the completion validator. custodian's stock CP2K handlers
are not used: they rewrite the input in place and rerun in the same directory, which
overwrites the earlier output.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path

from custodian.custodian import ErrorHandler, Job, Validator

from workflow_scripts.cp2k.attempts import (
    CUSTODIAN_LOG,
    Cp2kRunError,
    Plan,
    archive_stale_custodian_log,
    cp2k_command,
    cp2k_environment,
    create_attempt,
    is_done,
    next_attempt,
    now,
    stop_reason,
    write_record,
)
from workflow_scripts.cp2k.failures import failure_limits, first_geometry_problem
from workflow_scripts.cp2k.inputs import INPUT_NAME, OUTPUT_NAME
from workflow_scripts.cp2k.scf import MAX_LEVEL, strategy
from workflow_scripts.cp2k.trajectory import RESULT_FILE, read_attempt

logger = logging.getLogger("workflow_scripts.cp2k.run")


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
        write_record(
            self.run_dir / RESULT_FILE,
            {
                "returncode": returncode,
                "status": status or ("finished" if returncode == 0 else "stopped"),
                "ended": now(),
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
        if is_done(attempt):
            return False
        self.reason = stop_reason(attempt)
        return True


def _record(obj, **fields) -> dict:
    return {"@module": type(obj).__module__, "@class": type(obj).__name__, **fields}


def _die_with_parent() -> None:
    """In the child: SIGTERM when the Python runner dies, even by SIGKILL (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
