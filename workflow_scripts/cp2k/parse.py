"""Read what CP2K wrote: the ``.out`` (every force evaluation), the input, the trajectory.

The ``.out`` is the source of truth for energies, forces, stress and SCF convergence: it has
every force evaluation, including the initial geometry (the ``-pos-1.xyz`` trajectory starts
at step 1). Positions of step k >= 1 come from ``-pos-1.xyz`` frame ``i = k``; its energy is
checked against the ``.out``. Step 0 positions and the cell come from the input CP2K read.

Everything is kept in CP2K's units here (Hartree, Hartree/bohr, GPa, Å); conversion happens
once, in :mod:`.trajectory`. Any line that is missing, cut off or unreadable raises
:class:`Cp2kParseError` with the file and what is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_ENERGY = "ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:"
_FORCES = "ATOMIC FORCES in [a.u.]"
_FORCES_END = "SUM OF ATOMIC FORCES"
_STRESS = "STRESS| Analytical stress tensor [GPa]"
_SCF_OK = ("*** SCF run converged in", "outer SCF loop converged in")
_SCF_FAILED = ("SCF run NOT converged", "outer SCF loop FAILED to converge")
_GEO_DONE = "GEOMETRY OPTIMIZATION COMPLETED"
_REEVALUATION = "Reevaluating energy at the minimum"  # energy only, after GEO_OPT converged
_GEO_MAX_ITER = "MAXIMUM NUMBER OF OPTIMIZATION STEPS REACHED"
_ENDED = "PROGRAM ENDED AT"
_WALLTIME = "exceeded requested execution time"


class Cp2kParseError(ValueError):
    """A CP2K file is truncated, corrupt or not what was expected; names file and problem."""


@dataclass
class ForceEvaluation:
    """One energy + force calculation, in CP2K's units."""

    index: int  # 0-based, in the order of the .out
    energy: float  # Hartree
    forces: np.ndarray  # (n_atoms, 3) Hartree/bohr
    stress: np.ndarray | None  # (3, 3) GPa, CP2K sign (positive = compressive)
    scf_converged: bool


@dataclass
class Cp2kOutput:
    path: Path
    version: str | None
    evaluations: list[ForceEvaluation] = field(default_factory=list)
    ended: bool = False  # "PROGRAM ENDED" reached
    geo_opt: str | None = None  # "converged", "max_iter" or None
    walltime_exceeded: bool = False
    aborted: str | None = None  # CP2K's [ABORT] message
    incomplete_tail: str | None = None  # what the last, unfinished evaluation lacks
    minimum_energy: float | None = None  # GEO_OPT's energy-only re-evaluation (no forces)
    scf_failed_in_tail: bool = False  # an SCF failure after the last complete evaluation

    @property
    def n_unconverged(self) -> int:
        return sum(not e.scf_converged for e in self.evaluations) + int(self.scf_failed_in_tail)


def _number(text: str, path: Path, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Cp2kParseError(f"{path}: {where}: unreadable number {text!r}") from None
    if not np.isfinite(value):
        raise Cp2kParseError(f"{path}: {where}: non-finite number {text!r}")
    return value


def _abort_message(lines: list[str], start: int) -> str:
    """The text inside CP2K's ABORT box (up to the line naming the source file)."""
    words = []
    for line in lines[start : start + 15]:
        inner = line.strip().strip("*")
        inner = re.sub(r"^[\s\\/|O_]*(\[ABORT\])?[\s\\/|O_]*", "", inner).strip()
        if re.search(r"\.F:\d+$", inner):
            break
        if inner:
            words.append(inner)
    return " ".join(words) or "CP2K aborted"


def read_output(
    path: Path | str,
    n_atoms: int,
    expect_stress: bool,
    allow_incomplete: bool = False,
) -> Cp2kOutput:
    """Parse a CP2K ``.out``.

    ``allow_incomplete`` (a run that was killed or is still running): an unfinished last
    evaluation is dropped and described in ``incomplete_tail``; otherwise the output must end
    with ``PROGRAM ENDED`` and every evaluation must be complete, or an error names what is
    missing.
    """
    path = Path(path)
    if not path.is_file():
        raise Cp2kParseError(f"{path}: CP2K output file missing")
    lines = path.read_text(errors="replace").splitlines()
    out = Cp2kOutput(path=path, version=None)
    pending: dict = {}
    scf_state: bool | None = None
    reevaluating = False

    def describe_pending() -> str:
        number = len(out.evaluations)
        if "forces_cut" in pending:
            return (
                f"force evaluation {number}: ATOMIC FORCES block ends after "
                f"{pending['forces_cut']} of {n_atoms} atoms"
            )
        if "forces" not in pending:
            return f"force evaluation {number}: energy printed but no ATOMIC FORCES block"
        if "stress_cut" in pending:
            return (
                f"force evaluation {number}: stress tensor ends after {pending['stress_cut']} "
                "of 3 rows"
            )
        return f"force evaluation {number}: no '{_STRESS}' block after the forces"

    def finish() -> None:
        nonlocal pending, scf_state
        if scf_state is None:
            raise Cp2kParseError(
                f"{path}: force evaluation {len(out.evaluations)}: no SCF convergence message "
                "('SCF run converged' / 'NOT converged') before its energy"
            )
        out.evaluations.append(
            ForceEvaluation(
                index=len(out.evaluations),
                energy=pending["energy"],
                forces=pending["forces"],
                stress=pending.get("stress"),
                scf_converged=scf_state,
            )
        )
        pending, scf_state = {}, None

    number = 0
    while number < len(lines):
        line = lines[number]
        if out.version is None and "CP2K| version string:" in line:
            out.version = line.split(":", 1)[1].strip()
        if any(marker in line for marker in _SCF_FAILED):
            scf_state = False
        elif any(marker in line for marker in _SCF_OK) and scf_state is None:
            scf_state = True
        if _REEVALUATION in line:
            reevaluating = True
        elif reevaluating and _ENERGY in line:
            where = f"line {number + 1} (energy re-evaluated at the minimum)"
            out.minimum_energy = _number(line.split(":")[-1].strip(), path, where)
            reevaluating, scf_state = False, None
        elif _ENERGY in line:
            if pending:
                raise Cp2kParseError(f"{path}: line {number + 1}: {describe_pending()}")
            where = f"line {number + 1} (energy of force evaluation {len(out.evaluations)})"
            pending["energy"] = _number(line.split(":")[-1].strip(), path, where)
        elif _FORCES in line:
            if "energy" not in pending:
                raise Cp2kParseError(f"{path}: line {number + 1}: forces without a total energy")
            forces, number = _read_forces(lines, number, n_atoms, path, len(out.evaluations))
            if len(forces) < n_atoms or number >= len(lines):
                pending["forces_cut"] = len(forces)
                break  # the file ends inside the block; reported below
            pending["forces"] = np.array(forces)
            if not expect_stress:
                finish()
        elif _STRESS in line and pending.get("forces") is not None:
            stress, number = _read_stress(lines, number, path, len(out.evaluations))
            if len(stress) < 3:
                pending["stress_cut"] = len(stress)
                break
            pending["stress"] = np.array(stress)
            finish()
        elif _GEO_DONE in line:
            out.geo_opt = "converged"
        elif _GEO_MAX_ITER in line:
            out.geo_opt = "max_iter"
        elif _WALLTIME in line:
            out.walltime_exceeded = True
        elif "[ABORT]" in line and out.aborted is None:
            out.aborted = _abort_message(lines, number)
        elif _ENDED in line:
            out.ended = True
        number += 1

    if pending:
        out.incomplete_tail = describe_pending()
    if scf_state is False:
        out.scf_failed_in_tail = True
    if allow_incomplete:
        return out
    if out.incomplete_tail:
        raise Cp2kParseError(f"{path}: truncated output: {out.incomplete_tail}")
    if not out.ended and out.aborted is None:
        raise Cp2kParseError(
            f"{path}: truncated output: no '{_ENDED}' line after {len(out.evaluations)} complete "
            "force evaluation(s)"
        )
    return out


def _read_forces(lines, start, n_atoms, path, evaluation):
    """Force rows of one ATOMIC FORCES block and the index of its closing line (fewer rows
    and the end of the file if the file ends inside the block)."""
    forces = []
    number = start + 1
    while number < len(lines):
        text = lines[number]
        if text.strip().startswith(_FORCES_END):
            if len(forces) != n_atoms:
                raise Cp2kParseError(
                    f"{path}: line {number + 1}: force evaluation {evaluation} has "
                    f"{len(forces)} force lines, expected {n_atoms}"
                )
            return forces, number
        tokens = text.split()
        if tokens and tokens[0].isdigit():
            if len(tokens) != 6 and number == len(lines) - 1:
                break  # the file ends in the middle of this line
            if len(tokens) != 6:
                raise Cp2kParseError(
                    f"{path}: line {number + 1}: force evaluation {evaluation}: malformed "
                    f"force line {text.strip()!r}"
                )
            where = f"line {number + 1} (forces of evaluation {evaluation})"
            forces.append([_number(t, path, where) for t in tokens[3:6]])
        number += 1
    return forces, number


def _read_stress(lines, start, path, evaluation):
    """Rows of the 3x3 stress (GPa) after the STRESS header (fewer if the file ends)."""
    rows = []
    number = start + 2  # header, then the "x y z" column line
    while number < len(lines) and len(rows) < 3:
        tokens = lines[number].split()
        if len(tokens) != 5 and number == len(lines) - 1:
            break  # the file ends in the middle of this line
        if len(tokens) != 5 or tokens[0] != "STRESS|" or tokens[1] not in "xyz":
            raise Cp2kParseError(
                f"{path}: line {number + 1}: force evaluation {evaluation}: expected stress row "
                f"{'xyz'[len(rows)]}, found {lines[number].strip()!r}"
            )
        where = f"line {number + 1} (stress of evaluation {evaluation})"
        rows.append([_number(t, path, where) for t in tokens[2:5]])
        number += 1
    return rows, number - 1


@dataclass
class InputGeometry:
    symbols: list[str]
    positions: np.ndarray  # Å
    cell: np.ndarray  # Å, rows = A, B, C


def read_input_geometry(path: Path | str) -> InputGeometry:
    """Cell and coordinates from the ``&CELL``/``&COORD`` sections our generator writes."""
    path = Path(path)
    if not path.is_file():
        raise Cp2kParseError(f"{path}: CP2K input file missing")
    section, cell, symbols, positions = None, {}, [], []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        upper = line.upper()
        if upper in ("&CELL", "&COORD"):
            section = upper[1:]
        elif upper.startswith("&END"):
            section = None
        elif section == "CELL" and line[:2].upper() in ("A ", "B ", "C "):
            cell[line[0].upper()] = [_number(t, path, f"line {number}") for t in line.split()[1:4]]
        elif section == "COORD" and line:
            tokens = line.split()
            if len(tokens) != 4:
                raise Cp2kParseError(f"{path}: line {number}: malformed coordinate {raw!r}")
            symbols.append(tokens[0].split("_")[0])
            positions.append([_number(t, path, f"line {number}") for t in tokens[1:]])
    if set(cell) != {"A", "B", "C"} or not symbols:
        raise Cp2kParseError(f"{path}: no &CELL A/B/C vectors or no &COORD atoms found")
    return InputGeometry(symbols, np.array(positions), np.array([cell[k] for k in "ABC"]))


@dataclass
class TrajectoryFrame:
    step: int  # CP2K's "i ="
    energy: float  # Hartree
    positions: np.ndarray  # Å


def read_positions(path: Path | str, n_atoms: int, allow_incomplete: bool = False):
    """Frames of ``PROJECT-pos-1.xyz`` (``i = step, E = energy``); a cut-off last frame is
    dropped when ``allow_incomplete``, else an error."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    frames, number = [], 0
    while number < len(lines):
        if not lines[number].strip():
            number += 1
            continue
        block = lines[number : number + n_atoms + 2]
        header = re.search(r"i\s*=\s*(\d+),.*E\s*=\s*(\S+)", block[1]) if len(block) > 1 else None
        complete = len(block) == n_atoms + 2 and header is not None
        if complete:
            try:
                positions = np.array([[float(t) for t in row.split()[1:4]] for row in block[2:]])
            except (ValueError, IndexError):
                complete = False
            else:
                complete = positions.shape == (n_atoms, 3)
        if not complete:
            if allow_incomplete and number + len(block) >= len(lines):
                break
            raise Cp2kParseError(f"{path}: line {number + 1}: incomplete or corrupt xyz frame")
        frames.append(
            TrajectoryFrame(int(header.group(1)), _number(header.group(2), path, "E ="), positions)
        )
        number += n_atoms + 2
    return frames
