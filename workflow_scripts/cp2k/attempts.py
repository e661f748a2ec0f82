"""The attempts of one CP2K calculation: what the next one starts from, derived from the run
folders alone, and how a new ``run_NNN`` folder is written (:mod:`.run` drives them under
custodian, :mod:`.custodian_jobs` holds custodian's job, handlers and validator).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.cp2k.input_file import optimiser_max_iter, render_input
from workflow_scripts.cp2k.inputs import (
    INPUT_NAME,
    OPTIMISATIONS,
    PROJECT,
    Calculation,
    omp_environment,
)
from workflow_scripts.cp2k.scf import MAX_LEVEL, ScfLadderExhausted, strategy
from workflow_scripts.cp2k.trajectory import (
    ATTEMPT_FILE,
    RUN_PREFIX,
    Attempt,
    attempt_dirs,
    read_attempt,
)
from workflow_scripts.files import sha256_text, write_json

logger = logging.getLogger("workflow_scripts.cp2k.run")
CUSTODIAN_LOG = "custodian.json"


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
    env = omp_environment(max(1, threads // settings["mpi_ranks"]))
    if settings["mpi_launcher"] == "mpirun" and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def is_done(attempt: Attempt) -> bool:
    """CP2K finished normally and every SCF of the attempt converged."""
    return (
        attempt.finished
        and bool(attempt.frames)
        and attempt.first_unconverged is None
        and not attempt.output.scf_failed_in_tail
    )


def _geometry_parts(atoms) -> list[str]:
    """Species, cell, positions and initial moments as text, the identity of a structure."""
    return [
        " ".join(atoms.get_chemical_symbols()),
        " ".join(f"{x:.8f}" for x in atoms.cell.array.ravel()),
        " ".join(f"{x:.8f}" for x in atoms.positions.ravel()),
        " ".join(f"{x:.4f}" for x in atoms.get_initial_magnetic_moments()),
    ]


def structure_hash(atoms) -> str:
    """Identity of an input structure as read (species, cell, positions, initial moments),
    recorded in the summary: a batch of single points (:mod:`.batch`) skips a structure whose
    summary has the current settings and structure hashes."""
    return sha256_text("\n".join(_geometry_parts(atoms)), 12)


def calculation_hash(calc: Calculation) -> str:
    """Identity of a calculation: settings hash + initial structure (species, cell, positions,
    moments). Attempts of another calculation in the same folder are set aside, not reused."""
    parts = [calc.task, calc.settings_hash, *_geometry_parts(calc.atoms)]
    return sha256_text("\n".join(parts), 12)


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
    if is_done(last):
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
        reason = f"{dirs[-1].name} stopped before finishing ({stop_reason(last)}): resume"
    if restart is None:  # nothing complete: the same start again
        positions, cell = _start_geometry(last)
        return NextAttempt(number, last.start_step, positions, level, wfn_from, reason, cell)
    return NextAttempt(
        number, restart.step, restart.positions, level, wfn_from, reason, restart.cell
    )


def _start_geometry(attempt: Attempt):
    from workflow_scripts.cp2k.geometry_files import read_input_geometry

    geometry = read_input_geometry(attempt.run_dir / INPUT_NAME)
    return geometry.positions, geometry.cell


def stop_reason(attempt: Attempt) -> str:
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


def now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def write_record(path: Path, data: dict) -> None:
    """An attempt's JSON record, written atomically (a killed runner leaves no half file)."""
    write_json(path, data, indent=1, atomic=True)


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
        "started": now(),
    }
    write_record(run_dir / ATTEMPT_FILE, record)
    logger.info("%s: %s", run_dir, nxt.reason)
    return run_dir


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
