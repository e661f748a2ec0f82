"""Every key of the configuration schemas says what it sets (a one-line ``description``).

The descriptions are the reference a user reads to write config.yaml, so a key added without
one fails here, named by its file and its path in the schema.
"""

from pathlib import Path

import pytest
import yaml

from workflow_scripts.config import SCHEMA_DIR, load_schema

SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.schema.yaml"))

# Keywords whose values are subschemas keyed by a property (or definition) name.
NAMED_SUBSCHEMAS = ("properties", "patternProperties", "$defs", "definitions")
# Keywords whose values are data, not subschemas: never walked.
DATA_KEYWORDS = ("default", "enum", "const", "examples")


def _read(path: Path) -> dict:
    # SafeLoader resolves the YAML anchors and merge keys (reference.schema.yaml shares
    # definitions that way), so each use of an anchor is checked where it lands.
    return yaml.safe_load(path.read_text())


def _has_description(subschema, schema_dir: Path) -> bool:
    if not isinstance(subschema, dict):
        return False
    ref = subschema.get("$ref", "")
    if isinstance(ref, str) and ref.endswith(".yaml"):
        # A section inlined from its own file: its description is that file's top level.
        return _has_description(_read(schema_dir / ref), schema_dir)
    description = subschema.get("description")
    return isinstance(description, str) and description.strip() != ""


def undescribed(node, schema_dir: Path, path: str = "") -> list[str]:
    """Schema paths (``properties.dft.properties.cutoff``) of named keys with no description."""
    missing = []
    if isinstance(node, dict):
        for keyword, value in node.items():
            if keyword in DATA_KEYWORDS:
                continue
            here = f"{path}.{keyword}" if path else str(keyword)
            if keyword in NAMED_SUBSCHEMAS and isinstance(value, dict):
                for name, subschema in value.items():
                    if not _has_description(subschema, schema_dir):
                        missing.append(f"{here}.{name}")
                    missing += undescribed(subschema, schema_dir, f"{here}.{name}")
            else:
                missing += undescribed(value, schema_dir, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            missing += undescribed(item, schema_dir, f"{path}.{index}")
    return missing


def test_walker_finds_a_key_without_description(tmp_path):
    (tmp_path / "section.schema.yaml").write_text(
        "type: object\nproperties:\n  a: {type: integer, description: ' '}\n"
        "  b:\n    type: array\n    items:\n      type: object\n"
        "      properties: {c: {type: string, description: Set.}, d: {type: string}}\n"
    )
    top = {
        "properties": {"section": {"$ref": "section.schema.yaml"}},
        "$defs": {"shared": {"additionalProperties": {"properties": {"e": {}}}}},
    }
    assert undescribed(top, tmp_path) == [
        "properties.section",
        "$defs.shared",
        "$defs.shared.additionalProperties.properties.e",
    ]
    section = _read(tmp_path / "section.schema.yaml")
    assert undescribed(section, tmp_path) == [
        "properties.a",
        "properties.b",
        "properties.b.items.properties.d",
    ]


def test_every_schema_file_is_walked():
    names = {path.name for path in SCHEMA_FILES}
    assert "config.schema.yaml" in names
    referenced = {
        prop["$ref"]
        for prop in _read(SCHEMA_DIR / "config.schema.yaml")["properties"].values()
        if "$ref" in prop
    }
    assert referenced <= names
    assert len(load_schema()["properties"]) >= len(referenced)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda path: path.name)
def test_every_key_has_a_description(path):
    missing = undescribed(_read(path), SCHEMA_DIR)
    assert not missing, f"{path.name}: keys without a description: {', '.join(missing)}"
