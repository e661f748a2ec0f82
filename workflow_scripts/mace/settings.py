"""Config sections, display names, devices and threads shared by the MACE stage modules."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Data-set keys used in file names and config (`variants.*.data`, `evaluation.test_sets`).
PEROVS_DOPANTS = "perovs_dopants"
MPTRJ = "mptrj"
OMAT24 = "omat24"
MPTRJ_CP2K = "mptrj_cp2k"

STANDIN_FOUNDATION = "stand-in"
STANDIN_FOUNDATION_NAME = "MACE-stand-in-foundation"


def load_section(path: str | Path) -> dict:
    """A config section written by common.smk (``paths.SECTION_SETTINGS``)."""
    return json.loads(Path(path).read_text())


def dataset_display_names(dataset_section: dict, reference_section: dict) -> dict[str, str]:
    """Names shown in tables for each data-set key ("stand-in" names come from config)."""
    mptrj = reference_section.get("mptrj", {}).get("name", "MPtrj")
    return {
        PEROVS_DOPANTS: dataset_section.get("name", "Perovs-Dopants"),
        MPTRJ: mptrj,
        OMAT24: reference_section.get("omat24", {}).get("name", "OMat24"),
        MPTRJ_CP2K: f"{mptrj} (CP2K)",
    }


def resolve_device(requested: str) -> str:
    """``auto`` becomes ``cuda`` where torch sees a GPU, else ``cpu``."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def use_threads(threads: int) -> None:
    """Limit torch (and OpenMP libraries started later) to ``threads`` CPU threads."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def import_mace():
    """Import mace before anything loads a pickled model.

    ``mace/__init__`` sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, without which torch 2.13 refuses
    to unpickle e3nn's constants and every MACE model file.
    """
    import mace

    return mace


def load_model(path: str | Path, device: str = "cpu"):
    """A MACE model saved with ``torch.save`` (the ``.model`` files mace writes)."""
    import_mace()
    import torch

    return torch.load(str(path), map_location=device, weights_only=False)
