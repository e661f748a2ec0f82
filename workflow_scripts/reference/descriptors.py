"""Per-structure MACE descriptors: the invariant node features of every interaction layer,
averaged over the atoms of each structure (256 numbers for a MACE-MP-0 medium model), as
``mace_eval_configs --return_descriptors --descriptor_aggregation_method=mean`` computes
them, in one batched pass without forces, streamed so a 1.5 M-frame pool fits in memory.

Used for the FPS replay selection (descriptors of the foundation model on the MPtrj pool)
and by the analysis stage (t-SNE/PHATE embeddings).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_model(model_path: Path | str, device: str, dtype: str):
    import torch
    from mace.tools import torch_tools

    torch_tools.set_default_dtype(dtype)
    model = torch.load(str(model_path), map_location=device, weights_only=False)
    model = model.double() if dtype == "float64" else model.float()
    model = model.to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad = False
    return model


def _invariant_layout(model) -> tuple[int, int, int]:
    """(number of interaction layers, invariant features per layer, l_max of node features)."""
    from e3nn import o3

    irreps = o3.Irreps(str(model.products[0].linear.irreps_out))
    l_max = irreps.lmax
    return int(model.num_interactions), irreps.dim // (l_max + 1) ** 2, l_max


def mean_descriptors(
    model_path: Path | str,
    data_path: Path | str,
    batch_size: int = 16,
    device: str = "cpu",
    head: str | None = None,
    dtype: str = "float64",
) -> np.ndarray:
    """(frames, features) float32: mean over atoms of the invariant features of all layers."""
    import torch

    device = resolve_device(device)
    previous_dtype = torch.get_default_dtype()
    try:
        return _mean_descriptors(model_path, data_path, batch_size, device, head, dtype)
    finally:
        torch.set_default_dtype(previous_dtype)


def _mean_descriptors(model_path, data_path, batch_size, device, head, dtype) -> np.ndarray:
    import ase.io
    import torch
    from mace import data as mace_data
    from mace.modules.utils import extract_invariant
    from mace.tools import torch_geometric, utils

    model = load_model(model_path, device, dtype)
    num_layers, num_features, l_max = _invariant_layout(model)
    z_table = utils.AtomicNumberTable([int(z) for z in model.atomic_numbers])
    heads = list(getattr(model, "heads", None) or ["Default"])
    if head is not None and head not in heads:
        raise ValueError(f"head {head!r} is not one of the model's heads {heads}")
    keys = mace_data.KeySpecification(info_keys={}, arrays_keys={})
    rows = []
    frames = ase.io.iread(str(data_path), index=":", format="extxyz")
    for atoms_batch in _batches(frames, batch_size):
        graphs = [
            mace_data.AtomicData.from_config(
                mace_data.config_from_atoms(
                    atoms, key_specification=keys, head_name=head or heads[0]
                ),
                z_table=z_table,
                cutoff=float(model.r_max),
                heads=heads,
            )
            for atoms in atoms_batch
        ]
        batch = next(iter(torch_geometric.dataloader.DataLoader(graphs, batch_size=len(graphs))))
        batch = batch.to(device)
        with torch.no_grad():
            output = model(batch.to_dict(), compute_force=False)
        features = extract_invariant(
            output["node_feats"], num_layers=num_layers, num_features=num_features, l_max=l_max
        )
        sums = torch.zeros(len(graphs), features.shape[1], dtype=features.dtype, device=device)
        sums.index_add_(0, batch.batch, features)
        counts = torch.bincount(batch.batch, minlength=len(graphs)).to(features.dtype)
        rows.append((sums / counts[:, None]).float().cpu().numpy())
    if not rows:
        raise ValueError(f"{data_path} holds no frames")
    return np.concatenate(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.reference.descriptors")
    parser.add_argument("--model", type=Path, required=True, help="MACE .model file")
    parser.add_argument("--data", type=Path, required=True, help="extxyz frames")
    parser.add_argument("--out", type=Path, required=True, help=".npy (frames x features)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--head", default=None, help="model head (node features do not depend on it)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    descriptors = mean_descriptors(
        args.model, args.data, args.batch_size, args.device, args.head, args.dtype
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, descriptors)
    print(f"{descriptors.shape[0]} structures x {descriptors.shape[1]} features -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
