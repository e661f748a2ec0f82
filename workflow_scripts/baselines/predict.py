"""Zero-shot predictions of one baseline (any ASE calculator) on one labelled data set.

    python -m workflow_scripts.baselines.predict \
        --baseline-config baselines/sevennet-0.json --model-name sevennet-0 \
        --data dataset/test.extxyz --mace-config mace.json \
        --out predictions/sevennet-0/perovs_dopants.extxyz

Frames are written back with their labels and the keys of the MACE predictions
(``MACE_energy`` eV, ``MACE_forces`` eV/Å, ``MACE_stress`` eV/Å³ Voigt with ASE's sign on
periodic frames, info ``model``), so the metric code treats every model alike. This module
imports no MACE code: it also runs in a baseline's own environment (SevenNet's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from workflow_scripts.baselines import registry
from workflow_scripts.mace import settings
from workflow_scripts.mace.evaluate import (
    ENERGY_KEY,
    FORCES_KEY,
    STRESS_KEY,
    read_frames,
    write_frames,
)


def predict(frames: list, calculator, model_name: str) -> dict:
    """Add the calculator's energy, forces and (periodic frames) stress to every frame."""
    for index, atoms in enumerate(frames):
        work = atoms.copy()  # keeps the labels' arrays away from the calculator
        work.calc = calculator
        try:
            atoms.info[ENERGY_KEY] = float(work.get_potential_energy())
            atoms.arrays[FORCES_KEY] = np.asarray(work.get_forces(), dtype=np.float64)
            if atoms.pbc.all():
                atoms.info[STRESS_KEY] = np.asarray(work.get_stress(voigt=True), np.float64)
        except Exception as error:  # name the frame: a model that fails stops the job
            raise RuntimeError(
                f"{model_name}: frame {index} ({atoms.get_chemical_formula()}) failed: {error}"
            ) from error
        atoms.info["model"] = model_name
    return {"evaluated": len(frames), "skipped": 0, "head": None}


def run(args) -> dict:
    spec = json.loads(args.baseline_config.read_text())[args.model_name]
    device = settings.resolve_device(settings.load_section(args.mace_config)["device"])
    frames = read_frames(args.data)
    started = time.perf_counter()
    calculator = registry.build_calculator(spec, device, args.base_dir)
    summary = predict(frames, calculator, args.model_name)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["device"] = device
    write_frames(frames, args.out)
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.baselines.predict")
    parser.add_argument(
        "--baseline-config",
        required=True,
        type=Path,
        help="the baseline's resolved settings (JSON)",
    )
    parser.add_argument("--model-name", required=True, help="the baseline's config key")
    parser.add_argument("--data", required=True, type=Path, help="labelled extxyz")
    parser.add_argument("--out", required=True, type=Path, help="predictions extxyz")
    parser.add_argument("--mace-config", required=True, type=Path, help="for the device")
    parser.add_argument("--base-dir", type=Path, default=Path("."), help="checkpoint paths root")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings.use_threads(args.threads)
    summary = run(args)
    print(f"{args.model_name} on {args.data}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
