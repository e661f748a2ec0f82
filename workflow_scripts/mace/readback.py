"""Read back what ``mace_run_train`` really did from its own outputs.

mace 0.3.16 silently changes some requested settings (multihead mode resets the learning rate
and turns EMA on; multihead without a replay file falls back to standard finetuning;
IsolatedAtom frames override ``--E0s``). Nothing here trusts the command line: the learning
rate, heads, mode, loss, E0s and training files come from the log files, the last
checkpoint and the saved model. Line formats are those of mace-torch 0.3.16.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

RUN_START = "===========VERIFYING SETTINGS==========="
MULTIHEAD_MARKER = "==================Using multiheads finetuning mode=================="
MULTIHEAD_FALLBACK = "Using multiheads finetuning with a foundation model that is not a Materials"
FOUNDATION_MARKER = "Loading FOUNDATION model"

_LR = re.compile(r"INFO: Learning rate: ([0-9.eE+-]+), weight decay: ([0-9.eE+-]+)")
_PARAM_GROUP = re.compile(r"INFO: Param group (\d+): lr = ([0-9.eE+-]+)")
_HEADS = re.compile(r"INFO: Using heads: (\[.*\])")
_LOSS_FINETUNE = re.compile(r"INFO: Using (\w+) loss function for fine-tuning")
_LOSS_REPR = re.compile(r"INFO: (\w+Loss)\((.*)\)")
_EMA = re.compile(r"INFO: Using Exponential Moving Average with decay: ([0-9.eE+-]+)")
_E0S = re.compile(r"INFO: Atomic Energies used \(z: eV\) for head (\S+): (\{.*\})")
_PROCESS_HEAD = re.compile(r"Processing head (\S+)\s+=")
_TRAIN_FILE = re.compile(r"DEBUG: Loading training file: (.+)$")
_CONFIG_ITEM = r"{key}=('[^']*'|None)"
_PRETRAIN = re.compile(r"Total number of configurations in pretraining: train=(\d+), valid=(\d+)")
_MACE_VERSION = re.compile(r"INFO: MACE version: (\S+)")


def output_paths(work_dir: str | Path, name: str, seed: int) -> dict[str, Path]:
    """Where mace_run_train (``--work_dir``, ``--name``, ``--seed``) writes its outputs."""
    work_dir = Path(work_dir)
    tag = f"{name}_run-{seed}"
    return {
        "log": work_dir / "logs" / f"{tag}.log",
        "debug_log": work_dir / "logs" / f"{tag}_debug.log",
        "results": work_dir / "results" / f"{tag}_train.txt",
        "checkpoints": work_dir / "checkpoints",
        "model": work_dir / f"{name}.model",
        "tag": Path(tag),
    }


def last_run(text: str) -> str:
    """The part of a log written by the latest run (a resumed run appends to the same file)."""
    start = text.rfind(RUN_START)
    return text if start < 0 else text[start:]


def parse_log(text: str) -> dict:
    """Settings mace used, from its INFO log (``logs/{name}_run-{seed}.log``)."""
    text = last_run(text)
    lr = _LR.search(text)
    heads = _HEADS.search(text)
    loss_finetune = _LOSS_FINETUNE.search(text)
    loss_repr = _LOSS_REPR.search(text)
    ema = _EMA.search(text)
    pretrain = _PRETRAIN.search(text)
    version = _MACE_VERSION.search(text)
    return {
        "mace_version": version.group(1) if version else None,
        "lr": float(lr.group(1)) if lr else None,
        "weight_decay": float(lr.group(2)) if lr else None,
        "param_group_lrs": [float(m.group(2)) for m in _PARAM_GROUP.finditer(text)],
        "heads_declared": ast.literal_eval(heads.group(1)) if heads else None,
        "multihead_finetuning": MULTIHEAD_MARKER in text,
        "multihead_fallback_warning": MULTIHEAD_FALLBACK in text,
        "foundation_loaded": FOUNDATION_MARKER in text,
        "loss": loss_finetune.group(1) if loss_finetune else None,
        "loss_function": loss_repr.group(1) if loss_repr else None,
        "loss_weights": loss_repr.group(2) if loss_repr else None,
        "ema_decay": float(ema.group(1)) if ema else None,
        "e0s": {
            m.group(1): {int(z): float(e) for z, e in ast.literal_eval(m.group(2)).items()}
            for m in _E0S.finditer(text)
        },
        "pretraining_configs": (
            {"train": int(pretrain.group(1)), "valid": int(pretrain.group(2))} if pretrain else None
        ),
    }


def epochs_completed(results_text: str) -> int:
    """Epochs evaluated, from mace's metrics file (``{tag}_train.txt``, JSON lines).

    Resumed runs append to the same file, so this counts every epoch of the training.
    """
    epochs = [
        record["epoch"]
        for record in map(json.loads, filter(None, results_text.splitlines()))
        if record.get("mode") == "eval" and record.get("epoch") is not None
    ]
    return max(epochs) + 1 if epochs else 0


def parse_debug_log(text: str) -> dict:
    """Training files per head and selected raw arguments, from ``*_debug.log``."""
    text = last_run(text)
    files: dict[str, list[str]] = {}
    head = None
    for line in text.splitlines():
        head_match = _PROCESS_HEAD.search(line)
        if head_match:
            head = head_match.group(1)
            continue
        file_match = _TRAIN_FILE.search(line)
        if file_match and head is not None:
            files.setdefault(head, []).append(file_match.group(1).strip())
    arguments = {}
    for key in ("pt_train_file", "foundation_model", "train_file", "valid_file", "E0s"):
        match = re.search(_CONFIG_ITEM.format(key=key), text)
        if match:
            arguments[key] = None if match.group(1) == "None" else match.group(1).strip("'")
    return {"training_files": files, "arguments": arguments}


def last_checkpoint(checkpoints_dir: str | Path) -> dict | None:
    """Epoch and optimizer learning rates of the newest ``*_epoch-N.pt`` checkpoint."""
    import torch

    found = []
    for path in Path(checkpoints_dir).glob("*_epoch-*.pt"):
        match = re.search(r"_epoch-(\d+)(_swa)?\.pt$", path.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        return None
    epoch, path = max(found)
    state = torch.load(str(path), map_location="cpu", weights_only=False)
    groups = state["optimizer"]["param_groups"]
    return {"epoch": epoch, "path": str(path), "lrs": [float(g["lr"]) for g in groups]}


def model_summary(model) -> dict:
    """Heads, elements, cutoff and E0s stored in a MACE model object."""
    heads = list(getattr(model, "heads", None) or ["Default"])
    energies = model.atomic_energies_fn.atomic_energies.detach().cpu().double()
    if energies.ndim == 1:
        energies = energies.unsqueeze(0)
    zs = [int(z) for z in model.atomic_numbers]
    return {
        "class": type(model).__name__,
        "heads": heads,
        "atomic_numbers": zs,
        "r_max": float(model.r_max),
        "num_interactions": int(model.num_interactions),
        "hidden_irreps": str(model.products[0].linear.irreps_out),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "e0s": {
            head: dict(zip(zs, energies[index].tolist(), strict=True))
            for index, head in enumerate(heads)
        },
    }


def read_training_outputs(work_dir: str | Path, name: str, seed: int) -> dict:
    """Everything above for one finished ``mace_run_train`` run."""
    from workflow_scripts.mace.settings import load_model

    paths = output_paths(work_dir, name, seed)
    log = parse_log(paths["log"].read_text())
    log["epochs_completed"] = epochs_completed(paths["results"].read_text())
    debug = parse_debug_log(paths["debug_log"].read_text())
    model = load_model(paths["model"])
    return {
        "log": log,
        "debug": debug,
        "checkpoint": last_checkpoint(paths["checkpoints"]),
        "model": model_summary(model),
        "paths": {key: str(value) for key, value in paths.items()},
    }
