"""Neutral formation energies, chemical-potential limits and the preferred site.

For a defect supercell with n_i atoms of element i added (n_i > 0) or removed (n_i < 0) from
the pristine supercell::

    E_f = E_defect - E_host - sum_i n_i mu_i

so a substitution X on the site of Y has E_f = E_defect - E_host - mu_X + mu_Y and a vacancy of
Y has E_f = E_defect - E_host + mu_Y (neutral defects: no charge or Fermi-level term). E_host
is the pristine supercell at exactly its defects' cell, k-points and cutoffs.

Chemical-potential limits (``limits``): ``element-rich`` sets every mu_i to its elemental
reference mu_i^0 (eV/atom of the relaxed reference phase). For each host element j,
``{j}-poor`` keeps the host in equilibrium with its other elements at their references:
mu_j = (E_host_fu - sum_{i != j} c_i mu_i^0) / c_j, with c the host's formula unit; then
mu_j - mu_j^0 = dH_f / c_j (below zero for a stable host). Substituents stay at their
references (dopant-rich) in every limit. The preferred site of a substituent in a host is the
site of its lowest E_f, per limit.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

ELEMENT_RICH = "element-rich"


def poor_limit(element: str) -> str:
    return f"{element}-poor"


@dataclass(frozen=True)
class Defect:
    host: str
    defect: str
    kind: str  # substitution | vacancy
    site: str  # A, B, X (role)
    species: str  # substituent, or the removed element of a vacancy
    replaced: str
    energy: float  # eV, final relaxed energy of the supercell

    def exchange(self) -> dict[str, int]:
        """n_i: atoms added (+1) and removed (-1) relative to the pristine supercell."""
        if self.kind == "vacancy":
            return {self.replaced: -1}
        return {self.species: +1, self.replaced: -1}

    @property
    def substituent(self) -> str:
        return "vacancy" if self.kind == "vacancy" else self.species


def formula_unit(symbols) -> tuple[dict[str, int], int]:
    """The reduced formula (element -> count) of a supercell and how many units it holds."""
    counts = Counter(symbols)
    units = math.gcd(*counts.values())
    return {element: n // units for element, n in sorted(counts.items())}, units


def chemical_potentials(
    host_fu: dict[str, int], host_fu_energy: float, references: dict[str, float]
) -> dict[str, dict[str, float]]:
    """limit -> element -> mu (eV/atom) for the host's elements; see the module docstring."""
    missing = sorted(set(host_fu) - set(references))
    if missing:
        raise KeyError(f"no elemental reference energy for {missing}")
    limits = {ELEMENT_RICH: {e: references[e] for e in host_fu}}
    for poor in host_fu:
        rest = sum(c * references[e] for e, c in host_fu.items() if e != poor)
        mu = {e: references[e] for e in host_fu}
        mu[poor] = (host_fu_energy - rest) / host_fu[poor]
        limits[poor_limit(poor)] = mu
    return limits


def formation_enthalpy_per_fu(
    host_fu: dict[str, int], host_fu_energy: float, references: dict[str, float]
) -> float:
    """dH_f (eV per formula unit) of the host from its elemental references."""
    return host_fu_energy - sum(c * references[e] for e, c in host_fu.items())


def formation_energy(
    defect: Defect, host_energy: float, mu: dict[str, float], references: dict[str, float]
) -> float:
    """E_f (eV) with ``mu`` for the host's elements and the references for the rest."""
    total = defect.energy - host_energy
    for element, n in defect.exchange().items():
        potential = mu.get(element, references.get(element))
        if potential is None:
            raise KeyError(f"{defect.host}/{defect.defect}: no chemical potential for {element}")
        total -= n * potential
    return total


def preferred_sites(rows: list[dict], value: str = "formation_energy_ev") -> dict[tuple, str]:
    """(host, substituent, limit) -> site of the lowest ``value`` among that substituent's
    sites; only substituents with at least two sites in a host (else there is no choice)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["kind"] == "substitution" and math.isfinite(row[value]):
            groups.setdefault((row["host"], row["substituent"], row["limit"]), []).append(row)
    return {
        key: min(group, key=lambda r: r[value])["site"]
        for key, group in groups.items()
        if len({r["site"] for r in group}) >= 2
    }


def formation_rows(
    defects: list[Defect],
    hosts: dict[str, tuple[float, list[str]]],
    references: dict[str, float],
) -> tuple[list[dict], list[dict]]:
    """Formation energies (one row per defect and limit) and the chemical potentials (one row
    per host, limit and element). ``hosts``: host -> (E of the pristine supercell, symbols)."""
    energy_rows, mu_rows = [], []
    limits_of = {}
    for host, (energy, symbols) in hosts.items():
        fu, units = formula_unit(symbols)
        limits = chemical_potentials(fu, energy / units, references)
        limits_of[host] = limits
        enthalpy = formation_enthalpy_per_fu(fu, energy / units, references)
        for limit, mu in limits.items():
            mu_rows += [
                {
                    "host": host,
                    "limit": limit,
                    "element": element,
                    "mu_ev": value,
                    "delta_mu_ev": value - references[element],
                    "formation_enthalpy_ev_per_fu": enthalpy,
                }
                for element, value in mu.items()
            ]
    for defect in defects:
        for limit, mu in limits_of[defect.host].items():
            energy_rows.append(
                {
                    "host": defect.host,
                    "defect": defect.defect,
                    "kind": defect.kind,
                    "site": defect.site,
                    "substituent": defect.substituent,
                    "replaced": defect.replaced,
                    "limit": limit,
                    "formation_energy_ev": formation_energy(
                        defect, hosts[defect.host][0], mu, references
                    ),
                }
            )
    return energy_rows, mu_rows
