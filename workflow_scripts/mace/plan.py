"""Files and names the MACE rules need, from the validated config (parse time, no heavy imports).

Used by ``rules/training.smk`` and ``rules/evaluation.smk``.
"""

from __future__ import annotations

import re
import shlex

from workflow_scripts import paths
from workflow_scripts.analysis.energy_alignment import FIT_JSON as ALIGNMENT_FIT
from workflow_scripts.mace.settings import MPTRJ_CP2K, OMAT24, PEROVS_DOPANTS, STANDIN_FOUNDATION
from workflow_scripts.mace.train_command import default_e0s

METRIC_TABLES = ("table1_force_mae", "tableA1", "per_element_force_mae", "per_substituent")
NEVER = "(?!)"  # a wildcard pattern that matches nothing


def trainable_variants(config: dict) -> list[str]:
    return [name for name, v in config["variants"].items() if v["method"] != "zero_shot"]


def name_pattern(names) -> str:
    """Wildcard constraint matching exactly these names."""
    names = list(names)
    return "|".join(re.escape(name) for name in names) if names else NEVER


def is_url(spec: str) -> bool:
    """A foundation model given by its download address (fetched by the foundation job)."""
    return spec.startswith(("https://", "http://"))


def foundation_inputs(config: dict, mptrj_name: str) -> dict[str, str]:
    spec = config["mace"]["foundation_model"]
    if spec == STANDIN_FOUNDATION:
        inputs = {"pool": paths.reference_file(mptrj_name, "pool")}
        if config["mace"]["standin_foundation"]["e0s"] == "aligned_isolated_atoms":
            inputs["isolated_atoms"] = paths.ISOLATED_ATOMS
            inputs["alignment"] = ALIGNMENT_FIT
        return inputs
    if spec.endswith(".model") and not is_url(spec):
        return {"model_file": spec}
    return {}


def trains_on_mptrj_cp2k_with_isolated_atoms(config: dict) -> bool:
    """True when a variant trains on the CP2K MPtrj subset with CP2K isolated-atom E0s (then
    every element the subset can hold needs an isolated atom)."""
    return any(
        spec.get("data") == MPTRJ_CP2K
        and (spec.get("e0s") or default_e0s(MPTRJ_CP2K)) == "isolated_atoms"
        for spec in config["variants"].values()
    )


def training_inputs(config: dict, variant: str, mptrj_name: str, omat24_name: str) -> dict:
    """Named inputs of ``mace_train`` for one variant (keys = CLI flags of the train module)."""
    spec = config["variants"][variant]
    data, method = spec["data"], spec["method"]
    inputs: dict[str, str] = {}
    if data == PEROVS_DOPANTS:
        inputs["perovs_train"] = paths.split("train")
        inputs["perovs_valid"] = paths.split("valid")
    elif data == MPTRJ_CP2K:
        inputs["mptrj_cp2k"] = paths.reference_file(mptrj_name, "cp2k_subset")
    elif data == OMAT24:
        inputs["omat24_train"] = paths.reference_file(omat24_name, "train")
    e0s = spec.get("e0s") or default_e0s(data)
    if e0s == "isolated_atoms" and data != PEROVS_DOPANTS:  # the dopant train file has them
        inputs["isolated_atoms"] = paths.ISOLATED_ATOMS
    if method == "multihead":
        inputs["replay"] = paths.reference_file(mptrj_name, "replay_fps")
    if method != "scratch":
        inputs["foundation"] = paths.FOUNDATION_MODEL
        inputs["foundation_info"] = paths.FOUNDATION_INFO
    return inputs


def cli_flags(named: dict, keys) -> str:
    """``--key-name path`` for each of ``keys`` present in ``named`` (shell-quoted)."""
    return " ".join(
        f"--{key.replace('_', '-')} {shlex.quote(str(named[key]))}" for key in keys if key in named
    )


def model_files(config: dict) -> list[str]:
    files = [paths.FOUNDATION_MODEL, paths.FOUNDATION_INFO]
    for variant in trainable_variants(config):
        files += [
            paths.fill(paths.MODEL, variant=variant),
            paths.fill(paths.MODEL_INFO, variant=variant),
        ]
    return files


def metric_file(table: str, suffix: str = "csv") -> str:
    """The metric table ``table`` (one of METRIC_TABLES) as ``suffix`` (an input of later rules)."""
    if table not in METRIC_TABLES:
        raise ValueError(f"{table!r} is not a metric table ({', '.join(METRIC_TABLES)})")
    return paths.metric(table, suffix)


def metric_files() -> list[str]:
    files = [metric_file("table1_force_mae", "md"), metric_file("tableA1", "md")]
    return files + [metric_file(table) for table in METRIC_TABLES]


def prediction_files(models, test_sets) -> list[str]:
    return [paths.fill(paths.PREDICTIONS, model=m, dataset=t) for m in models for t in test_sets]


def prediction_flags(models, test_sets) -> str:
    """``--prediction MODEL/TEST_SET=FILE`` for every model and test set (the metric tables)."""
    return " ".join(
        f"--prediction {m}/{t}={paths.fill(paths.PREDICTIONS, model=m, dataset=t)}"
        for m in models
        for t in test_sets
    )


def _guarded(arguments, key: str) -> list[str]:
    from workflow_scripts.mace.train_command import GUARDED_FLAGS

    flags = [argument.lstrip("-").split("=", 1)[0] for argument in arguments]
    return [
        f"{key}': --{flag} is set from config, not extra_args"
        for flag in flags
        if flag in GUARDED_FLAGS
    ]


def standin_uses_aligned_e0s(config: dict) -> bool:
    """The stand-in foundation takes its E0s from CP2K isolated atoms and the alignment fit
    (then every element of the MPtrj stand-in pool needs an isolated atom)."""
    mace = config["mace"]
    return (
        mace["foundation_model"] == STANDIN_FOUNDATION
        and mace["standin_foundation"]["e0s"] == "aligned_isolated_atoms"
    )


def config_problems(config: dict) -> list[str]:
    """Variant settings the schema cannot reject, as ``config key '...': ...`` messages."""
    problems = _guarded(
        config["mace"]["hyperparameters"]["extra_args"],
        "config key 'mace.hyperparameters.extra_args",
    )
    if standin_uses_aligned_e0s(config) and not config["reference"]["mptrj"]["cp2k_subset_size"]:
        problems.append(
            "config key 'mace.standin_foundation.e0s': aligned_isolated_atoms needs the energy "
            "alignment fit, i.e. reference.mptrj.cp2k_subset_size > 0 (at least one CP2K frame "
            "per stand-in element); or use average"
        )
    for name, variant in config["variants"].items():
        key, method = f"config key 'variants.{name}", variant["method"]
        e0s = variant.get("e0s") or default_e0s(variant.get("data", PEROVS_DOPANTS))
        if method == "multihead" and not variant.get("replay"):
            problems.append(f"{key}.replay': required for method multihead (mptrj_fps)")
        if method != "multihead" and variant.get("replay"):
            problems.append(f"{key}.replay': only multihead finetuning replays data")
        if method == "standard" and e0s in ("estimated", "average"):
            problems.append(
                f"{key}.e0s': {e0s!r} is overwritten by the foundation's E0s in mace 0.3.16's "
                "standard finetuning; use isolated_atoms or foundation"
            )
        if method == "multihead" and e0s == "average":
            problems.append(f"{key}.e0s': mace rejects 'average' in multihead finetuning")
        if method == "zero_shot":
            overrides = [
                k
                for k in ("lr", "max_num_epochs", "batch_size", "seed", "e0s")
                if variant.get(k) is not None
            ]
            overrides += ["extra_args"] if variant.get("extra_args") else []
            if overrides:
                problems.append(f"{key}': a zero_shot variant is not trained ({overrides})")
        cp2k_subset = config["reference"]["mptrj"].get("cp2k_subset_size", 0)
        if variant.get("data") == MPTRJ_CP2K and cp2k_subset == 0:
            problems.append(f"{key}.data': mptrj_cp2k needs reference.mptrj.cp2k_subset_size > 0")
        problems += _guarded(variant.get("extra_args", []), f"{key}.extra_args")
    return problems
