"""A/B/X site roles of an ABX3 host.

X is the anion (negative oxidation state in pymatgen's most likely assignment; the most
electronegative element if none is found). Of the two cations, B sits in the X6 octahedron:
it has the shorter bonds to X (cubic: a/2 against a/sqrt(2) for A) and the lower X
coordination. Roles given in the config override the automatic assignment.
"""

from __future__ import annotations

from workflow_scripts.config import ConfigError

ROLES = ("A", "B", "X")


def _anion(composition) -> str:
    guesses = composition.oxi_state_guesses(max_sites=-1)
    if guesses:
        negative = [el for el, oxi in guesses[0].items() if oxi < 0]
        if len(negative) == 1:
            return negative[0]
    return max(composition.elements, key=lambda el: el.X).symbol


def x_coordination(structure, site_index: int, anion: str) -> tuple[float, int]:
    """Shortest distance from a site to the anion and the number of anions within 1.2x that."""
    neighbours = [
        n for n in structure.get_neighbors(structure[site_index], 6.0) if n.specie.symbol == anion
    ]
    if not neighbours:
        return float("inf"), 0
    shortest = min(n.nn_distance for n in neighbours)
    return shortest, sum(n.nn_distance <= 1.2 * shortest for n in neighbours)


def detect_roles(structure, host: str) -> dict[str, str]:
    """Element on each role, from oxidation states and coordination."""
    composition = structure.composition.element_composition
    elements = sorted(el.symbol for el in composition.elements)
    if len(elements) != 3:
        raise ConfigError(
            f"host {host!r}: expected three elements (ABX3), found {elements}; "
            "set hosts.<name>.site_roles if this is intended"
        )
    anion = _anion(composition)
    cations = [el for el in elements if el != anion]
    bond = {}
    for cation in cations:
        index = next(i for i, site in enumerate(structure) if site.specie.symbol == cation)
        bond[cation] = x_coordination(structure, index, anion)
    b_el = min(cations, key=lambda el: (bond[el][0], bond[el][1]))
    a_el = next(el for el in cations if el != b_el)
    return {"A": a_el, "B": b_el, "X": anion}


def assign_roles(structure, overrides: dict[str, str], host: str):
    """Copy of ``structure`` with a ``role`` site property; ``overrides`` win over detection."""
    present = {el.symbol for el in structure.composition.elements}
    for role, element in overrides.items():
        if element not in present:
            raise ConfigError(
                f"config key 'hosts.{host}.site_roles.{role}': element {element!r} is not in "
                f"host {host} ({', '.join(sorted(present))})"
            )
    roles = (
        dict(overrides) if len(overrides) == 3 else {**detect_roles(structure, host), **overrides}
    )
    if len(set(roles.values())) != 3:
        raise ConfigError(
            f"config key 'hosts.{host}.site_roles': roles {roles} give one element two roles"
        )
    role_of = {element: role for role, element in roles.items()}
    structure = structure.copy()
    structure.add_site_property("role", [role_of[site.specie.symbol] for site in structure])
    return structure


def role_elements(structure) -> dict[str, str]:
    """``{"A": "Sr", "B": "Ti", "X": "O"}`` from the ``role`` site property."""
    return {site.properties["role"]: site.specie.symbol for site in structure}
