"""MLIP-first DFT: relax a defect supercell with a model before CP2K starts (``dft.prerelax``).

The structure keeps its cell, site order, site properties (initial moments, roles) and
properties; only the positions move, and ``properties["prerelaxed"]`` records the model, the
optimiser's steps and whether it reached fmax. The model must not be trained on this run's
DFT data (that would be a cycle): the zero-shot foundation or a baseline.

Off by default for dataset generation: a pre-relaxed start gives CP2K fewer ionic steps, and
every step is a training frame (benchmarks/bench_prerelax.py measures the saving).

    python -m workflow_scripts.screening.prerelax --structure structures/H/D.json \
        --model-name chgnet --baseline-config baselines/chgnet.json \
        --screening-config screening.json --mace-config mace.json \
        --evaluation-config evaluation.json \
        --out structures/prerelaxed/H/D.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workflow_scripts.mace import settings
from workflow_scripts.screening import model_screen


def prerelax_structure(data: dict, calculator, optimizer: dict, model_name: str) -> dict:
    """The pymatgen Structure dict ``data`` with positions relaxed by ``calculator``."""
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = Structure.from_dict(data)
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.set_initial_magnetic_moments(None)  # the model sees the geometry only
    relaxed, result = model_screen.relax_atoms(atoms, calculator, False, optimizer)
    moved = Structure(
        structure.lattice,
        structure.species,
        relaxed.positions,
        coords_are_cartesian=True,
        site_properties=structure.site_properties,
        properties=dict(structure.properties),
    )
    moved.properties["prerelaxed"] = {
        "model": model_name,
        "optimizer": optimizer["name"],
        "fmax_ev_per_a": optimizer["fmax"],
        "steps": result["relax_steps"],
        "converged": result["relax_converged"],
    }
    return moved.as_dict()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.screening.prerelax")
    parser.add_argument("--structure", required=True, type=Path, help="defect pymatgen JSON")
    parser.add_argument("--model-name", required=True)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--mace-model", type=Path)
    model.add_argument("--baseline-config", type=Path)
    parser.add_argument("--screening-config", required=True, type=Path, help="the optimiser")
    parser.add_argument("--mace-config", required=True, type=Path, help="for the device")
    parser.add_argument("--evaluation-config", required=True, type=Path, help="multihead head")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings.use_threads(args.threads)
    calculator = model_screen.calculator_from_args(args)
    optimizer = settings.load_section(args.screening_config)["optimizer"]
    data = json.loads(args.structure.read_text())
    out = prerelax_structure(data, calculator, optimizer, args.model_name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"{args.structure} -> {args.out}: {out['properties']['prerelaxed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
