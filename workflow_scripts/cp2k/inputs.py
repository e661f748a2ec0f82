"""One generator for every CP2K input of the workflow: relaxations, single points, atoms.

Study settings (``dft`` config section): PBE, GTH pseudopotentials with the basis' valence
(:mod:`.basis`), NGRIDS/CUTOFF/REL_CUTOFF from the config, OT + outer SCF at Γ and
diagonalisation + Broyden mixing with k-points (:mod:`.scf`), GEO_OPT BFGS with MAX_FORCE
converted from eV/Å to Hartree/bohr, UKS with a multiplicity chosen from the electron count
and the initial moments, and one KIND per element and initial moment with MAGNETIZATION
(:mod:`.magnetism`: threshold, rounding, and what CP2K's atomic guess accepts). Every force
evaluation prints energy, forces (12 digits) and, optionally, the analytical stress; the
trajectory files hold the positions of each step.

CLI::

    python -m workflow_scripts.cp2k.inputs write --task relax --structure S.json \
        --settings dft.json --out cp2k.inp
    python -m workflow_scripts.cp2k.inputs check --settings dft.json \
        --elements Sr Ti O --workdir /tmp/check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from workflow_scripts.cp2k import basis as basis_module
from workflow_scripts.cp2k.atoms import isolated_atom, isolated_atom_scf
from workflow_scripts.cp2k.magnetism import (
    Kind,
    assign_kinds,
    effective_moments,
    unpaired_electrons,
)
from workflow_scripts.cp2k.scf import ScfStrategy, added_mos, base_strategy, strategy
from workflow_scripts.elements import ATOMIC_NUMBER

TASKS = ("relax", "cell_relax", "single_point", "isolated_atom")
# Tasks with an optimiser: CP2K run type and the MOTION subsection that configures it.
OPTIMISATIONS = {"relax": "GEO_OPT", "cell_relax": "CELL_OPT"}
# Settings that only one task reads: left out of the other tasks' settings hash, so adding
# them (or changing them) redoes no other DFT job.
TASK_ONLY_KEYS = {"host_cell": "cell_relax"}
PROJECT = "cp2k"
INPUT_NAME = "cp2k.inp"
OUTPUT_NAME = "cp2k.out"
# Keys that change no number CP2K computes: left out of the settings hash, and kept out of
# the dft settings file (they go to the runtime settings file) so a new wall time, launcher or
# CP2K path reruns no DFT job and nothing downstream.
NON_PHYSICS_KEYS = (
    "command",
    "mpi_launcher",
    "mpi_ranks",
    "data_dir",
    "custodian",
    "walltime_margin_min",
    "resources",
    "failures",
    "batch",
    "prerelax",  # moves the starting geometry: hashed with the structure, not the settings
)


class InputError(ValueError):
    """The structure and settings cannot make a valid CP2K input."""


# --- a tiny CP2K input tree ------------------------------------------------------------------


@dataclass
class Section:
    name: str
    parameter: str | None = None
    keywords: list[tuple[str, object]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def set(self, key: str, value: object = None) -> Section:
        self.keywords.append((key, value))
        return self

    def section(self, name: str, parameter: str | None = None) -> Section:
        child = Section(name, parameter)
        self.sections.append(child)
        return child

    def render(self, indent: int = 0) -> list[str]:
        pad = "  " * indent
        lines = [f"{pad}# {comment}" for comment in self.comments]
        lines.append(f"{pad}&{self.name}" + (f" {self.parameter}" if self.parameter else ""))
        for key, value in self.keywords:
            lines.append(f"{pad}  {key}" + ("" if value is None else f" {_format(value)}"))
        for child in self.sections:
            lines += child.render(indent + 1)
        lines.append(f"{pad}&END {self.name}")
        return lines


def _format(value: object) -> str:
    if isinstance(value, bool):
        return ".TRUE." if value else ".FALSE."
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(_format(v) for v in value)
    return str(value)


# --- what is computed -------------------------------------------------------------------------


@dataclass(frozen=True)
class SpinState:
    polarized: bool
    multiplicity: int
    n_electrons: int


@dataclass
class Calculation:
    """Everything but the SCF rung and restart files: fixed for all attempts of one job."""

    task: str
    atoms: object  # ase.Atoms with initial magnetic moments
    basis: dict  # element -> BasisChoice
    spin: SpinState
    kpoints: tuple[int, int, int] | None
    base_scf: ScfStrategy
    stress: bool
    settings_hash: str
    # per-atom CP2K kind names and the magnetic kinds (.magnetism); empty: one kind per element
    atom_kinds: tuple[str, ...] = ()
    kinds: tuple[Kind, ...] = ()


def dft_settings(overrides: dict | None = None) -> dict:
    """The ``dft`` section with schema defaults filled in (for scripts, tests, benchmarks)."""
    from workflow_scripts.config import load_schema, validate_schema

    return validate_schema(overrides or {}, load_schema()["properties"]["dft"])


def settings_hash(settings: dict, task: str | None = None) -> str:
    """12 hex digits identifying the physics of the settings (not where/how CP2K runs) for
    ``task`` (keys only another task reads are left out)."""
    skip = NON_PHYSICS_KEYS + ("run_label",)
    skip += tuple(key for key, owner in TASK_ONLY_KEYS.items() if owner != task)
    physics = {k: v for k, v in settings.items() if k not in skip}
    text = json.dumps(physics, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def kpoint_mesh(cell, spacing: float | None) -> tuple[int, int, int] | None:
    """Monkhorst-Pack mesh with at most ``spacing`` Å⁻¹ (2π included) between k-points."""
    if spacing is None:
        return None
    import numpy as np

    reciprocal = 2 * math.pi * np.linalg.inv(np.asarray(cell, dtype=float)).T
    mesh = tuple(max(1, math.ceil(np.linalg.norm(b) / spacing)) for b in reciprocal)
    return None if mesh == (1, 1, 1) else mesh


def apply_magmom_overrides(atoms, settings: dict) -> None:
    """``dft.elements.<El>.magmom`` replaces the structure's initial moment of that element."""
    overrides = settings.get("elements") or {}
    moments = list(atoms.get_initial_magnetic_moments())
    for i, symbol in enumerate(atoms.get_chemical_symbols()):
        if "magmom" in overrides.get(symbol, {}):
            moments[i] = float(overrides[symbol]["magmom"])
    atoms.set_initial_magnetic_moments(moments)


def spin_state(
    atoms, basis: dict, mode: str = "auto", multiplicity: int | None = None
) -> SpinState:
    """UKS when the electron count is odd or any effective initial moment (``|m|`` >= 0.5 μB,
    :mod:`.magnetism`) is set (``mode`` auto): an antiferromagnet (moments summing to 0) is
    UKS with multiplicity 1.

    Multiplicity = 1 + the number of unpaired electrons nearest to |sum of the effective
    moments| with the parity of the electron count (a tie goes up). ``multiplicity``
    (isolated atoms) is taken as given.
    """
    n_electrons = sum(basis[s].valence for s in atoms.get_chemical_symbols())
    moments = effective_moments(atoms.get_initial_magnetic_moments())
    if multiplicity is None:
        multiplicity = 1 + unpaired_electrons(float(moments.sum()), n_electrons)
    elif (multiplicity - 1) % 2 != n_electrons % 2:
        raise InputError(
            f"multiplicity {multiplicity} impossible with {n_electrons} valence electrons"
        )
    odd = n_electrons % 2 == 1
    if mode == "never":
        if odd or multiplicity > 1:
            raise InputError(
                f"dft.spin_polarized is 'never' but the cell has {n_electrons} electrons and "
                f"multiplicity {multiplicity}"
            )
        return SpinState(False, 1, n_electrons)
    polarized = mode == "always" or odd or multiplicity > 1 or any(abs(m) > 1e-8 for m in moments)
    return SpinState(polarized, multiplicity, n_electrons)


def prepare(task: str, atoms, settings: dict, data_dir: Path | None = None) -> Calculation:
    """Basis, spin, k-points and starting SCF strategy of one calculation."""
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; one of {TASKS}")
    atoms = atoms.copy()
    for symbol in set(atoms.get_chemical_symbols()):
        if symbol not in ATOMIC_NUMBER:
            raise InputError(f"unknown element {symbol!r}")
    basis = basis_module.choose_all(atoms.get_chemical_symbols(), settings, data_dir)
    atom_kinds, kinds = (), ()  # one kind per element
    if task == "isolated_atom":
        multiplicity = int(round(atoms.get_initial_magnetic_moments().sum())) + 1
        spin = spin_state(atoms, basis, "auto", multiplicity)
        can_smear = empty_orbitals(atoms, basis, spin) > 0
        kpoints, base_scf, stress = None, isolated_atom_scf(settings, can_smear), False
    else:
        apply_magmom_overrides(atoms, settings)
        atoms.set_initial_magnetic_moments(effective_moments(atoms.get_initial_magnetic_moments()))
        spin = spin_state(atoms, basis, settings["spin_polarized"])
        if task in OPTIMISATIONS:  # a host cell: the caller sets the host's mesh
            kpoints = tuple(settings["kpoints"]) if settings["kpoints"] else None
            if kpoints == (1, 1, 1):
                kpoints = None
        elif settings["single_point"].get("kpoints"):  # a mesh given for this job
            kpoints = tuple(settings["single_point"]["kpoints"])
            if kpoints == (1, 1, 1):
                kpoints = None
        else:
            kpoints = kpoint_mesh(atoms.cell, settings["single_point"]["kpoint_spacing"])
        base_scf = base_strategy(settings["scf"], uses_kpoints=kpoints is not None)
        stress = bool(settings["print_stress"]) or task == "cell_relax"
        if spin.polarized and atoms.get_initial_magnetic_moments().any():
            # one kind per element and moment, with MAGNETIZATION (isolated atoms: the
            # multiplicity alone, their spin is the atom's ground state)
            data_dir = data_dir or basis_module.find_data_dir(
                settings.get("data_dir"), settings.get("command")
            )
            atom_kinds, kinds = assign_kinds(
                atoms.get_chemical_symbols(),
                atoms.get_initial_magnetic_moments(),
                basis,
                data_dir,
                ATOMIC_NUMBER,
            )
    return Calculation(
        task,
        atoms,
        basis,
        spin,
        kpoints,
        base_scf,
        stress,
        settings_hash(settings, task),
        atom_kinds,
        kinds,
    )


def prepare_isolated_atom(element: str, settings: dict, data_dir: Path | None = None):
    return prepare("isolated_atom", isolated_atom(element, settings), settings, data_dir)


# --- rendering --------------------------------------------------------------------------------


def _global(calc: Calculation, walltime_s: float | None) -> Section:
    glob = Section("GLOBAL")
    glob.set("PROJECT", PROJECT)
    glob.set("RUN_TYPE", OPTIMISATIONS.get(calc.task, "ENERGY_FORCE"))
    glob.set("PRINT_LEVEL", "LOW")
    if walltime_s:
        glob.set("WALLTIME", int(walltime_s))
    return glob


def _motion(calc: Calculation, settings: dict, max_iter: int) -> Section:
    from workflow_scripts.cp2k.units import ev_per_angstrom_to_hartree_per_bohr

    geo = settings["geo_opt"]
    run_type = OPTIMISATIONS[calc.task]
    motion = Section("MOTION")
    opt = motion.section(run_type)
    if calc.task == "cell_relax":
        host_cell = settings["host_cell"]
        opt.set("TYPE", "DIRECT_CELL_OPT")
        if _cubic_symmetry(calc, settings):  # with CELL/SYMMETRY CUBIC (_subsys)
            opt.set("KEEP_SYMMETRY", True)
        else:
            opt.set("KEEP_ANGLES", True)
        # CP2K's EXTERNAL_PRESSURE defaults to 100 bar, not 0: set it (bar)
        opt.set("EXTERNAL_PRESSURE", 0.0)
        opt.set("PRESSURE_TOLERANCE", float(host_cell["pressure_tolerance"]))
        opt.comments.append("pressures in bar; positions relax with the GEO_OPT criteria")
    max_force = ev_per_angstrom_to_hartree_per_bohr(geo["max_force"])
    opt.comments.append(
        f"MAX_FORCE {geo['max_force']} eV/A = {max_force:.6e} Hartree/bohr (ase.units, CODATA "
        "2014); RMS_FORCE defaults to MAX_FORCE so the force criterion is 'every force below'"
    )
    opt.set("OPTIMIZER", geo["optimizer"])
    opt.set("MAX_ITER", int(max_iter))
    opt.set("MAX_FORCE", float(f"{max_force:.6e}"))
    rms_force = geo["rms_force"] if geo["rms_force"] is not None else geo["max_force"]
    opt.set("RMS_FORCE", float(f"{ev_per_angstrom_to_hartree_per_bohr(rms_force):.6e}"))
    for key in ("max_dr", "rms_dr"):
        if geo[key] is not None:
            opt.set(key.upper(), geo[key])
    printing = motion.section("PRINT")
    names = ["TRAJECTORY", "FORCES", "CELL"] + (["STRESS"] if settings["print_stress"] else [])
    for name in names:
        printing.section(name).section("EACH").set(run_type, 1)
    printing.section("RESTART").set("BACKUP_COPIES", 0)
    printing.section("RESTART_HISTORY", "OFF")
    return motion


def _cubic_symmetry(calc: Calculation, settings: dict) -> bool:
    """A cubic host cell kept cubic (CELL/SYMMETRY CUBIC + KEEP_SYMMETRY)."""
    if calc.task != "cell_relax" or not settings["host_cell"]["keep_symmetry"]:
        return False
    import numpy as np

    lengths_angles = calc.atoms.cell.cellpar()
    return bool(
        np.allclose(lengths_angles[:3], lengths_angles[0], rtol=1e-6)
        and np.allclose(lengths_angles[3:], 90.0, atol=1e-6)
    )


def empty_orbitals(atoms, basis: dict, spin: SpinState) -> int:
    """Basis functions left after the majority spin's occupied orbitals."""
    n_functions = sum(basis[s].n_functions for s in atoms.get_chemical_symbols())
    if spin.polarized:
        occupied = (spin.n_electrons + spin.multiplicity - 1) // 2
    else:
        occupied = (spin.n_electrons + 1) // 2
    return n_functions - occupied


def _scf(calc: Calculation, scf: ScfStrategy, wfn_restart: str | None) -> Section:
    section = Section("SCF")
    section.comments.append(f"SCF strategy {scf.describe()}")
    section.set("SCF_GUESS", "RESTART" if wfn_restart else "ATOMIC")
    section.set("EPS_SCF", scf.eps_scf)
    section.set("MAX_SCF", scf.max_scf)
    if scf.method == "ot":
        ot = section.section("OT", "ON")
        ot.set("MINIMIZER", scf.minimizer)
        ot.set("PRECONDITIONER", scf.preconditioner)
        outer = section.section("OUTER_SCF", "ON")
        outer.set("EPS_SCF", scf.eps_scf)
        outer.set("MAX_SCF", scf.outer_max_scf)
    else:
        empty = empty_orbitals(calc.atoms, calc.basis, calc.spin)
        smear_on = scf.smearing_temperature > 0 and empty > 0
        if scf.smearing_temperature > 0 and not smear_on:
            section.comments.append("no smearing: the basis has no empty orbital to smear into")
        if smear_on:
            section.set("ADDED_MOS", min(added_mos(calc.spin.n_electrons), empty))
        section.section("DIAGONALIZATION", "ON").set("ALGORITHM", "STANDARD")
        mixing = section.section("MIXING", "ON")
        mixing.set("METHOD", "BROYDEN_MIXING")
        mixing.set("ALPHA", scf.mixing_alpha)
        mixing.set("NBUFFER", scf.mixing_nbuffer)
        if smear_on:
            smear = section.section("SMEAR", "ON")
            smear.set("METHOD", "FERMI_DIRAC")
            smear.set("ELECTRONIC_TEMPERATURE", float(scf.smearing_temperature))
            if calc.spin.polarized and calc.kpoints:
                # CP2K 2023.1 aborts on a fixed moment with k-points: the moment may relax.
                smear.comments.append("moment free: CP2K has no fixed moment with k-points")
            elif calc.spin.polarized:
                smear.set("FIXED_MAGNETIC_MOMENT", float(calc.spin.multiplicity - 1))
    section.section("PRINT").section("RESTART").set("BACKUP_COPIES", 0)
    return section


def _dft(calc: Calculation, settings: dict, scf: ScfStrategy, wfn_restart: str | None) -> Section:
    dft = Section("DFT")
    for basis_file in sorted({c.basis_file for c in calc.basis.values()}):
        dft.set("BASIS_SET_FILE_NAME", basis_file)
    dft.set("POTENTIAL_FILE_NAME", "GTH_POTENTIALS")
    if wfn_restart:
        dft.set("WFN_RESTART_FILE_NAME", wfn_restart)
    dft.set("CHARGE", 0)
    if calc.spin.polarized:
        dft.set("UKS")
        dft.set("MULTIPLICITY", calc.spin.multiplicity)
    dft.comments.append(
        f"{calc.spin.n_electrons} valence electrons, "
        + (f"UKS multiplicity {calc.spin.multiplicity}" if calc.spin.polarized else "RKS")
    )
    mgrid = dft.section("MGRID")
    mgrid.set("NGRIDS", settings["ngrids"])
    mgrid.set("CUTOFF", float(settings["cutoff"]))
    mgrid.set("REL_CUTOFF", float(settings["rel_cutoff"]))
    dft.section("QS").set("EPS_DEFAULT", float(settings["eps_default"]))
    dft.sections.append(_scf(calc, scf, wfn_restart))
    xc = dft.section("XC")
    xc.section("XC_FUNCTIONAL", settings["xc"])
    if calc.kpoints:
        dft.section("KPOINTS").set("SCHEME", ["MONKHORST-PACK", *calc.kpoints])
    printing = dft.section("PRINT")
    printing.section("MULLIKEN", "OFF")
    printing.section("HIRSHFELD", "OFF")
    return dft


def _subsys(calc: Calculation, settings: dict) -> Section:
    atoms = calc.atoms
    subsys = Section("SUBSYS")
    cell = subsys.section("CELL")
    for name, vector in zip("ABC", atoms.cell, strict=True):
        cell.set(name, [f"{x:.10f}" for x in vector])
    cell.set("PERIODIC", "XYZ")
    if _cubic_symmetry(calc, settings):
        cell.set("SYMMETRY", "CUBIC")  # kept by MOTION/CELL_OPT/KEEP_SYMMETRY
    coord = subsys.section("COORD")
    symbols = atoms.get_chemical_symbols()
    names = list(calc.atom_kinds) or symbols
    for name, position in zip(names, atoms.positions, strict=True):
        coord.set(name, [f"{x:.10f}" for x in position])
    # One kind per element and (rounded) initial moment, MAGNETIZATION where CP2K's atomic
    # guess can place it (.magnetism: it aborts on a moment no valence shell can hold, e.g.
    # 2 μB on Pt); MULTIPLICITY sets the total spin.
    magnetic = {kind.name: kind for kind in calc.kinds}
    for name in sorted(set(names), key=names.index):
        info = magnetic.get(name)
        element = info.element if info else name
        choice = calc.basis[element]
        kind = subsys.section("KIND", name)
        kind.comments.append(f"{element}: {choice.note}")
        if name != element:
            kind.set("ELEMENT", element)
        kind.set("BASIS_SET", choice.basis)
        kind.set("POTENTIAL", choice.potential)
        kind.set("POTENTIAL_FILE_NAME", choice.potential_file)
        if info and info.moment:
            kind.comments.append(f"initial moment {info.moment:+d} muB")
        if info and info.note:
            kind.comments.append(info.note)
        if info and info.magnetization is not None:
            kind.set("MAGNETIZATION", info.magnetization)
    return subsys


def optimiser_max_iter(task: str, settings: dict) -> int:
    """Optimiser steps over all attempts of a relaxation or host cell relaxation."""
    return settings["host_cell" if task == "cell_relax" else "geo_opt"]["max_iter"]


def render_input(
    calc: Calculation,
    settings: dict,
    *,
    scf_level: int = 0,
    wfn_restart: str | None = None,
    max_iter: int | None = None,
    walltime_s: float | None = None,
    run_type: str | None = None,
) -> str:
    """The CP2K input text. ``run_type`` NONE only sets CP2K up (used by ``check``)."""
    scf = strategy(calc.base_scf, scf_level)
    glob = _global(calc, walltime_s)
    if run_type:  # a setup-only run prints the kinds' basis and potential (PRINT_LEVEL MEDIUM)
        glob.keywords = [(k, v) for k, v in glob.keywords if k not in ("RUN_TYPE", "PRINT_LEVEL")]
        glob.set("RUN_TYPE", run_type).set("PRINT_LEVEL", "MEDIUM")
    force_eval = Section("FORCE_EVAL")
    force_eval.set("METHOD", "QS")
    if calc.stress:
        force_eval.set("STRESS_TENSOR", "ANALYTICAL")
    force_eval.sections.append(_dft(calc, settings, scf, wfn_restart))
    force_eval.sections.append(_subsys(calc, settings))
    printing = force_eval.section("PRINT")
    printing.section("FORCES", "ON").set("NDIGITS", 12)
    if calc.stress:
        printing.section("STRESS_TENSOR", "ON")
    header = [
        f"# CP2K input written by workflow_scripts.cp2k.inputs ({calc.task})",
        f"# settings hash {calc.settings_hash}; "
        f"k-points {'x'.join(map(str, calc.kpoints)) if calc.kpoints else 'Gamma only'}",
    ]
    lines = header + glob.render()
    if calc.task in OPTIMISATIONS:
        steps = max_iter or optimiser_max_iter(calc.task, settings)
        lines += _motion(calc, settings, steps).render()
    lines += force_eval.render()
    return "\n".join(lines) + "\n"


# --- structures in, checks out ------------------------------------------------------------------


def load_structure(path: Path | str, index: int | None = None):
    """ASE atoms (with initial moments) and metadata from a pymatgen JSON or an extxyz file."""
    from ase import Atoms

    path = Path(path)
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        try:
            cell = data["lattice"]["matrix"]
            sites = data["sites"]
            symbols = [site["species"][0]["element"] for site in sites]
            positions = [site["xyz"] for site in sites]
        except (KeyError, IndexError, TypeError) as error:
            raise InputError(
                f"{path}: not a pymatgen Structure dict ({error!r} missing)"
            ) from error
        atoms = Atoms(symbols, positions=positions, cell=cell, pbc=True)
        moments = [float(site.get("properties", {}).get("magmom", 0.0) or 0.0) for site in sites]
        atoms.set_initial_magnetic_moments(moments)
        return atoms, dict(data.get("properties") or {})
    from ase.io import read

    frames = read(path, index=":")
    index = 0 if index is None else index
    if not 0 <= index < len(frames):
        raise InputError(f"{path}: no frame {index} (the file has {len(frames)})")
    atoms = with_initial_moments(frames[index])
    return atoms, dict(atoms.info)


def with_initial_moments(atoms):
    """Initial moments of an extxyz frame: an explicit array, else the reference's converged
    moments (MPtrj's VASP moments, REF_magmom, start the CP2K single point in VASP's spin
    state)."""
    import numpy as np

    for key in ("initial_magmoms", "magmoms", "magmom", "REF_magmom"):
        if key in atoms.arrays:
            atoms.set_initial_magnetic_moments(np.asarray(atoms.arrays[key], dtype=float))
            break
    return atoms


@dataclass
class CheckResult:
    element: str
    input_file: str
    ok: bool
    message: str


def _setup_valences(output: str) -> dict[str, int]:
    """Kind name -> electrons of its GTH potential, as CP2K printed them during setup."""
    import re

    valences, kind = {}, None
    for line in output.splitlines():
        match = re.match(r"\s+\d+\. Atomic kind: (\S+)", line)
        if match:
            kind = match.group(1)
        if "Electronic configuration (s p d ...):" in line and kind:
            valences[kind] = sum(int(n) for n in line.split(":")[1].split())
    return valences


def _syntax_check(command: str, path: Path) -> str | None:
    """None if ``cp2k --check`` accepts the input, else its complaint."""
    result = subprocess.run(
        [command, "--check", "-i", path.name], cwd=path.parent, capture_output=True, text=True
    )
    if result.returncode == 0 and "SUCCESS" in result.stdout:
        return None
    return f"cp2k --check failed: {(result.stdout + result.stderr).strip()}"


def _setup_run(elements: list[str], settings: dict, workdir: Path, name: str):
    """CP2K's own setup (RUN_TYPE NONE reads every kind's basis and potential) of one cell
    holding ``elements`` on a small grid; returns (returncode, printed valences, output)."""
    from ase import Atoms

    side = math.ceil(len(elements) ** (1 / 3))
    positions = [
        (2.0 * (i % side), 2.0 * (i // side % side), 2.0 * (i // side**2))
        for i in range(len(elements))
    ]
    atoms = Atoms(elements, positions=positions, cell=[2.0 * side + 3.0] * 3, pbc=True)
    small = {**settings, "cutoff": 100, "rel_cutoff": 20, "ngrids": 1}
    calc = prepare("single_point", atoms, small)
    calc.kpoints = None
    path = workdir / f"{name}.inp"
    path.write_text(render_input(calc, small, run_type="NONE"))
    result = subprocess.run(
        [settings["command"], "-i", path.name],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=_cp2k_env(1),
    )
    output = result.stdout + result.stderr
    (workdir / f"{name}.out").write_text(output)
    return result.returncode, _setup_valences(result.stdout), output


def check_elements(elements, settings: dict, workdir: Path) -> list[CheckResult]:
    """Each element's study input (its isolated-atom input, the same generator as every other
    calculation) through ``cp2k --check``; then one CP2K setup of all elements together
    confirms that CP2K finds each basis and potential and reads the basis' valence qN."""
    workdir.mkdir(parents=True, exist_ok=True)
    results, inputs = {}, {}
    for element in elements:
        try:
            calc = prepare_isolated_atom(element, settings)
        except (basis_module.BasisError, InputError, KeyError) as error:
            results[element] = CheckResult(element, "", False, str(error))
            continue
        path = workdir / f"{element}.inp"
        path.write_text(render_input(calc, settings))
        problem = _syntax_check(settings["command"], path)
        if problem:
            results[element] = CheckResult(element, str(path), False, problem)
        inputs[element] = (path, calc.basis[element])
    pending = [e for e in inputs if e not in results]
    if pending:
        code, valences, _ = _setup_run(pending, settings, workdir, "setup_all")
        for element in pending:
            path, choice = inputs[element]
            if code != 0:  # find the culprit(s): one setup per element
                code_1, valences_1, output = _setup_run(
                    [element], settings, workdir, f"setup_{element}"
                )
                if code_1 != 0:
                    tail = "\n".join(output.splitlines()[-12:])
                    results[element] = CheckResult(
                        element, str(path), False, f"CP2K setup failed:\n{tail}"
                    )
                    continue
                valences.update(valences_1)
            if valences.get(element) != choice.valence:
                results[element] = CheckResult(
                    element,
                    str(path),
                    False,
                    f"valence mismatch: basis q{choice.valence}, CP2K read "
                    f"{valences.get(element)} electrons from {choice.potential}",
                )
            else:
                results[element] = CheckResult(
                    element,
                    str(path),
                    True,
                    f"{choice.basis} ({choice.basis_file}) + {choice.potential} "
                    f"({choice.potential_file}), q{choice.valence}: {choice.note}",
                )
    return [results[element] for element in elements]


def _cp2k_env(threads: int) -> dict:
    import os

    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def load_settings(path: str | Path, runtime: str | Path | None = None) -> dict:
    """The dft settings: the physics file (``paths.SECTION_SETTINGS`` of dft) with, when
    given, the runtime keys (``paths.DFT_RUNTIME_SETTINGS``) on top."""
    settings = json.loads(Path(path).read_text())
    if runtime is not None:
        settings.update(json.loads(Path(runtime).read_text()))
    settings.pop("run_label", None)
    optional = ("resources", "failures", "batch")
    missing = [k for k in NON_PHYSICS_KEYS if k not in settings and k not in optional]
    if missing:
        raise KeyError(f"{path}: no {', '.join(missing)} (pass --runtime-settings)")
    return settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.cp2k.inputs")
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write one CP2K input")
    write.add_argument("--task", choices=TASKS, required=True)
    write.add_argument("--structure", help="pymatgen JSON or extxyz (not for isolated_atom)")
    write.add_argument("--index", type=int, default=None, help="frame of an extxyz file")
    write.add_argument("--element", help="isolated_atom: the element")
    write.add_argument("--settings", required=True, help="the dft settings (JSON)")
    write.add_argument("--runtime-settings", help="the dft_runtime settings (JSON)")
    write.add_argument("--out", required=True)
    check = sub.add_parser("check", help="cp2k --check + setup of each element's study input")
    check.add_argument("--settings", required=True)
    check.add_argument("--runtime-settings", help="the dft_runtime settings (JSON)")
    check.add_argument("--elements", nargs="+", required=True)
    check.add_argument("--workdir", required=True)
    check.add_argument("--report", help="also write the report to this file")
    args = parser.parse_args(argv)
    settings = load_settings(args.settings, args.runtime_settings)
    if args.command == "write":
        if args.task == "isolated_atom":
            calc = prepare_isolated_atom(args.element, settings)
        else:
            atoms, _ = load_structure(args.structure, args.index)
            calc = prepare(args.task, atoms, settings)
        Path(args.out).write_text(render_input(calc, settings))
        return 0
    if shutil.which(settings["command"]) is None:
        print(f"CP2K binary {settings['command']!r} not found", file=sys.stderr)
        return 2
    results = check_elements(args.elements, settings, Path(args.workdir))
    lines = [f"{r.element:3s} {'OK  ' if r.ok else 'FAIL'} {r.message}" for r in results]
    print("\n".join(lines))
    if args.report:
        Path(args.report).write_text("\n".join(lines) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
