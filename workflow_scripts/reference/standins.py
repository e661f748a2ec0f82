"""Offline stand-ins for MPtrj and OMat24, written in the real formats.

MPtrj and OMat24 cannot be downloaded here, so the demo and the tests build small
look-alikes that go through the same ingestion code:

1. ``build``: a few hundred bulk structures of the demo chemistry (cubic perovskites of
   Sr/Ba/Cs/Rb on A, Ti/Zr/Sn/Pb on B, O/Br on X, and the related binaries and elements;
   no doped supercells: MPtrj holds none of the Perovs-Dopants structures, and a stand-in that
   did would put the dopant structures inside the pretraining distribution), each a
   "material" with several frames: the ideal cell (MPtrj's relaxed frame) and rattled,
   strained copies (MPtrj's relaxation steps; OMat24's rattled structures). Every name
   carries "stand-in".
2. ``label``: energies, forces, stresses and magnetic moments from CHGNet (its weights ship in
   the chgnet wheel; nothing is downloaded). These are CHGNet numbers, not DFT.
3. ``mptrj-json``: MPtrj's exact layout ``{mp_id: {frame_id: {structure, uncorrected_total_energy,
   corrected_total_energy, energy_per_atom, ef_per_atom, e_per_atom_relaxed,
   ef_per_atom_relaxed, force, stress, magmom, bandgap, mp_id}}}``, stress in kBar with
   VASP's sign. There are no MP2020 corrections, formation energies or band gaps for stand-ins:
   ``corrected_total_energy`` equals the uncorrected energy, the others are null.
4. ``omat24-db``: an ``.aselmdb`` file (ase-db-backends) with energy, forces and stress
   (eV/Å³, ASE sign) on a single-point calculator and a ``sid`` key per row, as OMat24 ships.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.cp2k.units import GPA_TO_EV_PER_ANGSTROM3

FRAC_PEROVSKITE = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
# (A, B, X, cubic lattice constant in Å); some are hypothetical, which a stand-in may be.
PEROVSKITES = [
    ("Sr", "Ti", "O", 3.905),
    ("Ba", "Ti", "O", 4.00),
    ("Sr", "Zr", "O", 4.15),
    ("Ba", "Zr", "O", 4.19),
    ("Sr", "Sn", "O", 4.03),
    ("Ba", "Sn", "O", 4.12),
    ("Cs", "Pb", "Br", 5.87),
    ("Rb", "Pb", "Br", 5.80),
    ("Cs", "Sn", "Br", 5.80),
    ("Rb", "Sn", "Br", 5.74),
]
# ASE bulk() prototypes: (formula, crystal structure, a, c or None)
BINARIES_AND_ELEMENTS = [
    ("SrO", "rocksalt", 5.16, None),
    ("BaO", "rocksalt", 5.52, None),
    ("RbBr", "rocksalt", 6.89, None),
    ("CsBr", "cesiumchloride", 4.29, None),
    ("ZrO2", "fluorite", 5.07, None),
    ("PbBr2", "fluorite", 6.90, None),  # hypothetical fluorite-type
    ("Ti", "hcp", 2.95, 4.68),
    ("Zr", "hcp", 3.23, 5.15),
    ("Sr", "fcc", 6.08, None),
    ("Ba", "bcc", 5.02, None),
    ("Pb", "fcc", 4.95, None),
    ("Sn", "diamond", 6.49, None),
]
# rutile AO2: (A, a, c, u)
RUTILES = [("Ti", 4.594, 2.959, 0.305), ("Sn", 4.737, 3.186, 0.307)]


@dataclass(frozen=True)
class Perturbation:
    """How frames of a material differ from its ideal cell."""

    rattle: float  # Å, standard deviation of random displacements
    strain: float  # largest random strain component
    scale: float  # largest isotropic lattice-constant change of a material


MPTRJ_FRAMES = Perturbation(rattle=0.04, strain=0.02, scale=0.03)
OMAT24_FRAMES = Perturbation(rattle=0.15, strain=0.05, scale=0.03)


def standin_elements() -> list[str]:
    """Every element of the stand-in materials (the demo chemistry), without building them."""
    import re

    formulas = [a + b + x for a, b, x, _ in PEROVSKITES]
    formulas += [formula for formula, *_ in BINARIES_AND_ELEMENTS]
    formulas += [metal + "O" for metal, *_ in RUTILES]
    return sorted({el for f in formulas for el in re.findall(r"[A-Z][a-z]?", f)})


def prototypes():
    """The ideal cells: (name, ase.Atoms) of the demo chemistry, at most 12 atoms each."""
    from ase import Atoms
    from ase.build import bulk

    cells = []
    for a, b, x, lattice in PEROVSKITES:
        atoms = Atoms(
            [a, b, x, x, x], scaled_positions=FRAC_PEROVSKITE, cell=np.eye(3) * lattice, pbc=True
        )
        cells.append((f"{a}{b}{x}3", atoms))
    for formula, structure, a, c in BINARIES_AND_ELEMENTS:
        kwargs = {"c": c} if c else {}
        cells.append((f"{formula}_{structure}", bulk(formula, structure, a=a, **kwargs)))
    for metal, a, c, u in RUTILES:
        rutile = Atoms(
            [metal, metal, "O", "O", "O", "O"],
            scaled_positions=[
                [0, 0, 0],
                [0.5, 0.5, 0.5],
                [u, u, 0],
                [1 - u, 1 - u, 0],
                [0.5 + u, 0.5 - u, 0.5],
                [0.5 - u, 0.5 + u, 0.5],
            ],
            cell=[a, a, c],
            pbc=True,
        )
        cells.append((f"{metal}O2_rutile", rutile))
    return cells


def build_frames(
    n_structures: int,
    frames_per_material: int,
    perturbation: Perturbation,
    seed: int,
    include_ideal: bool,
    prefix: str,
):
    """``n_structures`` frames: materials cycle through :func:`prototypes`, each with its own
    lattice scale; a material's first frame is its ideal cell when ``include_ideal``."""
    rng = np.random.default_rng(seed)
    cells = prototypes()
    frames = []
    material = 0
    while len(frames) < n_structures:
        name, ideal = cells[material % len(cells)]
        material_id = f"{prefix}-{material:05d}"
        base = ideal.copy()
        base.set_cell(base.cell * (1 + rng.uniform(-1, 1) * perturbation.scale), scale_atoms=True)
        for k in range(min(frames_per_material, n_structures - len(frames))):
            atoms = base.copy()
            if k > 0 or not include_ideal:
                strain = np.eye(3) + rng.uniform(-1, 1, (3, 3)) * perturbation.strain
                atoms.set_cell(atoms.cell @ (0.5 * (strain + strain.T)), scale_atoms=True)
                atoms.positions += rng.normal(scale=perturbation.rattle, size=atoms.positions.shape)
            atoms.wrap()
            atoms.info.update(
                material_id=material_id,
                frame_id=f"{material_id}-0-{k}",
                prototype=name,
                ideal=bool(k == 0 and include_ideal),
            )
            frames.append(atoms)
        material += 1
    return frames


def to_structure(atoms, magmoms=None):
    """A plain pymatgen Structure (no ASE info or arrays carried over)."""
    from pymatgen.core import Lattice, Structure

    site_properties = None if magmoms is None else {"magmom": [float(m) for m in magmoms]}
    return Structure(
        Lattice(atoms.cell.array),
        atoms.get_chemical_symbols(),
        atoms.positions,
        coords_are_cartesian=True,
        site_properties=site_properties,
    )


def label_frames(frames, batch_size: int = 16, device: str = "auto") -> None:
    """CHGNet labels in place: REF_energy (eV), REF_forces (eV/Å), REF_stress (eV/Å³, ASE
    sign, Voigt), REF_magmom (μB)."""
    from chgnet.model import CHGNet

    model = CHGNet.load(use_device=None if device == "auto" else device, verbose=False)
    structures = [to_structure(atoms) for atoms in frames]
    predictions = model.predict_structure(structures, task="efsm", batch_size=batch_size)
    gpa = GPA_TO_EV_PER_ANGSTROM3
    for atoms, pred in zip(frames, predictions, strict=True):
        s = np.asarray(pred["s"], dtype=float)  # GPa, ASE sign (positive = tensile)
        atoms.info["REF_energy"] = float(pred["e"]) * len(atoms)
        atoms.info["REF_stress"] = (
            np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]) * gpa
        )
        atoms.arrays["REF_forces"] = np.asarray(pred["f"], dtype=float)
        atoms.arrays["REF_magmom"] = np.asarray(pred["m"], dtype=float)
        atoms.info["labeller"] = "CHGNet"


def _voigt_to_matrix(v) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = v
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def mptrj_document(frames) -> dict:
    """Labelled frames -> MPtrj's JSON layout (stress back to kBar, VASP sign)."""
    gpa = GPA_TO_EV_PER_ANGSTROM3
    relaxed = {
        a.info["material_id"]: a.info["REF_energy"] / len(a) for a in frames if a.info["ideal"]
    }
    document: dict[str, dict] = {}
    for atoms in frames:
        mp_id = atoms.info["material_id"]
        n = len(atoms)
        energy = float(atoms.info["REF_energy"])
        structure = to_structure(atoms, atoms.arrays["REF_magmom"])
        stress_kbar = -10.0 * _voigt_to_matrix(atoms.info["REF_stress"]) / gpa
        document.setdefault(mp_id, {})[atoms.info["frame_id"]] = {
            "structure": structure.as_dict(),
            "uncorrected_total_energy": energy,
            "corrected_total_energy": energy,
            "energy_per_atom": energy / n,
            "ef_per_atom": None,
            "e_per_atom_relaxed": relaxed.get(mp_id),
            "ef_per_atom_relaxed": None,
            "force": atoms.arrays["REF_forces"].tolist(),
            "stress": stress_kbar.tolist(),
            "magmom": atoms.arrays["REF_magmom"].tolist(),
            "bandgap": None,
            "mp_id": mp_id,
        }
    return document


def write_aselmdb(frames, out: Path) -> None:
    """Labelled frames -> an OMat24-style ``.aselmdb`` (single-point results + ``sid``)."""
    import ase.db
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with ase.db.connect(str(out), type="aselmdb") as db:
        for atoms in frames:
            row = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
            row.calc = SinglePointCalculator(
                row,
                energy=atoms.info["REF_energy"],
                forces=atoms.arrays["REF_forces"],
                stress=atoms.info["REF_stress"],
            )
            db.write(row, sid=atoms.info["frame_id"])


def _write_extxyz(frames, out: Path) -> None:
    import ase.io

    out.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(str(out), frames, format="extxyz")


def _read_extxyz(path: Path):
    import ase.io

    return ase.io.read(str(path), index=":", format="extxyz")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.reference.standins")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="unlabelled stand-in structures (extxyz)")
    b.add_argument("--kind", choices=["mptrj", "omat24"], required=True)
    b.add_argument("--settings", type=Path, required=True, help="the reference settings (JSON)")
    b.add_argument("--out", type=Path, required=True)
    lab = sub.add_parser("label", help="CHGNet labels (extxyz in, extxyz out)")
    lab.add_argument("--structures", type=Path, required=True)
    lab.add_argument("--out", type=Path, required=True)
    lab.add_argument("--batch-size", type=int, default=16)
    lab.add_argument("--device", default="auto", help="cpu | cuda | auto (cuda if present)")
    lab.add_argument("--threads", type=int, default=None)
    j = sub.add_parser("mptrj-json", help="labelled frames -> MPtrj JSON layout")
    j.add_argument("--labelled", type=Path, required=True)
    j.add_argument("--out", type=Path, required=True)
    d = sub.add_parser("omat24-db", help="labelled frames -> OMat24-style .aselmdb")
    d.add_argument("--labelled", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "build":
        section = json.loads(args.settings.read_text())[args.kind]
        standin = section["standin"]
        frames = build_frames(
            standin["structures"],
            standin["frames_per_material"],
            MPTRJ_FRAMES if args.kind == "mptrj" else OMAT24_FRAMES,
            standin["seed"],
            include_ideal=args.kind == "mptrj",
            prefix=f"{args.kind}-stand-in",
        )
        _write_extxyz(frames, args.out)
        print(f"{len(frames)} {args.kind} stand-in structures -> {args.out}")
    elif args.command == "label":
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        frames = _read_extxyz(args.structures)
        label_frames(frames, args.batch_size, args.device)
        _write_extxyz(frames, args.out)
        print(f"{len(frames)} frames labelled by CHGNet -> {args.out}")
    elif args.command == "mptrj-json":
        document = mptrj_document(_read_extxyz(args.labelled))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document))
        print(f"{len(document)} stand-in materials in MPtrj's JSON layout -> {args.out}")
    else:
        frames = _read_extxyz(args.labelled)
        write_aselmdb(frames, args.out)
        print(f"{len(frames)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
