"""Load and validate the workflow configuration before any job is scheduled.

Two layers: the JSON schema (``schemas/``; types, ranges, unknown keys, defaults) and the
checks a schema cannot express (element symbols, files that must exist, a variant's data).
Checks that need a host's structure (site roles, substituent equal to the atom it replaces)
run when the defect plan is built (:mod:`workflow_scripts.defects`). Every error names the
config key and the offending value.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from workflow_scripts.elements import cp2k_can_compute, is_element

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO_ROOT / "schemas"


class ConfigError(ValueError):
    """Invalid configuration; the message names the key and the value."""


# libyaml's loader where PyYAML has it: the schemas are read at every Snakemake start
# (~0.2 s with the pure-Python loader, a twentieth of a study dry run).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path):
    return yaml.load(path.read_text(), Loader=_SAFE_LOADER)


def load_schema(schema_dir: Path = SCHEMA_DIR) -> dict:
    """The top-level schema with each section file (``$ref: x.schema.yaml``) inlined."""
    top = _read_yaml(schema_dir / "config.schema.yaml")
    for key, prop in top["properties"].items():
        ref = prop.get("$ref", "")
        if ref.endswith(".yaml"):
            top["properties"][key] = _read_yaml(schema_dir / ref)
    return top


def _with_defaults(validator_class):
    """A validator that fills in ``default`` values while it validates (jsonschema FAQ)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def key_path(parts) -> str:
    """``hosts.SrTiO3.source`` from a jsonschema path."""
    return ".".join(str(p) for p in parts) or "<top level>"


def _schema_message(error) -> str:
    key = key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"config key '{key}': unknown key(s) {unknown} (typo?); allowed: {allowed}"
    return f"config key '{key}': {error.message}"


def validate_schema(config: dict, schema: dict | None = None) -> dict:
    """Validate against the schema and return a copy with defaults filled in."""
    filled = copy.deepcopy(config)
    validator = _with_defaults(Draft202012Validator)(schema or load_schema())
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("\n".join(_schema_message(e) for e in errors))
    return filled


def _check_elements(values, key: str, computable_with: dict | None = None) -> None:
    """Known element symbols; with ``computable_with`` (``dft.elements``), also ones CP2K can
    compute: a MOLOPT basis with a GTH potential, or a basis named in the override."""
    for value in values:
        if not is_element(value):
            raise ConfigError(f"config key '{key}': unknown element {value!r}")
        if computable_with is None or cp2k_can_compute(value):
            continue
        if not (computable_with.get(value) or {}).get("basis"):
            raise ConfigError(
                f"config key '{key}': CP2K's data files have no MOLOPT basis with a GTH "
                f"potential for {value!r} (docs/elements.md); name a basis and potential in "
                f"dft.elements.{value} or leave it out"
            )


def check_semantics(config: dict, base_dir: Path) -> None:
    """Checks beyond the schema that need no structure file to be read."""
    defects = config["defects"]
    overrides = config["dft"].get("elements") or {}
    for role, elements in defects["substituents"].items():
        _check_elements(elements, f"defects.substituents.{role}", overrides)
    for anion, elements in defects["anion_substituents"].items():
        _check_elements([anion], f"defects.anion_substituents.{anion}")
        _check_elements(elements, f"defects.anion_substituents.{anion}", overrides)
        if anion in elements:
            raise ConfigError(
                f"config key 'defects.anion_substituents.{anion}': substituent {anion!r} "
                "equals the atom it replaces"
            )
    for name, host in config["hosts"].items():
        for role, element in host.get("site_roles", {}).items():
            _check_elements([element], f"hosts.{name}.site_roles.{role}")
        for role, elements in host.get("substituents", {}).items():
            _check_elements(elements, f"hosts.{name}.substituents.{role}", overrides)
        if host["source"] == "file":
            if "path" not in host:
                raise ConfigError(f"config key 'hosts.{name}.path': required for source 'file'")
            path = base_dir / host["path"]
            if not path.is_file():
                raise ConfigError(
                    f"config key 'hosts.{name}.path': structure file {host['path']!r} not found"
                )
        elif "path" in host:
            raise ConfigError(
                f"config key 'hosts.{name}.path': only valid with source 'file', "
                f"not {host['source']!r}"
            )
        if host["source"] != "prototype" and "lattice_constant" in host:
            raise ConfigError(
                f"config key 'hosts.{name}.lattice_constant': only valid with source 'prototype'"
            )
    for folder in config["host_folders"]:
        if not (base_dir / folder).is_dir():
            raise ConfigError(f"config key 'host_folders': folder {folder!r} not found")
    for name, variant in config["variants"].items():
        if variant["method"] != "zero_shot" and "data" not in variant:
            raise ConfigError(
                f"config key 'variants.{name}.data': required for method {variant['method']!r}"
            )
        if variant["method"] == "zero_shot" and "data" in variant:
            raise ConfigError(
                f"config key 'variants.{name}.data': a zero_shot variant trains on nothing"
            )
    from workflow_scripts.mace.plan import config_problems

    problems = config_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))


def resolve_baselines(config: dict, base_dir: Path) -> None:
    """``baselines`` as a mapping name -> full settings (registered ones filled in); a model
    whose weights are not on disk is refused here, before any job, with what to fetch."""
    from workflow_scripts.baselines import registry

    try:
        config["baselines"] = registry.normalise(config["baselines"])
    except ValueError as error:
        raise ConfigError(str(error)) from None
    clashes = sorted(set(config["baselines"]) & set(config["variants"]))
    if clashes:
        raise ConfigError(f"config key 'baselines': {clashes} are also variant names")
    problems = [
        problem
        for name, spec in config["baselines"].items()
        for problem in registry.availability_problems(name, spec, base_dir)
    ]
    prerelax = config["dft"].get("prerelax")
    zero_shot = [n for n, v in config["variants"].items() if v["method"] == "zero_shot"]
    if prerelax is not None and prerelax not in zero_shot + list(config["baselines"]):
        problems.append(
            f"config key 'dft.prerelax': {prerelax!r} must be a zero_shot variant "
            f"({zero_shot}) or a baseline ({list(config['baselines'])}): a model trained on "
            "this run's DFT data cannot relax the structures that data comes from"
        )
    if problems:
        raise ConfigError("\n".join(problems))


def validate_config(config: dict, base_dir: Path | str = ".") -> dict:
    """Schema + semantic validation; returns the config with defaults filled in."""
    filled = validate_schema(config)
    check_semantics(filled, Path(base_dir))
    resolve_baselines(filled, Path(base_dir))
    return filled


def load_config(path: Path | str, base_dir: Path | str | None = None) -> dict:
    """Read a YAML config file and validate it (paths relative to ``base_dir``)."""
    path = Path(path)
    raw: Any = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate_config(raw, base_dir if base_dir is not None else REPO_ROOT)
