"""The ``mace_run_train`` command of one training run: hyperparameters (shared, then the
variant's own), data files, E0s, architecture and the flags set explicitly because mace-torch's
defaults would change the request (:mod:`.train`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.mace.settings import OMAT24, PEROVS_DOPANTS

METHODS = ("standard", "multihead", "scratch")
NEW_HEAD = "Default"  # mace's name of the head trained on the new data
# Flags this module sets itself; `extra_args` may not override them.
GUARDED_FLAGS = frozenset(
    {
        "name",
        "work_dir",
        "seed",
        "device",
        "default_dtype",
        "train_file",
        "valid_file",
        "valid_fraction",
        "foundation_model",
        "multiheads_finetuning",
        "force_mh_ft_lr",
        "pt_train_file",
        "E0s",
        "plot",
        "lr",
        "max_num_epochs",
        "batch_size",
        "ema",
        "ema_decay",
        "optimizer",
        "amsgrad",
        "weight_decay",
        "scheduler",
        "lr_factor",
        "scheduler_patience",
        "lr_scheduler_gamma",
        "energy_weight",
        "forces_weight",
        "stress_weight",
        "valid_batch_size",
        "clip_grad",
        "loss",
        "restart_latest",
    }
)


@dataclass(frozen=True)
class TrainingFiles:
    """Data files of one training run (paths as given on the command line)."""

    train: Path
    valid: Path | None = None
    replay: Path | None = None
    foundation: Path | None = None


def default_e0s(data: str) -> str:
    """CP2K-labelled data refit E0s from CP2K isolated atoms; VASP data keep the foundation's."""
    return "foundation" if data == OMAT24 else "isolated_atoms"


def resolve_hyperparameters(variant: dict, shared: dict) -> dict:
    """Shared hyperparameters with the variant's own values on top."""
    resolved = dict(shared)
    for key in ("lr", "max_num_epochs", "batch_size", "seed"):
        if variant.get(key) is not None:
            resolved[key] = variant[key]
    resolved["extra_args"] = list(shared.get("extra_args", [])) + list(
        variant.get("extra_args", [])
    )
    resolved["e0s"] = variant.get("e0s") or default_e0s(variant.get("data", PEROVS_DOPANTS))
    return resolved


def check_extra_args(extra_args: list[str]) -> None:
    for argument in extra_args:
        flag = argument.lstrip("-").split("=", 1)[0]
        if flag in GUARDED_FLAGS:
            raise ValueError(
                f"extra_args: --{flag} is set by the workflow from config; "
                "use the matching config key instead"
            )


def _flag(name: str, value) -> str:
    return f"--{name}={value}"


def common_arguments(name: str, work_dir: Path, hyper: dict, device: str, dtype: str) -> list[str]:
    """Flags every run gets: names, directories, optimisation, keys, no plotting."""
    return [
        _flag("name", name),
        _flag("work_dir", work_dir),
        _flag("seed", hyper["seed"]),
        _flag("device", device),
        _flag("default_dtype", dtype),
        _flag("lr", hyper["lr"]),
        _flag("max_num_epochs", hyper["max_num_epochs"]),
        _flag("batch_size", hyper["batch_size"]),
        _flag("valid_batch_size", hyper.get("valid_batch_size") or hyper["batch_size"]),
        _flag("loss", hyper["loss"]),
        _flag("energy_weight", hyper["energy_weight"]),
        _flag("forces_weight", hyper["forces_weight"]),
        _flag("stress_weight", hyper["stress_weight"]),
        *optimiser_arguments(hyper),
        _flag("clip_grad", hyper["clip_grad"]),
        _flag("energy_key", "REF_energy"),
        _flag("forces_key", "REF_forces"),
        _flag("stress_key", "REF_stress"),
        _flag("error_table", "PerAtomMAE"),
        _flag("plot", False),
        "--save_cpu",
    ]


# Optimiser and scheduler settings with mace-torch 0.3.16's defaults: a config written before
# these keys existed gets the same command as before.
OPTIMISER_DEFAULTS = {
    "optimizer": "adam",
    "amsgrad": True,
    "weight_decay": 5e-7,
    "scheduler": "ReduceLROnPlateau",
    "lr_factor": 0.8,
    "scheduler_patience": 50,
    "lr_scheduler_gamma": 0.9993,
}


def optimiser_arguments(hyper: dict) -> list[str]:
    """Optimiser (Adam/AdamW, AMSGrad, weight decay) and learning-rate scheduler flags."""
    settings_ = {key: hyper.get(key, default) for key, default in OPTIMISER_DEFAULTS.items()}
    if settings_["amsgrad"] is not True:
        # --amsgrad is store_true with default True in mace 0.3.16: it cannot be turned off
        raise ValueError("amsgrad: mace-torch 0.3.16 always uses AMSGrad; only true is possible")
    return [
        _flag("optimizer", settings_["optimizer"]),
        "--amsgrad",
        _flag("weight_decay", settings_["weight_decay"]),
        _flag("scheduler", settings_["scheduler"]),
        _flag("lr_factor", settings_["lr_factor"]),
        _flag("scheduler_patience", settings_["scheduler_patience"]),
        _flag("lr_scheduler_gamma", settings_["lr_scheduler_gamma"]),
    ]


def data_arguments(files: TrainingFiles, hyper: dict) -> list[str]:
    arguments = [_flag("train_file", files.train)]
    if files.valid is not None:
        arguments.append(_flag("valid_file", files.valid))
    else:
        arguments.append(_flag("valid_fraction", hyper["valid_fraction"]))
    return arguments


def e0s_arguments(e0s: str) -> list[str]:
    # With e0s=isolated_atoms the IsolatedAtom frames in the training file set the E0s
    # (mace ignores --E0s then); no flag is passed so the log cannot suggest otherwise.
    return [] if e0s == "isolated_atoms" else [_flag("E0s", e0s)]


def architecture_arguments(architecture: dict) -> list[str]:
    return [
        _flag("model", architecture.get("model", "ScaleShiftMACE")),
        _flag("num_channels", architecture["num_channels"]),
        _flag("max_L", architecture["max_L"]),
        _flag("r_max", architecture["r_max"]),
        _flag("num_interactions", architecture["num_interactions"]),
        _flag("correlation", architecture["correlation"]),
    ]


def build_command(
    name: str,
    method: str,
    files: TrainingFiles,
    hyper: dict,
    *,
    work_dir: Path,
    device: str,
    dtype: str,
    scratch_architecture: dict | None = None,
) -> list[str]:
    """``mace_run_train`` arguments (without the program name) for one variant."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    check_extra_args(hyper.get("extra_args", []))
    arguments = common_arguments(name, work_dir, hyper, device, dtype)
    arguments += data_arguments(files, hyper)
    if method in ("standard", "multihead"):
        if files.foundation is None:
            raise ValueError(f"{method} finetuning needs a foundation model file")
        arguments += [
            _flag("foundation_model", files.foundation),
            # Keep every element of the foundation model: the finetuned model is evaluated
            # on MPtrj/OMat24 test sets with elements absent from the finetuning data.
            _flag("foundation_model_elements", True),
        ]
    if method == "standard" and hyper["e0s"] in ("estimated", "average"):
        # mace 0.3.16 overwrites them with the foundation's E0s (see foundation_with_e0s)
        raise ValueError(f"standard finetuning cannot use e0s {hyper['e0s']!r} in mace 0.3.16")
    if method == "multihead":
        if hyper["e0s"] == "average":
            raise ValueError("mace rejects E0s 'average' in multihead finetuning")
        if files.replay is None or str(files.replay) == "mp":
            raise ValueError("multihead finetuning needs a local replay file (never 'mp')")
        arguments += [
            _flag("multiheads_finetuning", True),
            _flag("force_mh_ft_lr", True),
            _flag("pt_train_file", files.replay),
            _flag("weight_pt_head", hyper["weight_pt_head"]),
        ]
    else:
        arguments.append(_flag("multiheads_finetuning", False))
    if method == "scratch":
        arguments += architecture_arguments(scratch_architecture or {})
    if hyper.get("ema"):
        arguments += ["--ema", _flag("ema_decay", hyper["ema_decay"])]
    arguments += e0s_arguments(hyper["e0s"])
    arguments += list(hyper.get("extra_args", []))
    return arguments
