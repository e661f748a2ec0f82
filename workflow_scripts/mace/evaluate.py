"""Batched predictions of one model on one data set (``paths.PREDICTIONS``).

Every frame of the data set is written back with its labels and ``MACE_energy`` (eV),
``MACE_forces`` (eV/Å), ``MACE_stress`` (eV/Å³, Voigt xx yy zz yz xz xy, ASE sign; periodic
frames only) and info ``model`` and ``head``. The baselines (workflow_scripts.baselines) use
the same keys, so the metric code treats every model alike.

Multihead models: ``evaluation.multihead_head`` picks the head for every test set —
``finetuned`` (the new head, the model a user deploys; the default) or ``pretraining``
(``pt_head``, trained on the replay set). The head is written into every frame and into
the tables.

A frame with an element the model does not know (e.g. MPtrj chemistry for a model trained
from scratch on Perovs-Dopants) gets no prediction and info ``MACE_skipped``; the tables
count evaluated frames.

    python -m workflow_scripts.mace.evaluate mace --model models/foundation.model \
        --model-name MACE-MP-0b3 --data dataset/test.extxyz \
        --evaluation-config evaluation.json \
        --mace-config mace.json --out predictions/X/perovs_dopants.extxyz
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from workflow_scripts.mace import settings

PRETRAINING_HEAD = "pt_head"
ENERGY_KEY, FORCES_KEY, STRESS_KEY = "MACE_energy", "MACE_forces", "MACE_stress"
SKIPPED_KEY = "MACE_skipped"


def choose_head(heads: list[str], policy: str) -> str:
    """The head to evaluate: the only one, or by ``policy`` for multihead models."""
    if len(heads) == 1:
        return heads[0]
    if policy == "pretraining":
        if PRETRAINING_HEAD not in heads:
            raise ValueError(f"model heads {heads} have no {PRETRAINING_HEAD}")
        return PRETRAINING_HEAD
    if policy != "finetuned":
        raise ValueError(f"unknown head policy {policy!r}")
    new_heads = [head for head in heads if head != PRETRAINING_HEAD]
    return new_heads[-1]


def _voigt(stress_3x3: np.ndarray) -> np.ndarray:
    s = stress_3x3
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def _covered(frames, known_numbers: set[int]) -> tuple[list[int], dict[int, str]]:
    indices, skipped = [], {}
    for index, atoms in enumerate(frames):
        unknown = set(atoms.numbers.tolist()) - known_numbers
        if unknown:
            from ase.data import chemical_symbols

            names = ",".join(sorted(chemical_symbols[z] for z in unknown))
            skipped[index] = f"elements not in model: {names}"
        else:
            indices.append(index)
    return indices, skipped


def prepare_model(model, device: str, dtype: str):
    """Model on ``device`` in ``dtype`` with gradients off for its parameters."""
    model = model.to(device)
    model = model.double() if dtype == "float64" else model.float()
    for parameter in model.parameters():
        parameter.requires_grad = False
    return model


def _graphs(frames, indices, model, head: str):
    from mace import data
    from mace.tools import utils

    z_table = utils.AtomicNumberTable([int(z) for z in model.atomic_numbers])
    heads = list(getattr(model, "heads", None) or ["Default"])
    cutoff = float(model.r_max)
    return [
        data.AtomicData.from_config(
            data.config_from_atoms(frames[i], head_name=head),
            z_table=z_table,
            cutoff=cutoff,
            heads=heads,
        )
        for i in indices
    ]


def predict_mace(
    model,
    frames: list,
    *,
    head: str,
    batch_size: int,
    device: str,
    dtype: str,
    model_name: str,
) -> dict:
    """Add MACE_* predictions to ``frames`` in place; returns a short summary."""
    settings.import_mace()
    import torch

    model = prepare_model(model, device, dtype)
    indices, skipped = _covered(frames, {int(z) for z in model.atomic_numbers})
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == "float64" else torch.float32)
    try:
        _predict_batches(model, frames, indices, head, batch_size, device)
    finally:
        torch.set_default_dtype(previous)
    for index, reason in skipped.items():
        frames[index].info[SKIPPED_KEY] = reason
    for atoms in frames:
        atoms.info["model"] = model_name
        atoms.info["head"] = head
    return {"evaluated": len(indices), "skipped": len(skipped), "head": head}


def _predict_batches(model, frames, indices, head, batch_size, device) -> None:
    from mace.tools import torch_geometric

    periodic = all(frames[i].pbc.all() for i in indices)
    loader = torch_geometric.dataloader.DataLoader(
        _graphs(frames, indices, model, head), batch_size=batch_size, shuffle=False
    )
    position = 0
    for batch in loader:
        batch = batch.to(device)
        output = model(batch.to_dict(), compute_stress=periodic, training=False)
        energies = output["energy"].detach().cpu().numpy()
        forces = output["forces"].detach().cpu().numpy()
        stresses = output["stress"].detach().cpu().numpy() if periodic else None
        bounds = batch.ptr.cpu().numpy()
        for k in range(len(energies)):
            atoms = frames[indices[position]]
            atoms.info[ENERGY_KEY] = float(energies[k])
            atoms.arrays[FORCES_KEY] = forces[bounds[k] : bounds[k + 1]].astype(np.float64)
            if stresses is not None:
                atoms.info[STRESS_KEY] = _voigt(stresses[k]).astype(np.float64)
            position += 1


def read_frames(path: str | Path) -> list:
    import ase.io

    return ase.io.read(str(path), index=":")


def write_frames(frames: list, path: str | Path) -> None:
    import ase.io

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(str(path), frames, format="extxyz")


def evaluate_file(
    data: Path,
    out: Path,
    *,
    model_name: str,
    model_path: Path,
    evaluation: dict,
    device: str,
) -> dict:
    """Predict every frame of ``data`` with a MACE model file."""
    frames = read_frames(data)
    started = time.perf_counter()
    model = settings.load_model(model_path, device)
    heads = list(getattr(model, "heads", None) or ["Default"])
    summary = predict_mace(
        model,
        frames,
        head=choose_head(heads, evaluation["multihead_head"]),
        batch_size=evaluation["batch_size"],
        device=device,
        dtype=evaluation["dtype"],
        model_name=model_name,
    )
    summary["seconds"] = round(time.perf_counter() - started, 3)
    write_frames(frames, out)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.mace.evaluate")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("mace", "predict with a MACE .model"),):
        command = commands.add_parser(name, help=text)
        command.add_argument("--model", required=True, type=Path, help=".model file")
        command.add_argument("--model-name", required=True, help="name in tables and files")
        command.add_argument("--data", required=True, type=Path, help="labelled extxyz")
        command.add_argument("--out", required=True, type=Path, help="predictions extxyz")
        command.add_argument("--evaluation-config", required=True, type=Path)
        command.add_argument("--mace-config", required=True, type=Path, help="for the device")
        command.add_argument("--threads", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings.use_threads(args.threads)
    device = settings.resolve_device(settings.load_section(args.mace_config)["device"])
    summary = evaluate_file(
        args.data,
        args.out,
        model_name=args.model_name,
        model_path=args.model,
        evaluation=settings.load_section(args.evaluation_config),
        device=device,
    )
    print(f"{args.model_name} on {args.data}: {summary} (device {device})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
