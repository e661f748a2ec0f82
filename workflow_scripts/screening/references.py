"""Elemental reference phases: the μ_i = E_ref / atom of the formation energies.

Solids: ASE's reference state of the element (``ase.data.reference_states``, built by
``ase.build.bulk``: fcc, bcc, hcp, diamond, bct, rhombohedral, ...), relaxed with CP2K's
CELL_OPT at the run's settings with a k-mesh from ``screening.references.kpoint_spacing``
(metals: Fermi-Dirac smearing, as every k-point run). Ferromagnetic metals start with their
moments. Molecules: H2, N2, O2 (triplet), F2, Cl2, Br2, I2 in a cubic box, relaxed at Γ (the
halogens' molecular solids are held by dispersion, which PBE lacks; their molecule is the usual
reference). An element with neither (ASE gives no atomic basis for its reference state, e.g. Mn,
Ga, S) is refused with its name, unless ``screening.references.structures`` gives a file.

    python -m workflow_scripts.screening.references --element O --box 10 --out O.extxyz
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

# Bond lengths (Å, experimental) and spin multiplicities of the molecular references.
MOLECULES = {
    "H": (0.741, 1),
    "N": (1.098, 1),
    "O": (1.208, 3),  # O2's ground state is the triplet
    "F": (1.412, 1),
    "Cl": (1.988, 1),
    "Br": (2.281, 1),
    "I": (2.666, 1),
}
# Initial moments (μB/atom) of the ferromagnetic elemental metals (ASE gives Fe's only).
FERROMAGNETS = {"Fe": 2.3, "Co": 1.6, "Ni": 0.6, "Gd": 7.0}


class ReferenceError(ValueError):
    """An element without a reference phase this stage can build."""


@dataclass(frozen=True)
class Reference:
    element: str
    kind: str  # "solid" (cell relaxed, k-points) or "molecule" (in a box, Γ)
    atoms: object  # ase.Atoms with initial moments


def molecule(element: str, box: float):
    """X2 in a cubic box of ``box`` Å, along x, centred; O2 with one μB per atom (triplet)."""
    from ase import Atoms

    bond, multiplicity = MOLECULES[element]
    atoms = Atoms(
        [element, element],
        positions=[[0.0, 0.0, 0.0], [bond, 0.0, 0.0]],
        cell=[box, box, box],
        pbc=True,
    )
    atoms.center()
    atoms.set_initial_magnetic_moments([(multiplicity - 1) / 2] * 2)
    return atoms


def solid(element: str):
    """ASE's reference crystal of ``element`` (primitive cell), with ferromagnetic moments."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states

    state = reference_states[atomic_numbers[element]]
    if state is None:
        raise ReferenceError(f"element {element}: ASE has no reference state")
    if "basis" in state and state["basis"] is None:
        raise ReferenceError(
            f"element {element}: ASE's reference state ({state['symmetry']}) has no atomic "
            "basis to build it from"
        )
    try:
        atoms = bulk(element)
    except (ValueError, KeyError, NotImplementedError) as error:
        raise ReferenceError(
            f"element {element}: ase.build.bulk cannot build its reference state "
            f"({state.get('symmetry')}): {error}"
        ) from None
    moment = state.get("magmom_per_atom", FERROMAGNETS.get(element, 0.0))
    atoms.set_initial_magnetic_moments([moment] * len(atoms))
    return atoms


def reference(element: str, box: float, structures: dict[str, str] | None = None) -> Reference:
    """The reference phase of ``element``; ``structures`` maps elements to files that replace
    the built-in choice (relaxed as solids)."""
    from ase.data import atomic_numbers

    if element not in atomic_numbers or element == "X":
        raise ReferenceError(f"unknown element {element!r}")
    if structures and element in structures:
        from ase.io import read

        return Reference(element, "solid", read(structures[element]))
    if element in MOLECULES:
        return Reference(element, "molecule", molecule(element, box))
    try:
        return Reference(element, "solid", solid(element))
    except ReferenceError as error:
        raise ReferenceError(
            f"{error}; give one with screening.references.structures.{element}: <structure file>"
        ) from None


def plan_problems(elements, box: float, structures: dict[str, str] | None = None) -> list[str]:
    """Why some elements have no reference (checked at config time, before any job)."""
    problems = []
    for element in elements:
        try:
            reference(element, box, structures)
        except ReferenceError as error:
            problems.append(f"config key 'screening': no elemental reference: {error}")
    return problems


def positions_fixed_by_symmetry(atoms, symprec: float = 1e-3) -> bool:
    """True when no atom has a free coordinate: each atom's site-symmetry operations (those
    mapping it onto itself) leave only the zero displacement invariant. Forces vanish by
    symmetry then, so at a fixed cell a relaxation would only re-evaluate the start (fcc, bcc,
    hcp, diamond: yes; rhombohedral As/Bi and α-Mn have free parameters)."""
    import warnings

    import numpy as np
    import spglib

    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    with warnings.catch_warnings():  # spglib 2.x: a deprecation note about its error handling
        warnings.simplefilter("ignore", DeprecationWarning)
        symmetry = spglib.get_symmetry(cell, symprec=symprec)
    for position in cell[1]:
        invariant = []
        for rotation, translation in zip(
            symmetry["rotations"], symmetry["translations"], strict=True
        ):
            shift = rotation @ position + translation - position
            if np.abs(shift - np.round(shift)).max() < symprec:
                invariant.append(rotation - np.eye(3))
        if np.linalg.matrix_rank(np.vstack(invariant), tol=1e-6) < 3:
            return False
    return True


def kpoints(element: str, box: float, spacing: float, structures=None) -> list[int] | None:
    """The reference's k-mesh (None = Γ: molecules, or a mesh of 1x1x1)."""
    from workflow_scripts.cp2k.inputs import kpoint_mesh

    ref = reference(element, box, structures)
    if ref.kind == "molecule":
        return None
    mesh = kpoint_mesh(ref.atoms.cell, spacing)
    return None if mesh is None else list(mesh)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.screening.references")
    parser.add_argument("--element", required=True)
    parser.add_argument("--box", type=float, required=True, help="molecule box edge, Å")
    parser.add_argument("--structure", help="a file replacing the built-in reference")
    parser.add_argument("--out", required=True, type=Path, help="extxyz")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from ase.io import write

    args = parse_args(argv)
    structures = {args.element: args.structure} if args.structure else None
    ref = reference(args.element, args.box, structures)
    ref.atoms.info.update({"element": args.element, "reference_kind": ref.kind})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(args.out, ref.atoms, format="extxyz")
    print(f"{args.element}: {ref.kind} {ref.atoms.get_chemical_formula()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
