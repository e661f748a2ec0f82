"""Which figures a config can draw and which files they need (parse time, no heavy imports).

Used by ``rules/analysis.smk``; every function takes the validated config.
"""

from __future__ import annotations

import shlex

from workflow_scripts import paths
from workflow_scripts.config import ConfigError

# Data-set key of the random MPtrj sample drawn for the embedding maps.
EMBEDDING_SAMPLE = "mptrj_embedding_sample"
# Data-set key of the initial structure (ionic step 0) of every Perovs-Dopants relaxation.
INITIAL_STRUCTURES = "perovs_dopants_initial"
# Data sets of the embedding maps (Fig. 2), in drawing order (Perovs-Dopants on top).
MAP_DATASETS = (EMBEDDING_SAMPLE, "omat24", INITIAL_STRUCTURES)
# The maps colour these structures by the energy error of the models in these roles.
MAP_ERROR_DATASET = INITIAL_STRUCTURES
MAP_ERROR_ROLES = ("standard", "multihead")
COVERAGE_DATASETS = (EMBEDDING_SAMPLE, "perovs_dopants")
ERROR_DATASET = "perovs_dopants"
ROLES = ("pretrained", "standard", "multihead")
# The papers' findings checked on this run's tables (workflow_scripts.analysis.findings).
FINDINGS_FILES = (paths.metric("findings"), paths.metric("findings", "md"))
# Every model ranked on each test set (workflow_scripts.analysis.leaderboard): table, its
# Markdown, the bar figure and the figure's CSV.
LEADERBOARD_FILES = (
    paths.metric("leaderboard"),
    paths.metric("leaderboard", "md"),
    paths.figure("leaderboard"),
    paths.figure("leaderboard", "csv"),
)


def embedding_sample_file(mptrj_name: str) -> str:
    return paths.fill(paths.EMBEDDING_SAMPLE, name=mptrj_name)


def initial_structures_file(dataset_name: str) -> str:
    return paths.fill(paths.INITIAL_STRUCTURES, name=dataset_name)


def predictions_file(model: str, dataset: str) -> str:
    return paths.fill(paths.PREDICTIONS, model=model, dataset=dataset)


def descriptors_file(model: str, dataset: str) -> str:
    return paths.fill(paths.DESCRIPTORS, model=model, dataset=dataset)


def _first_variant(variants: dict, method: str, data: str | None) -> str | None:
    for name, variant in variants.items():
        if variant["method"] == method and (data is None or variant.get("data") == data):
            return name
    return None


def analysis_models(config: dict) -> dict[str, str | None]:
    """Role (pretrained, standard, multihead) -> variant drawn in that column, or None.

    ``analysis.models`` names them; a null picks the first variant with that method
    (zero_shot; standard or multihead finetuned on perovs_dopants).
    """
    variants = config["variants"]
    chosen = config["analysis"]["models"]
    for role, name in chosen.items():
        if name is not None and name not in variants:
            raise ConfigError(
                f"config key 'analysis.models.{role}': {name!r} is not a variant "
                f"(variants: {', '.join(variants) or 'none'})"
            )
    defaults = {
        "pretrained": _first_variant(variants, "zero_shot", None),
        "standard": _first_variant(variants, "standard", "perovs_dopants"),
        "multihead": _first_variant(variants, "multihead", "perovs_dopants"),
    }
    return {role: chosen.get(role) or defaults[role] for role in ROLES}


def required_model(config: dict, role: str) -> str:
    model = analysis_models(config)[role]
    if model is None:
        raise ConfigError(f"config key 'analysis.models.{role}': no variant fits this role")
    return model


def figure_names(config: dict) -> list[str]:
    """The figures this config can draw (each a PNG + the CSV of its numbers)."""
    models = analysis_models(config)
    names = ["element_distribution"]
    if models["pretrained"] and config["reference"]["mptrj"]["cp2k_subset_size"] > 0:
        names += ["force_shift_density", "force_shift_periodic_table"]
    if models["pretrained"]:
        names.append("dataset_coverage_tsne")
    if all(models.values()):
        names.append("embedding_maps")
    if ERROR_DATASET in config["evaluation"]["test_sets"]:
        names.append("per_substituent_errors")
    return names


def figure_files(config: dict) -> list[str]:
    files = []
    for name in figure_names(config):
        files += [paths.figure(name), paths.figure(name, "csv")]
    if "force_shift_density" in figure_names(config):
        files.append(paths.figure("force_shift_density_summary", "csv"))
    return files


def dataset_names(config: dict) -> dict[str, str]:
    """Data-set key -> name shown in figures ("stand-in" names come from config)."""
    mptrj = config["reference"]["mptrj"]["name"]
    return {
        EMBEDDING_SAMPLE: f"{mptrj} (random sample)",
        "mptrj": mptrj,
        "omat24": config["reference"]["omat24"]["name"],
        "perovs_dopants": config["dataset"]["name"],
        INITIAL_STRUCTURES: f"{config['dataset']['name']} (initial structures)",
    }


def pair_flags(flag: str, pairs: dict[str, str]) -> str:
    """``--flag key=value ...``, shell-quoted, for a rule's shell line."""
    return " ".join(f"{flag} {shlex.quote(f'{key}={value}')}" for key, value in pairs.items())


def analysis_targets(config: dict, metric_tables=()) -> list[str]:
    """Every figure this config can draw, the findings check, the leaderboard, and an HTML page
    per metric table (the leaderboard's too) for the report."""
    reports = [paths.fill(paths.REPORT_TABLE, table=t) for t in ("leaderboard", *metric_tables)]
    return figure_files(config) + list(FINDINGS_FILES) + list(LEADERBOARD_FILES) + reports


def labeller_flags(config: dict) -> str:
    """``--labeller TEST_SET=MODEL`` for each test set whose labels a stand-in labeller made
    (``reference.{mptrj,omat24}.standin.labeller``, the demo's CHGNet): the leaderboard flags
    that model there and does not rank it (its error is zero by construction)."""
    pairs = {}
    for test_set in config["evaluation"]["test_sets"]:
        reference = config["reference"].get(test_set, {})
        if reference.get("source") == "standin":
            pairs[test_set] = reference.get("standin", {}).get("labeller", "chgnet")
    return pair_flags("--labeller", pairs)


def map_descriptor_keys(config: dict) -> list[tuple[str, str]]:
    """(model, data set) of every descriptor file of the embedding maps."""
    return [(required_model(config, role), dataset) for role in ROLES for dataset in MAP_DATASETS]


def map_descriptor_files(config: dict) -> list[str]:
    """Descriptors of every (model, data set) of the embedding maps."""
    return [descriptors_file(model, dataset) for model, dataset in map_descriptor_keys(config)]


def map_prediction_keys(config: dict) -> list[tuple[str, str]]:
    """(model, data set) of the predictions whose energy errors colour the finetuned models'
    PHATE maps."""
    return [(required_model(config, role), MAP_ERROR_DATASET) for role in MAP_ERROR_ROLES]


def map_prediction_files(config: dict) -> list[str]:
    """Predictions whose energy errors colour the finetuned models' PHATE maps."""
    return [predictions_file(model, dataset) for model, dataset in map_prediction_keys(config)]


def error_role_flags() -> str:
    return " ".join(f"--error-role {role}" for role in MAP_ERROR_ROLES)


def findings_descriptor_keys(config: dict) -> list[tuple[str, str]]:
    """Descriptors the findings need: the pretrained model's of the MPtrj sample and the
    initial structures (out-of-distribution check), and, when every role of the maps has a
    model, those of the maps (pretrained vs finetuned embeddings)."""
    models = analysis_models(config)
    if not models["pretrained"]:
        return []
    keys = [(models["pretrained"], dataset) for dataset in (EMBEDDING_SAMPLE, INITIAL_STRUCTURES)]
    if all(models.values()):
        keys += [key for key in map_descriptor_keys(config) if key not in keys]
    return keys


def findings_descriptor_files(config: dict) -> list[str]:
    return [descriptors_file(model, dataset) for model, dataset in findings_descriptor_keys(config)]


def findings_force_shift_files(config: dict) -> list[str]:
    """The force-shift summary, where this config draws the force-shift figure."""
    if "force_shift_density" not in figure_names(config):
        return []
    return [paths.figure("force_shift_density_summary", "csv")]


def coverage_descriptor_keys(config: dict) -> list[tuple[str, str]]:
    model = required_model(config, "pretrained")
    return [(model, dataset) for dataset in COVERAGE_DATASETS]


def coverage_descriptor_files(config: dict) -> list[str]:
    return [descriptors_file(model, dataset) for model, dataset in coverage_descriptor_keys(config)]


def descriptor_flags(keys) -> str:
    """``--descriptor MODEL/DATASET=FILE`` for each (model, data set)."""
    return " ".join(f"--descriptor {m}/{d}={descriptors_file(m, d)}" for m, d in keys)


def prediction_flags(keys) -> str:
    """``--prediction MODEL/DATASET=FILE`` for each (model, data set)."""
    return " ".join(f"--prediction {m}/{d}={predictions_file(m, d)}" for m, d in keys)


def model_flags(config: dict) -> str:
    return pair_flags("--model", {role: required_model(config, role) for role in ROLES})


def dataset_flags(config: dict, keys) -> str:
    names = dataset_names(config)
    return pair_flags("--dataset", {key: names[key] for key in keys})
