"""What every CP2K calculation of the workflow computes (relaxations, single points, atoms):
its basis, spin, k-points and starting SCF (:func:`prepare`), the settings and their hash.
The input file is rendered by :mod:`.input_file`, checked by :mod:`.input_check`.

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
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.cp2k import basis as basis_module
from workflow_scripts.cp2k.atoms import isolated_atom, isolated_atom_scf
from workflow_scripts.cp2k.magnetism import (
    Kind,
    assign_kinds,
    effective_moments,
    unpaired_electrons,
)
from workflow_scripts.cp2k.scf import ScfStrategy, base_strategy
from workflow_scripts.elements import ATOMIC_NUMBER
from workflow_scripts.files import sha256_text

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
    return sha256_text(text, 12)


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


def empty_orbitals(atoms, basis: dict, spin: SpinState) -> int:
    """Basis functions left after the majority spin's occupied orbitals."""
    n_functions = sum(basis[s].n_functions for s in atoms.get_chemical_symbols())
    if spin.polarized:
        occupied = (spin.n_electrons + spin.multiplicity - 1) // 2
    else:
        occupied = (spin.n_electrons + 1) // 2
    return n_functions - occupied


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


def omp_environment(threads: int) -> dict:
    """This process's environment with CP2K's OpenMP threads set; passive waiting, since
    busy-waiting threads halve CP2K's speed (docs/cp2k_behaviour.md)."""
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
    from workflow_scripts.cp2k.input_check import check_elements
    from workflow_scripts.cp2k.input_file import render_input

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
