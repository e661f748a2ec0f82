"""Isolated atoms: spin state, box and SCF strategy of the E0 reference calculations.

Spin: the free atom's ground-state multiplicity 2S+1 (NIST term symbols, table in
:mod:`workflow_scripts.elements`), overridable per element as ``dft.elements.<El>.multiplicity``.

SCF: open-shell transition-metal atoms have partly filled degenerate d shells; with integer
occupations the SCF hops between equivalent orbitals and OT stalled (Ti; docs/cp2k_behaviour.md). We
diagonalise with Broyden mixing and Fermi-Dirac smearing at a fixed magnetic moment
(``SMEAR/FIXED_MAGNETIC_MOMENT`` = 2S), so degenerate orbitals share their electrons and the
spin state stays the ground state's; settings in ``dft.isolated_atoms``. Smearing needs an
empty orbital in the majority spin: a minimal basis may have none (O with SZV: 4 functions, 4
alpha electrons), and integer-occupation diagonalisation then sloshes between the p orbitals
without end (measured: 300 steps, no convergence). Such atoms use OT instead, which minimises
directly and converges to a (symmetry-broken) integer-occupation state.
"""

from __future__ import annotations

from workflow_scripts.cp2k.scf import ScfStrategy, base_strategy
from workflow_scripts.elements import GROUND_STATE_MULTIPLICITY


def ground_state_multiplicity(element: str, settings: dict | None = None) -> int:
    """2S+1 of the free atom: the config override, else the NIST ground state."""
    override = ((settings or {}).get("elements") or {}).get(element, {})
    if "multiplicity" in override:
        return int(override["multiplicity"])
    if element not in GROUND_STATE_MULTIPLICITY:
        raise KeyError(
            f"no ground-state multiplicity for {element}; set dft.elements.{element}.multiplicity"
        )
    return GROUND_STATE_MULTIPLICITY[element]


def isolated_atom(element: str, settings: dict):
    """One atom in the middle of a cubic periodic box of ``dft.isolated_atoms.box`` Å."""
    from ase import Atoms

    box = float(settings["isolated_atoms"]["box"])
    atoms = Atoms(element, positions=[[box / 2] * 3], cell=[box] * 3, pbc=True)
    atoms.set_initial_magnetic_moments([ground_state_multiplicity(element, settings) - 1])
    return atoms


def isolated_atom_scf(settings: dict, can_smear: bool = True) -> ScfStrategy:
    """Level 0 of an isolated atom: diagonalisation + smearing, or OT where the basis leaves
    no empty orbital to smear into (see the module docstring)."""
    atom_scf = {**settings["scf"], **settings["isolated_atoms"]["scf"], "method": "auto"}
    if not can_smear:  # OT: inner loop and outer loops as for crystals
        atom_scf["max_scf"] = settings["scf"]["max_scf"]
    return base_strategy(atom_scf, uses_kpoints=False, force_diagonalization=can_smear)
