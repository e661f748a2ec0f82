"""What mace really trained, checked against the request: learning rate, heads, mode,
replay file and E0s from mace's log, checkpoint and model (:func:`verify_training`)."""

from __future__ import annotations

from pathlib import Path

from workflow_scripts.mace.train_command import NEW_HEAD, TrainingFiles


class TrainingMismatch(RuntimeError):
    """mace trained something other than what the variant asked for."""


def _same_file(a: str | Path | None, b: str | Path | None) -> bool:
    if a is None or b is None:
        return False
    return Path(a).resolve() == Path(b).resolve()


def verify_training(
    method: str, hyper: dict, files: TrainingFiles, outputs: dict, isolated: dict[str, float]
) -> list[str]:
    """Differences between the request and what mace did (empty list: none)."""
    log, debug, model = outputs["log"], outputs["debug"], outputs["model"]
    problems = []
    lrs = [log["lr"], *log["param_group_lrs"]]
    if not log["param_group_lrs"] or any(abs(lr - hyper["lr"]) > 1e-12 for lr in lrs):
        problems.append(f"learning rate used {lrs} != requested {hyper['lr']}")
    if bool(hyper.get("ema")) != (log["ema_decay"] is not None):
        problems.append(f"EMA used (decay {log['ema_decay']}) != requested {hyper.get('ema')}")
    elif hyper.get("ema") and abs(log["ema_decay"] - hyper["ema_decay"]) > 1e-12:
        problems.append(f"EMA decay used {log['ema_decay']} != requested {hyper['ema_decay']}")
    used_decay, asked_decay = log.get("weight_decay"), hyper.get("weight_decay")
    if used_decay is not None and asked_decay is not None and abs(used_decay - asked_decay) > 1e-15:
        problems.append(f"weight decay used {used_decay} != requested {asked_decay}")
    heads = model["heads"]
    if method == "multihead":
        if not log["multihead_finetuning"] or log["multihead_fallback_warning"]:
            problems.append("mace did not run in multihead finetuning mode")
        if len(heads) != 2 or "pt_head" not in heads:
            problems.append(f"multihead model has heads {heads}, expected pt_head + one")
        pt_files = debug["training_files"].get("pt_head", [])
        if len(pt_files) != 1 or not _same_file(pt_files[0], files.replay):
            problems.append(f"pt_head trained on {pt_files}, expected {files.replay}")
    else:
        if log["multihead_finetuning"]:
            problems.append(f"{method} run went into multihead finetuning mode")
        if len(heads) != 1:
            problems.append(f"{method} model has heads {heads}, expected one")
    if (method == "scratch") == log["foundation_loaded"]:
        problems.append(f"foundation model loaded: {log['foundation_loaded']} for {method}")
    problems += _check_e0s(
        log["e0s"], model["e0s"], isolated if hyper["e0s"] == "isolated_atoms" else {}
    )
    if log["epochs_completed"] != hyper["max_num_epochs"]:
        problems.append(
            f"{log['epochs_completed']} epochs completed, {hyper['max_num_epochs']} requested"
        )
    return problems


def _check_e0s(logged: dict, stored: dict, isolated: dict[str, float]) -> list[str]:
    """E0s of the new head stored in the model = those mace logged = the isolated atoms'."""
    from ase.data import atomic_numbers

    head = NEW_HEAD
    if head not in logged or head not in stored:
        return [f"no E0s for head {head} (logged: {list(logged)}, model: {list(stored)})"]
    problems = []
    for z, value in logged[head].items():
        if abs(stored[head].get(z, float("nan")) - value) > 1e-6:
            problems.append(f"E0 of Z={z} in the model {stored[head].get(z)} != logged {value}")
    for symbol, energy in isolated.items():
        value = stored[head].get(atomic_numbers[symbol])
        if value is not None and abs(value - energy) > 1e-6:
            problems.append(f"E0 of {symbol} in the model {value} != isolated atom {energy}")
    return problems
