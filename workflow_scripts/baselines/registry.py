"""Registered baseline models and the resolution of a ``baselines`` config entry.

A config entry is either a registered name (``baselines: [chgnet, sevennet-0]``) or a mapping
``name -> settings``: ``model`` (a registered name whose settings the entry overrides) or
``factory`` (``module:callable`` returning an ASE calculator), ``kwargs``, ``checkpoint`` (a
local file, handed to the factory as ``checkpoint_argument``), ``energy_scale`` (the DFT code
whose total energies the model predicts: VASP for models trained on MPtrj/OMat24/Alexandria,
CP2K for a model trained on CP2K labels), ``environment`` and ``label``.

Weights are never fetched inside a job: a model whose checkpoint is not on disk is refused
before any job runs, with the file to fetch and where to put it (:func:`availability_problems`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

VASP, CP2K = "VASP", "CP2K"

# Python environments a baseline can run in. "main" is the workflow's own (.venv or
# envs/mace.yaml); "sevennet" exists because SevenNet needs e3nn >= 0.5 and mace-torch pins
# e3nn 0.4.4, so the two cannot share one environment (scripts/setup.sh makes .venv-sevennet).
ENVIRONMENTS = {
    "main": {"python": "python", "conda": "envs/mace.yaml", "setup": "bash scripts/setup.sh"},
    "sevennet": {
        "python": ".venv-sevennet/bin/python",
        "conda": "envs/sevennet.yaml",
        "setup": "bash scripts/setup.sh",
    },
}

REGISTERED = {
    "chgnet": {
        "label": "CHGNet 0.3.0",
        "factory": "workflow_scripts.baselines.factories:chgnet",
        "kwargs": {"version": "0.3.0"},
        "device_argument": "device",
        "energy_scale": VASP,  # trained on MPtrj (PBE/PBE+U, MP2020-corrected energies)
        "environment": "main",
        "weights": "in the chgnet wheel",
    },
    "sevennet-0": {
        "label": "SevenNet-0 (11Jul2024)",
        "factory": "sevenn.calculator:SevenNetCalculator",
        "kwargs": {"model": "7net-0"},
        "device_argument": "device",
        "energy_scale": VASP,  # trained on MPtrj
        "environment": "sevennet",
        "weights": "in the sevenn wheel",
    },
    "mace-mpa-0": {
        "label": "MACE-MPA-0 (medium)",
        "factory": "mace.calculators:mace_mp",
        "kwargs": {"default_dtype": "float64"},
        "checkpoint": "models/mace-mpa-0-medium.model",
        "checkpoint_argument": "model",
        "device_argument": "device",
        "download": "https://github.com/ACEsuit/mace-foundations/releases/download/mace_mpa_0/"
        "mace-mpa-0-medium.model",
        "energy_scale": VASP,  # MPtrj + sAlex (PBE)
        "environment": "main",
    },
    "mattersim-v1-5m": {
        "label": "MatterSim v1.0.0 5M",
        "factory": "mattersim.forcefield:MatterSimCalculator",
        "checkpoint": "models/mattersim-v1.0.0-5M.pth",
        "checkpoint_argument": "load_path",
        "device_argument": "device",
        "download": "https://github.com/microsoft/mattersim/raw/main/pretrained_models/"
        "mattersim-v1.0.0-5M.pth (and `pip install mattersim` into the environment)",
        "energy_scale": VASP,
        "environment": "main",
    },
}

DEFAULTS = {
    "kwargs": {},
    "checkpoint": None,
    "checkpoint_argument": None,
    "device_argument": None,
    "download": None,
    "environment": "main",
    "weights": None,
}


def normalise(baselines) -> dict[str, dict]:
    """The config's ``baselines`` (a list of registered names or a mapping) as a mapping
    name -> resolved settings (registry values overridden by the entry's own)."""
    entries = {name: {} for name in baselines} if isinstance(baselines, list) else baselines
    return {name: resolve(name, dict(entry or {})) for name, entry in entries.items()}


def resolve(name: str, entry: dict) -> dict:
    """One entry's full settings; raises ValueError naming the key that is missing."""
    registered = entry.get("model", name if name in REGISTERED else None)
    if registered is not None and registered not in REGISTERED:
        raise ValueError(
            f"config key 'baselines.{name}.model': {registered!r} is not registered "
            f"(registered: {', '.join(sorted(REGISTERED))}); use 'factory' for another model"
        )
    base = REGISTERED.get(registered, {}) if registered else {}
    spec = DEFAULTS | base | {k: v for k, v in entry.items() if k != "model"}
    spec["kwargs"] = base.get("kwargs", {}) | entry.get("kwargs", {})
    spec["model"] = registered
    for key in ("factory", "energy_scale"):
        if not spec.get(key):
            raise ValueError(
                f"config key 'baselines.{name}.{key}': required for a model that is not "
                f"registered (registered: {', '.join(sorted(REGISTERED))})"
            )
    if spec["checkpoint"] and not spec["checkpoint_argument"]:
        raise ValueError(
            f"config key 'baselines.{name}.checkpoint_argument': required with a checkpoint "
            "(the factory's keyword that takes the file, e.g. model or load_path)"
        )
    spec.setdefault("label", name)
    environment = ENVIRONMENTS[spec["environment"]]
    spec.setdefault("python", environment["python"])
    spec.setdefault("conda", environment["conda"])
    return spec


def availability_problems(name: str, spec: dict, base_dir: Path) -> list[str]:
    """Why ``name`` cannot run offline: a checkpoint that is not on disk, with what to fetch."""
    checkpoint = spec.get("checkpoint")
    if not checkpoint or (base_dir / checkpoint).is_file():
        return []
    fetch = f"fetch {spec['download']}" if spec.get("download") else "fetch the model file"
    return [
        f"config key 'baselines.{name}': checkpoint {checkpoint} not found; {fetch} to that "
        f"path (or set baselines.{name}.checkpoint). Jobs never download weights."
    ]


def environment_problems(name: str, spec: dict, base_dir: Path) -> list[str]:
    """An interpreter that does not exist (runs without --use-conda)."""
    python = spec["python"]
    if "/" not in python or (base_dir / python).exists():
        return []
    setup = ENVIRONMENTS[spec["environment"]]["setup"]
    return [
        f"baseline {name!r} runs in the Python environment {spec['environment']!r} "
        f"({python} not found): run `{setup}`, set baselines.{name}.python, or run "
        f"snakemake with --use-conda ({spec['conda']})"
    ]


def load_factory(text: str):
    """The callable named ``module:attribute`` (attribute may be dotted)."""
    module_name, _, attribute = text.partition(":")
    target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def build_calculator(spec: dict, device: str, base_dir: Path = Path(".")):
    """The ASE calculator of one resolved baseline."""
    kwargs = dict(spec["kwargs"])
    if spec.get("checkpoint"):
        kwargs[spec["checkpoint_argument"]] = str(base_dir / spec["checkpoint"])
    if spec.get("device_argument"):
        kwargs[spec["device_argument"]] = device
    return load_factory(spec["factory"])(**kwargs)
