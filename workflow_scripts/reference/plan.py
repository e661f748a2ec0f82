"""File names of the reference stage, for rules/reference.smk (parse time, no heavy imports).

Every function takes the validated config.
"""

from __future__ import annotations

import re
from pathlib import Path

from workflow_scripts import paths
from workflow_scripts.reference.fetch import require_local

# Descriptor data-set keys beyond common.smk's dataset_file() names.
POOL = "mptrj_pool"
EMBEDDING_SAMPLE = "mptrj_embedding_sample"


def name(config: dict, dataset: str) -> str:
    return config["reference"][dataset]["name"]


def output_dir(config: dict, dataset: str) -> str:
    return paths.fill(paths.REFERENCE_DIR, name=name(config, dataset))


def uses_standin(config: dict, dataset: str) -> bool:
    return config["reference"][dataset]["source"] == "standin"


def standin_file(config: dict, dataset: str) -> str:
    """The stand-in in the real format: MPtrj JSON or OMat24 .aselmdb."""
    label = name(config, dataset)
    suffix = "json" if dataset == "mptrj" else "aselmdb"
    return paths.fill(paths.STANDIN_SOURCE, standin=label, suffix=suffix)


def standin_constraint(config: dict) -> str:
    """Regex of the ``{standin}`` wildcard: the two stand-in names."""
    return "|".join(re.escape(name(config, d)) for d in ("mptrj", "omat24"))


def standin_kind(config: dict, standin: str) -> str:
    return "mptrj" if standin == name(config, "mptrj") else "omat24"


def source(config: dict, dataset: str, dry_run: bool = False) -> str | list:
    """The file (MPtrj) or file/folder (OMat24) to ingest; stops with what to fetch when a
    configured local path is missing. A dry run only plans, so there a missing path is no
    input (``[]``) and the study's DAG can be listed on a machine without the data."""
    settings = config["reference"][dataset]
    if settings["source"] == "standin":
        return standin_file(config, dataset)
    if settings["source"] == "path":
        if dry_run and not Path(settings["path"]).exists():
            return []
        require_local(dataset, settings["path"], f"reference.{dataset}")
    return settings["path"]


def mptrj_pool_elements(settings: dict) -> list[str]:
    """Elements the MPtrj pool can hold (``reference.mptrj`` settings): the configured
    ``cp2k_subset_elements`` or ``elements`` filter, else the stand-in's chemistry or MPtrj's
    89 elements."""
    from workflow_scripts.elements import MPTRJ_ELEMENTS

    for key in ("cp2k_subset_elements", "elements"):
        if settings.get(key):
            return sorted(settings[key])
    if settings["source"] == "standin":
        from workflow_scripts.reference.standins import standin_elements

        return standin_elements()
    return list(MPTRJ_ELEMENTS)


def descriptor_model_file(model: str) -> str | None:
    """``foundation`` -> the foundation model file; None: ask common.smk's model_file()."""
    return paths.FOUNDATION_MODEL if model == "foundation" else None


def descriptor_data_file(config: dict, dataset: str) -> str | None:
    """The pool and the embedding sample; None: ask common.smk's dataset_file()."""
    mptrj = name(config, "mptrj")
    return {
        POOL: paths.reference_file(mptrj, "pool"),
        EMBEDDING_SAMPLE: paths.fill(paths.EMBEDDING_SAMPLE, name=mptrj),
    }.get(dataset)


def targets(config: dict) -> list[str]:
    """Every file of the stage (with the stand-ins where the config uses them)."""
    mptrj, omat24 = output_dir(config, "mptrj"), output_dir(config, "omat24")
    files = [
        f"{mptrj}/test.extxyz",
        f"{mptrj}/pool.extxyz",
        f"{mptrj}/replay_fps.extxyz",
        f"{mptrj}/cp2k_subset_structures.extxyz",
        f"{omat24}/train.extxyz",
        f"{omat24}/test.extxyz",
    ]
    return files + [standin_file(config, d) for d in ("mptrj", "omat24") if uses_standin(config, d)]
