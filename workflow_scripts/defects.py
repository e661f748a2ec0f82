"""Neutral point defects in host supercells, built with pymatgen-analysis-defects.

The *plan* (which defects each host gets, and their names) is computed when the Snakefile is
parsed, so that a dry run lists one job per (host, defect); the *structures* are built by one
job each. Both go through :func:`host_defects`, so names and sites always agree.

Names: ``sub_<El>_on_<role>`` and ``vac_<role>``; where a role has several symmetry-distinct
sites (e.g. the two O sites of orthorhombic CaTiO3) a number follows the role
(``sub_N_on_X1``, ``sub_N_on_X2``), numbered in the order of the sites in the host cell.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from workflow_scripts.config import ConfigError

MANIFEST_COLUMNS = (
    "host",
    "defect",
    "kind",
    "role",
    "species",
    "replaced",
    "site_index",
    "n_atoms",
    "formula",
    "source",
    "magmom",
)


@dataclass(frozen=True)
class DefectSpec:
    """One defect of one host."""

    host: str
    name: str
    kind: str  # "substitution" or "vacancy"
    role: str  # A, B or X
    species: str  # the substituent, or the removed element for a vacancy
    replaced: str  # the host element on that site
    site_index: int  # index of the representative site in the host cell


def requested_substituents(
    host: str, host_spec: dict, defects_cfg: dict, roles: dict
) -> dict[str, list[str]]:
    """Substituents per role for one host.

    The global lists skip an element equal to the host's own atom on that site (it is no
    defect); a host's own ``substituents`` must not contain one (that is a config error).
    """
    own = host_spec.get("substituents")
    if own is not None:
        for role, elements in own.items():
            if role not in roles:
                raise ConfigError(f"config key 'hosts.{host}.substituents.{role}': no such site")
            if roles[role] in elements:
                raise ConfigError(
                    f"config key 'hosts.{host}.substituents.{role}': substituent "
                    f"{roles[role]!r} equals the atom it replaces"
                )
        return {role: list(elements) for role, elements in own.items() if elements}
    wanted = {
        role: [el for el in defects_cfg["substituents"].get(role, []) if el != roles[role]]
        for role in ("A", "B")
    }
    wanted["X"] = list(defects_cfg["anion_substituents"].get(roles["X"], []))
    return {role: elements for role, elements in wanted.items() if elements}


def _host_index(structure, site) -> int:
    for index, candidate in enumerate(structure):
        if candidate.specie.symbol == site.specie.symbol and candidate.distance(site) < 1e-3:
            return index
    raise ValueError(f"site {site} not found in host")


def _distinct_site_groups(host_structure) -> dict[str, list[int]]:
    """Role -> host index of one representative site per symmetry-distinct group.

    Uses the grouping of pymatgen-analysis-defects' VacancyGenerator (symmetrized structure).
    """
    from pymatgen.analysis.defects.generators import VacancyGenerator

    groups: dict[str, list[int]] = {}
    for vacancy in VacancyGenerator().get_defects(host_structure):
        members = [_host_index(host_structure, site) for site in vacancy.equivalent_sites]
        first = min(members)
        groups.setdefault(host_structure[first].properties["role"], []).append(first)
    return {role: sorted(indices) for role, indices in groups.items()}


def host_defects(host: str, host_structure, host_spec: dict, defects_cfg: dict) -> list[DefectSpec]:
    """Every defect of one host, in a deterministic order."""
    from workflow_scripts.sites import role_elements

    roles = role_elements(host_structure)
    substituents = requested_substituents(host, host_spec, defects_cfg, roles)
    vacancies = host_spec.get("vacancies", defects_cfg["vacancies"])
    groups = _distinct_site_groups(host_structure)
    specs = []
    for role in ("A", "B", "X"):
        indices = groups.get(role, [])
        for number, site_index in enumerate(indices, start=1):
            label = f"{role}{number}" if len(indices) > 1 else role
            for element in substituents.get(role, []):
                specs.append(
                    DefectSpec(host, f"sub_{element}_on_{label}", "substitution", role, element,
                               roles[role], site_index)
                )  # fmt: skip
            if role in vacancies:
                specs.append(
                    DefectSpec(host, f"vac_{label}", "vacancy", role, roles[role], roles[role],
                               site_index)
                )  # fmt: skip
    return specs


SUBSHELL_CAPACITY = {"s": 2, "p": 6, "d": 10, "f": 14}


def initial_magmom(element: str, oxidation_state: int) -> float:
    """High-spin unpaired electrons of ``element`` in the oxidation state of the site it takes.

    An isovalent ion is the natural first guess for a substituent (Fe on the Ti4+ site of
    SrTiO3 -> Fe4+ d4 -> 4 μB; Zr on Ti4+ -> d0 -> 0). Electrons leave the highest n first (4s
    before 3d); charges beyond the element's highest known oxidation state are capped there.
    """
    from pymatgen.core import Element

    el = Element(element)
    charge = oxidation_state
    if charge > 0 and el.oxidation_states:
        charge = min(charge, max(el.oxidation_states))
    shells = [[n, kind, occ] for n, kind, occ in el.full_electronic_structure]
    if charge > 0:
        for shell in sorted(shells, key=lambda s: (s[0], "spdf".index(s[1])), reverse=True):
            taken = min(shell[2], charge)
            shell[2] -= taken
            charge -= taken
            if charge == 0:
                break
    elif charge < 0:
        outer = max(shells, key=lambda s: (s[0], "spdf".index(s[1])))
        outer[2] = min(outer[2] - charge, SUBSHELL_CAPACITY[outer[1]])
    return float(sum(min(occ, SUBSHELL_CAPACITY[kind] - occ) for _, kind, occ in shells))


def site_oxidation_states(host_structure) -> dict[str, int]:
    """Most likely oxidation state of each host element (0 where none is found)."""
    guesses = host_structure.composition.element_composition.oxi_state_guesses(max_sites=-1)
    if not guesses:
        return {}
    return {element: round(oxi) for element, oxi in guesses[0].items()}


def _make_defect(host_structure, spec: DefectSpec):
    from pymatgen.analysis.defects.core import Substitution, Vacancy
    from pymatgen.core import PeriodicSite

    site = host_structure[spec.site_index]
    if spec.kind == "vacancy":
        return Vacancy(host_structure, site)
    substituted = PeriodicSite(spec.species, site.frac_coords, host_structure.lattice)
    return Substitution(host_structure, substituted)


def build_defect_structure(host_structure, spec: DefectSpec, supercell, source: str):
    """The defect supercell with ``role`` and initial ``magmom`` site properties."""
    import numpy as np

    defect = _make_defect(host_structure, spec)
    structure, defect_site = defect.get_supercell_structure(
        sc_mat=np.diag(supercell), return_site=True
    )
    from workflow_scripts.sites import role_elements

    role_of = {element: role for role, element in role_elements(host_structure).items()}
    oxidation_state = site_oxidation_states(host_structure).get(spec.replaced, 0)
    moment = initial_magmom(spec.species, oxidation_state) if spec.kind == "substitution" else 0
    roles, magmoms = [], []
    for site in structure:
        is_defect_site = spec.kind == "substitution" and site.distance(defect_site) < 1e-3
        roles.append(spec.role if is_defect_site else role_of[site.specie.symbol])
        magmoms.append(moment if is_defect_site else 0.0)
    structure.add_site_property("role", roles)
    structure.add_site_property("magmom", magmoms)
    structure.properties = {**asdict(spec), "defect": spec.name, "source": source}
    del structure.properties["name"]
    return structure


def manifest_row(structure) -> dict:
    """One manifest line for a defect structure written by :func:`build_defect_structure`."""
    props = structure.properties
    return {
        "host": props["host"],
        "defect": props["defect"],
        "kind": props["kind"],
        "role": props["role"],
        "species": props["species"],
        "replaced": props["replaced"],
        "site_index": props["site_index"],
        "n_atoms": len(structure),
        "formula": structure.composition.formula.replace(" ", ""),
        "source": props["source"],
        "magmom": max(structure.site_properties["magmom"]),
    }


def write_manifest(structure_files, path: Path) -> None:
    """CSV manifest of the defect structures, one row each."""
    from pymatgen.core import Structure

    rows = [manifest_row(Structure.from_file(str(f))) for f in structure_files]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


# --- the plan, computed at DAG-parse time and cached -------------------------------------


def _plan_key(config: dict, specs: dict, base_dir: Path) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([config["defects"], specs], sort_keys=True).encode())
    for spec in specs.values():
        if "path" in spec:
            digest.update((base_dir / spec["path"]).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


@dataclass
class DefectPlan:
    """Every defect of every host, and each host's elements."""

    defects: list[DefectSpec]
    host_elements: dict[str, list[str]]

    def to_json(self) -> dict:
        return {"defects": [asdict(d) for d in self.defects], "host_elements": self.host_elements}

    @classmethod
    def from_json(cls, data: dict) -> DefectPlan:
        return cls([DefectSpec(**row) for row in data["defects"]], data["host_elements"])


def plan_defects(config: dict, base_dir: Path, cache_dir: Path | None = None) -> DefectPlan:
    """All (host, defect) pairs of a validated config.

    The plan needs each host's symmetry (pymatgen, a few seconds); it is cached in
    ``cache_dir`` under a hash of the defect config, the host specs and structure files, and
    this module, so parsing the Snakefile again (every cluster job does) stays fast.
    """
    from workflow_scripts.hosts import host_specs

    specs = host_specs(config, base_dir)
    key = _plan_key(config, specs, base_dir)
    cache = cache_dir / f"defect_plan_{key[:20]}.json" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        return DefectPlan.from_json(json.loads(cache.read_text()))
    from workflow_scripts.hosts import build_host

    defects, host_elements = [], {}
    for host, spec in specs.items():
        structure = build_host(host, spec, base_dir)
        host_elements[host] = sorted(el.symbol for el in structure.composition.elements)
        defects.extend(host_defects(host, structure, spec, config["defects"]))
    plan = DefectPlan(defects, host_elements)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # jobs may parse at once
        tmp.write_text(json.dumps(plan.to_json()))
        tmp.replace(cache)
    return plan
