"""Evaluation throughput: the pipeline's batched predictions vs ``mace_eval_configs``.

Same model file, same frames, same device, both called in this process (imports excluded,
model loading, reading and writing included), run alternately and the best of the repeats
kept. The model is an untrained MACE of MACE-MP-0 medium size (128x0e+128x1o, r_max 6 Å; a
small one in quick mode), the frames rattled 32-atom fcc alloy cells labelled by EMT: speed
depends on sizes, not on weights.

Rows: the pipeline as configured (``evaluation.dtype: float32``, the default) against
mace_eval_configs at the model's float64 — target >= 1.5x, with the largest difference
between the two predictions in the notes; and both at float64, where no gain is expected
(the forward pass is the same; the row checks that batching costs nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from verdict import verdict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workflow_scripts.mace import evaluate, settings  # noqa: E402
from workflow_scripts.mace.synthetic import emt_bulk_frames, random_mace_model  # noqa: E402

INPUTS = Path(__file__).resolve().parent / "inputs" / "evaluation"
ELEMENTS = ("Cu", "Ni", "Al", "Pd")
SIZES = {
    # quick: a small model, enough to check that both paths run and agree (< 1 min)
    True: {"frames": 24, "repeat": (1, 1, 1), "model": dict(num_channels=16, max_L=0, r_max=5.0)},
    False: {
        "frames": 32,
        "repeat": (2, 2, 2),
        "model": dict(num_channels=128, max_L=1, r_max=6.0, correlation=3),
    },
}


def make_inputs(quick: bool) -> tuple[Path, Path]:
    """Model and frames under benchmarks/inputs/evaluation/ (made once, reused)."""
    import torch
    from ase.io import write

    size = SIZES[quick]
    tag = "quick" if quick else "full"
    model_path, frames_path = INPUTS / f"model_{tag}.model", INPUTS / f"frames_{tag}.extxyz"
    INPUTS.mkdir(parents=True, exist_ok=True)
    if not model_path.is_file():
        zs = [29, 28, 13, 46]
        torch.save(random_mace_model(zs, **size["model"]), model_path)
    if not frames_path.is_file():
        frames = emt_bulk_frames(size["frames"], ELEMENTS, repeat=size["repeat"], seed=7)
        write(frames_path, frames)
    return model_path, frames_path


def run_eval_configs(model: Path, frames: Path, out: Path, device: str) -> float:
    """mace-torch's own ``mace_eval_configs`` (its defaults: batch 64, model dtype)."""
    from mace.cli import eval_configs

    args = argparse.Namespace(
        configs=str(frames),
        model=str(model),
        output=str(out),
        device=device,
        enable_cueq=False,
        default_dtype="float64",
        batch_size=64,
        compute_stress=True,
        compute_bec=False,
        return_contributions=False,
        return_descriptors=False,
        descriptor_num_layers=-1,
        descriptor_aggregation_method=None,
        descriptor_invariants_only=True,
        return_node_energies=False,
        info_prefix="MACE_",
        head=None,
    )
    start = time.perf_counter()
    eval_configs.run(args)
    return time.perf_counter() - start


def run_pipeline(model: Path, frames: Path, out: Path, device: str, dtype: str) -> float:
    evaluation = {"batch_size": 16, "dtype": dtype, "multihead_head": "finetuned"}
    start = time.perf_counter()
    evaluate.evaluate_file(
        frames, out, model_name="bench", model_path=model, evaluation=evaluation, device=device
    )
    return time.perf_counter() - start


def largest_differences(reference: Path, other: Path) -> tuple[float, float]:
    """Max |ΔE| per atom (eV) and max |ΔF| component (eV/Å) between two prediction files."""
    from ase.io import read

    energy, force = 0.0, 0.0
    for a, b in zip(read(reference, ":"), read(other, ":"), strict=True):
        energy = max(energy, abs(a.info["MACE_energy"] - b.info["MACE_energy"]) / len(a))
        force = max(force, float(np.abs(a.arrays["MACE_forces"] - b.arrays["MACE_forces"]).max()))
    return energy, force


def run(quick: bool) -> list[dict]:
    settings.import_mace()
    import torch

    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1")))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, frames = make_inputs(quick)
    out = INPUTS / "out"
    out.mkdir(exist_ok=True)
    n_frames = SIZES[quick]["frames"]
    repeats = 1 if quick else 2
    times = {"eval_configs": [], "float32": [], "float64": []}
    for _ in range(repeats):  # alternate so that load changes hit every path alike
        times["eval_configs"].append(
            run_eval_configs(model, frames, out / "eval_configs.extxyz", device)
        )
        times["float32"].append(
            run_pipeline(model, frames, out / "pipeline32.extxyz", device, "float32")
        )
        times["float64"].append(
            run_pipeline(model, frames, out / "pipeline64.extxyz", device, "float64")
        )
    best = {key: min(values) for key, values in times.items()}
    de32, df32 = largest_differences(out / "eval_configs.extxyz", out / "pipeline32.extxyz")
    de64, df64 = largest_differences(out / "eval_configs.extxyz", out / "pipeline64.extxyz")
    size = "quick: 16 ch L=0" if quick else "MACE-MP medium size: 128 ch L=1 r_max 6"
    shape = f"{n_frames} x {len(emt_bulk_frames(1, repeat=SIZES[quick]['repeat'])[0])}-atom frames"
    baseline = n_frames / best["eval_configs"]
    rows = []
    for dtype, target, threshold in (
        ("float32", ">= 1.5x mace_eval_configs (frames/s)", 1.5),
        ("float64", "~1x (same dtype: no loss from batching)", 0.85),
    ):
        measured = n_frames / best[dtype]
        de, df = (de32, df32) if dtype == "float32" else (de64, df64)
        rows.append(
            {
                "benchmark": f"evaluation {dtype} vs mace_eval_configs float64 ({size}; {shape};"
                f" {device})",
                "measured": round(measured, 3),
                "baseline": round(baseline, 3),
                "unit": "frames/s",
                "ratio": round(measured / baseline, 2),
                "target": target,
                # quick sizes are too small for the speed target: only agreement is judged
                "met": verdict(measured / baseline >= threshold, quick, correct=df < 1e-3),
                "notes": f"largest difference to mace_eval_configs: {de:.1e} eV/atom, "
                f"{df:.1e} eV/Å; times (s) {', '.join(f'{k} {v:.1f}' for k, v in best.items())}",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
