"""Read what CP2K wrote in its ``.out``: every force evaluation (the input's geometry, the
trajectory and cell files: :mod:`.geometry_files`).

The ``.out`` is the source of truth for energies, forces, stress and SCF convergence: it has
every force evaluation, including the initial geometry (the ``-pos-1.xyz`` trajectory starts
at step 1). Positions of step k >= 1 come from ``-pos-1.xyz`` frame ``i = k``; its energy is
checked against the ``.out``. Step 0 positions and the cell come from the input CP2K read.

Output formats of CP2K 7.1 to 2026.x are read (``docs/cp2k_output_formats.md``): the energy
line ``(a.u.):`` / ``[a.u.]:`` / ``[hartree]``, the ``ATOMIC FORCES in [a.u.]`` table or the
``FORCES| Atomic forces [hartree/bohr]`` block (2025.1+), and ``STRESS| Analytical stress
tensor [unit]`` (8.1+; GPa before 2025.1, then ``STRESS_UNIT``, bar by default). Everything is
kept in CP2K's units (Hartree, Hartree/bohr, Å; stress in GPa with CP2K's sign, positive =
compressive; bar, kbar, atm, Pa and MPa are converted to GPa, other units are errors);
conversion happens once, in :mod:`.trajectory`. An ``ENERGY|``, ``FORCES|`` or ``STRESS|`` line
CP2K is not known to print, an unreadable number, or a complete output without any force
evaluation raises :class:`Cp2kParseError` with the file and line; so does anything missing
or cut off. A last line without newline may be cut mid-number and is never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_ENERGY = re.compile(
    r"ENERGY\| Total FORCE_EVAL \(\s*\S+\s*\) (?P<kind>energy|gap|free energy) "
    r"(?:\(a\.u\.\):|\[(?P<unit>[^\]]+)\]:?)\s+(?P<value>\S+)"
)
_OLD_FORCES, _OLD_FORCES_END = "ATOMIC FORCES in [a.u.]", "SUM OF ATOMIC FORCES"
_FORCES = re.compile(r"FORCES\| Atomic forces \[(?P<unit>[^\]]+)\]")
_STRESS = re.compile(r"STRESS\| (?P<kind>Analytical|Numerical) stress tensor \[(?P<unit>[^\]]+)\]")
_STRESS_OTHER = re.compile(
    r"STRESS\| (Eigenvectors and eigenvalues of the (analytical|numerical) stress tensor|"
    r"Stress tensor components \(GPW/GAPW\)) \[[^\]]+\]"
)
# Label -> count of numbers of the other STRESS| lines (virial_methods.F, 8.1 - 2026.2).
_STRESS_LINES = {"1/3 Trace": 1, "Determinant": 1, "Eigenvalues": 3, "1/3 Trace Determinant": 0}
_STRESS_LINES.update(
    (label, 2)
    for label in (
        "Overlap", "Kinetic energy", "Local pseudopotential/core", "Nonlocal pseudopotential",
        "Core charge overlap", "Hartree", "Exchange-correlation", "Exact exchange (EXX)",
        "vdW correction", "Moller-Plesset (MP2)", "Nonlinear core correction (NLCC)",
        "Local atomic parts (GAPW)", "Resolution-of-the-identity (LRI)", "Sum of components",
        "Total",
    )
)  # fmt: skip
_ENERGY_UNITS = ("hartree", "a.u.", "au_e")
_FORCE_UNITS = ("hartree/bohr", "a.u.", "au_f")
# CP2K's STRESS_UNIT -> GPa (physcon.F: bar = pascal/1e5, atm = pascal/101325).
_STRESS_TO_GPA = {"gpa": 1.0, "mpa": 1e-3, "kbar": 0.1, "bar": 1e-4, "atm": 1.01325e-4, "pa": 1e-9}
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
    version: str | None  # e.g. "CP2K version 2025.1"
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


def parse_number(text: str, path: Path, where: str) -> float:
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


class _Parser:
    """One pass over the complete lines of a ``.out``; see :func:`read_output`."""

    def __init__(self, path: Path, n_atoms: int, expect_stress: bool):
        self.path, self.n_atoms, self.expect_stress = path, n_atoms, expect_stress
        self.out = Cp2kOutput(path=path, version=None)
        self.pending: dict = {}  # the evaluation being read: energy, forces, stress
        self.block: str | None = None  # "old_forces", "forces", "stress", "eigen", "components"
        self.rows: list = []
        self.stress_factor = 1.0
        self.scf: bool | None = None
        self.reevaluating = False
        self.ended_line = 0

    def fail(self, number: int, message: str):
        raise Cp2kParseError(f"{self.path}: line {number + 1}: {message}")

    def value(self, text: str, number: int, what: str) -> float:
        where = f"line {number + 1} ({what} of force evaluation {len(self.out.evaluations)})"
        return parse_number(text, self.path, where)

    def run(self, lines: list[str]) -> Cp2kOutput:
        for number, line in enumerate(lines):
            text = line.strip()
            if self.block in ("old_forces", "forces"):
                self.force_line(number, text)
            elif text.startswith("ENERGY|"):
                self.energy_line(number, text)
            elif text.startswith("FORCES|") or text == _OLD_FORCES:
                self.forces_header(number, text)
            elif text.startswith("STRESS|"):
                self.stress_line(number, text)
            else:
                self.block = None if text else self.block
                self.markers(number, line, lines)
        if self.block in ("old_forces", "forces"):
            self.pending["forces_cut"] = len(self.rows)
        elif self.block == "stress" and "forces" in self.pending:
            self.pending["stress_cut"] = len(self.rows)
        return self.out

    def markers(self, number: int, line: str, lines: list[str]) -> None:
        out = self.out
        if out.version is None and "CP2K| version string:" in line:
            out.version = line.split(":", 1)[1].strip()
        if any(marker in line for marker in _SCF_FAILED):
            self.scf = False
        elif any(marker in line for marker in _SCF_OK) and self.scf is None:
            self.scf = True
        if _REEVALUATION in line:
            self.reevaluating = True
        elif _GEO_DONE in line:
            out.geo_opt = "converged"
        elif _GEO_MAX_ITER in line:
            out.geo_opt = "max_iter"
        elif _WALLTIME in line:
            out.walltime_exceeded = True
        elif "[ABORT]" in line and out.aborted is None:
            out.aborted = _abort_message(lines, number)
        elif _ENDED in line:
            out.ended, self.ended_line = True, number

    def energy_line(self, number: int, text: str) -> None:
        match = _ENERGY.fullmatch(text)
        if not match:
            self.fail(number, f"unrecognised ENERGY| line {text!r}")
        unit = match["unit"] or "a.u."
        if unit.lower() not in _ENERGY_UNITS:
            self.fail(number, f"energy unit [{unit}] not supported (expected hartree)")
        self.block = None
        if match["kind"] != "energy":
            return  # the gap / free energy that 2024.3+ print after the energy
        value = self.value(match["value"], number, "energy")
        if self.reevaluating:
            self.out.minimum_energy, self.reevaluating, self.scf = value, False, None
            return
        if self.pending:
            self.fail(number, self.describe_pending())
        self.pending["energy"] = value

    def forces_header(self, number: int, text: str) -> None:
        match = _FORCES.fullmatch(text)
        if text == _OLD_FORCES:
            self.block = "old_forces"
        elif match and match["unit"].lower() in _FORCE_UNITS:
            self.block = "forces"
        elif match:
            self.fail(number, f"force unit [{match['unit']}] not supported (expected hartree/bohr)")
        elif text.startswith("FORCES| Total atomic force") and self.block == "forces_done":
            return
        else:
            self.fail(number, f"unrecognised FORCES| line {text!r}")
        if "energy" not in self.pending or "forces" in self.pending:
            self.fail(number, "forces without a total energy before them")
        self.rows = []

    def force_line(self, number: int, text: str) -> None:
        tokens = text.split()
        if self.block == "old_forces":
            if text.startswith(_OLD_FORCES_END):
                return self.forces_done(number)
            if not tokens or text.startswith("# Atom"):
                return
            values = tokens[3:6] if len(tokens) == 6 and tokens[0].isdigit() else None
        else:
            if text.startswith("FORCES| Sum"):
                return self.forces_done(number)
            if re.fullmatch(r"FORCES\| +Atom +x +y +z +\|f\|", text):
                return
            ok = len(tokens) == 6 and tokens[0] == "FORCES|" and tokens[1].isdigit()
            values = tokens[2:5] if ok else None
        if values is None:
            self.fail(number, f"unrecognised line in a forces block {text!r}")
        self.rows.append([self.value(v, number, "forces") for v in values])

    def forces_done(self, number: int) -> None:
        if len(self.rows) != self.n_atoms:
            self.fail(
                number,
                f"force evaluation {len(self.out.evaluations)} has {len(self.rows)} force "
                f"lines, expected {self.n_atoms}",
            )
        self.pending["forces"] = np.array(self.rows)
        self.block = "forces_done"
        if not self.expect_stress:
            self.finish()

    def stress_line(self, number: int, text: str) -> None:
        tokens = text.split()[1:]
        header = _STRESS.fullmatch(text)
        if header:
            unit = header["unit"]
            if header["kind"] == "Numerical":
                self.fail(number, "numerical stress tensor not supported (use ANALYTICAL)")
            if unit.lower() not in _STRESS_TO_GPA:
                self.fail(number, f"stress unit [{unit}] not supported")
            self.block, self.rows, self.stress_factor = "stress", [], _STRESS_TO_GPA[unit.lower()]
        elif _STRESS_OTHER.fullmatch(text):
            self.block = "eigen" if "Eigen" in text else "components"
        elif self.block == "stress" and tokens == ["x", "y", "z"] and not self.rows:
            pass
        elif self.block == "stress" and len(tokens) == 4 and tokens[0] == "xyz"[len(self.rows)]:
            self.rows.append([self.value(t, number, "stress") for t in tokens[1:]])
            if len(self.rows) == 3:
                self.stress_done()
        elif self.block == "eigen" and (
            tokens == ["1", "2", "3"] or tokens[:1] in (["x"], ["y"], ["z"])
        ):
            pass
        elif not self.known_stress_line(number, text):
            self.fail(number, f"unrecognised STRESS| line {text!r}")

    def known_stress_line(self, number: int, text: str) -> bool:
        """``STRESS| <label> <numbers>`` with a label and count of numbers CP2K prints."""
        words = text.split()[1:]
        count = len(words)
        while count and re.fullmatch(r"[-+]?\d*\.?\d+(E[-+]?\d+)?", words[count - 1]):
            count -= 1
        if _STRESS_LINES.get(" ".join(words[:count])) != len(words) - count:
            return False
        for token in words[count:]:
            self.value(token, number, "stress summary")
        return True

    def stress_done(self) -> None:
        self.block = "stress_done"
        if "forces" in self.pending and self.expect_stress:
            self.pending["stress"] = np.array(self.rows) * self.stress_factor
            self.finish()

    def finish(self) -> None:
        if self.scf is None:
            raise Cp2kParseError(
                f"{self.path}: force evaluation {len(self.out.evaluations)}: no SCF convergence "
                "message ('SCF run converged' / 'NOT converged') before its energy"
            )
        pending = self.pending
        evaluation = ForceEvaluation(
            len(self.out.evaluations), pending["energy"], pending["forces"],
            pending.get("stress"), self.scf,
        )  # fmt: skip
        self.out.evaluations.append(evaluation)
        self.pending, self.scf = {}, None

    def describe_pending(self) -> str:
        pending, what = self.pending, f"force evaluation {len(self.out.evaluations)}: "
        if "forces_cut" in pending:
            cut = pending["forces_cut"]
            return what + f"ATOMIC FORCES block ends after {cut} of {self.n_atoms} atoms"
        if "forces" not in pending:
            return what + "energy printed but no ATOMIC FORCES block"
        if "stress_cut" in pending:
            return what + f"stress tensor ends after {pending['stress_cut']} of 3 rows"
        return what + "no 'STRESS| Analytical stress tensor' after the forces"


def read_output(
    path: Path | str,
    n_atoms: int,
    expect_stress: bool,
    allow_incomplete: bool = False,
) -> Cp2kOutput:
    """Parse a CP2K ``.out`` of any version from 7.1 (energy and forces) or 8.1 (stress).

    ``allow_incomplete`` (a run that was killed or is still running): an unfinished last
    evaluation is dropped and described in ``incomplete_tail``; otherwise the output must end
    with ``PROGRAM ENDED`` and every evaluation must be complete, or an error names what is
    missing. A last line without newline is never read (it may be cut mid-number).
    """
    path = Path(path)
    if not path.is_file():
        raise Cp2kParseError(f"{path}: CP2K output file missing")
    lines = path.read_text(errors="replace").split("\n")
    cut = lines.pop() != ""  # the text after the last newline: a line that may be cut
    parser = _Parser(path, n_atoms, expect_stress)
    out = parser.run(lines)
    if parser.pending:
        out.incomplete_tail = parser.describe_pending()
    elif cut and not out.ended:
        out.incomplete_tail = f"the file ends inside line {len(lines) + 1} (no newline)"
    if parser.scf is False:
        out.scf_failed_in_tail = True
    if out.ended and not out.evaluations and out.aborted is None:
        raise Cp2kParseError(
            f"{path}: line {parser.ended_line + 1}: CP2K ended without any recognised force "
            "evaluation (no 'ENERGY| Total FORCE_EVAL' line followed by forces)"
        )
    if allow_incomplete:
        return out
    if parser.pending:
        raise Cp2kParseError(f"{path}: truncated output: {out.incomplete_tail}")
    if not out.ended and out.aborted is None:
        raise Cp2kParseError(
            f"{path}: truncated output: no '{_ENDED}' line after {len(out.evaluations)} complete "
            "force evaluation(s)"
        )
    return out
