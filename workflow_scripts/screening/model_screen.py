"""One model on the screen: energies at the DFT geometries and after its own relaxation.

For every entry of the DFT screen set (defects, pristine hosts, elemental references; see
:mod:`.dft_set`) the model gives

* ``energy_at_dft_ev``: a single point at CP2K's final geometry, and
* ``energy_relaxed_ev``: the energy after relaxing CP2K's initial geometry with the model —
  one optimiser and fmax for every model (``screening.optimizer``); solid references relax
  their cell too (``FrechetCellFilter``), defects and hosts keep the DFT supercell.

Written to a CSV with the relaxation's steps, whether it reached fmax, and the wall time.
A MACE variant is loaded from its ``.model`` file (the multihead head as in the evaluation);
a baseline from its resolved settings (:mod:`workflow_scripts.baselines.registry`), in its
own environment: this module imports MACE only for MACE models.

    python -m workflow_scripts.screening.model_screen --model-name ft-dopants-standard \
        --mace-model models/ft-dopants-standard.model \
        --structures screening/dft_structures.extxyz \
        --screening-config screening.json --mace-config mace.json \
        --evaluation-config evaluation.json --out screening/models/X.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from workflow_scripts.mace import settings

COLUMNS = [
    "screen_id", "energy_at_dft_ev", "energy_relaxed_ev", "relax_steps", "relax_converged",
    "final_fmax_ev_per_a", "seconds",
]  # fmt: skip


def mace_calculator(path: Path, device: str, evaluation: dict):
    """A MACE model file as an ASE calculator, with the evaluation's head and dtype."""
    settings.import_mace()
    from mace.calculators import MACECalculator

    from workflow_scripts.mace.evaluate import choose_head

    model = settings.load_model(path, "cpu")
    heads = list(getattr(model, "heads", None) or ["Default"])
    head = choose_head(heads, evaluation.get("multihead_head", "finetuned"))
    return MACECalculator(model_paths=str(path), device=device, default_dtype="float64", head=head)


def relax_atoms(atoms, calculator, relax_cell: bool, optimizer: dict):
    """A relaxed copy of ``atoms`` and its energy, steps, convergence and final max force."""
    import ase.optimize
    from ase.filters import FrechetCellFilter

    work = atoms.copy()
    work.calc = calculator
    target = FrechetCellFilter(work) if relax_cell else work
    optimiser = getattr(ase.optimize, optimizer["name"])(target, logfile=None)
    converged = bool(optimiser.run(fmax=optimizer["fmax"], steps=optimizer["max_steps"]))
    forces = target.get_forces()
    return work, {
        "energy_relaxed_ev": float(work.get_potential_energy()),
        "relax_steps": int(optimiser.get_number_of_steps()),
        "relax_converged": converged,
        "final_fmax_ev_per_a": float(np.sqrt((forces**2).sum(axis=1)).max()),
    }


def relax(atoms, calculator, relax_cell: bool, optimizer: dict) -> dict:
    """Energy, steps, convergence and final max force of a relaxation of ``atoms``."""
    return relax_atoms(atoms, calculator, relax_cell, optimizer)[1]


def calculator_from_args(args):
    """The calculator named by ``--mace-model`` or ``--baseline-config`` (+ ``--model-name``)."""
    device = settings.resolve_device(settings.load_section(args.mace_config)["device"])
    if args.mace_model:
        evaluation = settings.load_section(args.evaluation_config)
        return mace_calculator(args.mace_model, device, evaluation)
    from workflow_scripts.baselines import registry

    spec = json.loads(args.baseline_config.read_text())[args.model_name]
    return registry.build_calculator(spec, device)


def single_point(atoms, calculator) -> float:
    work = atoms.copy()
    work.calc = calculator
    return float(work.get_potential_energy())


def screen(frames: list, calculator, optimizer: dict) -> list[dict]:
    """One row per screen entry (frames come as initial/final pairs per ``screen_id``)."""
    pairs: dict[str, dict] = {}
    for atoms in frames:
        pairs.setdefault(atoms.info["screen_id"], {})[atoms.info["geometry"]] = atoms
    rows = []
    for screen_id, pair in pairs.items():
        started = time.perf_counter()
        initial, final = pair["initial"], pair["final"]
        row = {"screen_id": screen_id, "energy_at_dft_ev": single_point(final, calculator)}
        row |= relax(initial, calculator, bool(initial.info.get("relax_cell")), optimizer)
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.screening.model_screen")
    parser.add_argument("--model-name", required=True)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--mace-model", type=Path, help="a MACE variant's .model file")
    model.add_argument(
        "--baseline-config", type=Path, help="the baseline's resolved settings (JSON)"
    )
    parser.add_argument("--structures", required=True, type=Path, help="dft_structures.extxyz")
    parser.add_argument("--screening-config", required=True, type=Path)
    parser.add_argument("--mace-config", required=True, type=Path, help="for the device")
    parser.add_argument("--evaluation-config", required=True, type=Path, help="multihead head")
    parser.add_argument("--out", required=True, type=Path, help="CSV")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from ase.io import read

    args = parse_args(argv)
    settings.use_threads(args.threads)
    calculator = calculator_from_args(args)
    optimizer = settings.load_section(args.screening_config)["optimizer"]
    rows = screen(read(args.structures, index=":"), calculator, optimizer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    total = sum(r["seconds"] for r in rows)
    print(f"{args.model_name}: {len(rows)} entries in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
