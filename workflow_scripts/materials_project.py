"""Host perovskites from the Materials Project (mp-api), as the study selected them:
stable (energy above hull within a bound), DFT band gap in a window, ABX3.

The API key is read from ``$MP_API_KEY`` only. Each host is written as
``<folder>/<formula>_<material_id>.cif``, plus ``query.json`` recording the query and the
returned entries; the next run of the workflow picks the CIFs up as hosts.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from workflow_scripts.config import ConfigError

log = logging.getLogger(__name__)

SUMMARY_FIELDS = ["material_id", "formula_pretty", "structure", "band_gap", "energy_above_hull"]


def search_criteria(settings: dict) -> dict:
    """Keyword arguments of ``MPRester.materials.summary.search`` for the study's filters."""
    low, high = settings["band_gap"]
    return {
        "formula": "ABC3",  # anonymous formula: every ternary with a 1:1:3 ratio
        "band_gap": (low, high),
        "energy_above_hull": (0.0, settings["energy_above_hull_max"]),
        "fields": SUMMARY_FIELDS,
    }


def _as_dict(doc) -> dict:
    if isinstance(doc, dict):
        return doc
    data = doc.model_dump() if hasattr(doc, "model_dump") else dict(doc)
    data["structure"] = doc.structure.as_dict()
    return data


def select_perovskites(docs: list[dict], max_hosts: int) -> list[tuple[str, object]]:
    """(host name, structure with roles) for the entries whose cations sit on A and B sites
    (B octahedral: six X neighbours), lowest energy above hull first."""
    from pymatgen.core import Structure

    from workflow_scripts.sites import assign_roles, x_coordination

    hosts = []
    for doc in sorted(docs, key=lambda d: (d["energy_above_hull"], str(d["material_id"]))):
        structure = Structure.from_dict(doc["structure"])
        name = f"{doc['formula_pretty']}_{doc['material_id']}"
        try:
            structure = assign_roles(structure, {}, host=name)
        except ConfigError as error:
            log.info("skipping %s: %s", name, error)
            continue
        b_index = next(i for i, s in enumerate(structure) if s.properties["role"] == "B")
        x_el = next(s.specie.symbol for s in structure if s.properties["role"] == "X")
        if x_coordination(structure, b_index, x_el)[1] != 6:
            log.info("skipping %s: B site is not octahedral", name)
            continue
        hosts.append((name, structure))
    return hosts[:max_hosts]


def fetch_hosts(settings: dict, folder: Path, rester=None) -> list[str]:
    """Query, select and write the hosts; returns their names. ``rester`` is an open
    ``MPRester`` (tests pass one that replays a recorded response)."""
    criteria = search_criteria(settings)
    if rester is None:
        api_key = os.environ.get("MP_API_KEY")
        if not api_key:
            raise ConfigError(
                "materials_project: no API key; set the environment variable MP_API_KEY "
                "(https://next-gen.materialsproject.org/api) or disable materials_project"
            )
        from mp_api.client import MPRester

        with MPRester(api_key) as live:
            docs = [_as_dict(d) for d in live.materials.summary.search(**criteria)]
    else:
        docs = [_as_dict(d) for d in rester.materials.summary.search(**criteria)]
    hosts = select_perovskites(docs, settings["max_hosts"])
    folder.mkdir(parents=True, exist_ok=True)
    for name, structure in hosts:
        structure.to(filename=str(folder / f"{name}.cif"))
    record = {"criteria": {k: v for k, v in criteria.items() if k != "fields"}, "entries": docs}
    (folder / "query.json").write_text(json.dumps(record, indent=1, default=str))
    log.info("%d of %d Materials Project entries kept as hosts", len(hosts), len(docs))
    return [name for name, _ in hosts]
