"""Formation energies, chemical-potential limits and site preference from hand-made energies."""

import math

import pytest

from workflow_scripts.screening import formation

# A toy ABO3 host: 2 formula units in the supercell (10 atoms), elemental references in eV/atom.
REFERENCES = {"Sr": -1.5, "Ti": -7.0, "O": -4.5, "Ba": -1.8, "Pb": -3.5}
HOST_FU_ENERGY = -40.0  # eV per SrTiO3
HOST_ENERGY = 2 * HOST_FU_ENERGY
HOST_SYMBOLS = ["Sr", "Sr", "Ti", "Ti"] + ["O"] * 6
# dH_f = -40 - (-1.5 - 7.0 - 3 * 4.5) = -18.0 eV per formula unit


def test_formula_unit_and_enthalpy():
    fu, units = formation.formula_unit(HOST_SYMBOLS)
    assert (fu, units) == ({"O": 3, "Sr": 1, "Ti": 1}, 2)
    assert formation.formation_enthalpy_per_fu(fu, HOST_FU_ENERGY, REFERENCES) == pytest.approx(
        -18.0
    )


def test_limits_keep_the_host_in_equilibrium():
    fu, _ = formation.formula_unit(HOST_SYMBOLS)
    limits = formation.chemical_potentials(fu, HOST_FU_ENERGY, REFERENCES)
    assert set(limits) == {"element-rich", "O-poor", "Sr-poor", "Ti-poor"}
    assert limits["element-rich"] == {"O": -4.5, "Sr": -1.5, "Ti": -7.0}
    # Sr-poor: mu_Sr = -40 - (-7.0) - 3 * (-4.5) = -19.5 (dH_f below the reference)
    assert limits["Sr-poor"]["Sr"] == pytest.approx(-19.5)
    # O-poor: mu_O = (-40 + 1.5 + 7.0) / 3 = -10.5 = -4.5 + dH_f / 3
    assert limits["O-poor"]["O"] == pytest.approx(-10.5)
    for mu in limits.values():  # every limit: mu_Sr + mu_Ti + 3 mu_O >= E_fu, = in the poor ones
        assert mu["Sr"] + mu["Ti"] + 3 * mu["O"] >= HOST_FU_ENERGY - 1e-12
    with pytest.raises(KeyError, match="no elemental reference energy for \\['O'\\]"):
        formation.chemical_potentials(fu, HOST_FU_ENERGY, {"Sr": -1.5, "Ti": -7.0})


def test_substitution_and_vacancy_signs_in_every_limit():
    # Ba on Sr: one Ba added, one Sr removed; V_Sr: one Sr removed.
    ba = formation.Defect("SrTiO3", "sub_Ba_on_A", "substitution", "A", "Ba", "Sr", -80.7)
    vac = formation.Defect("SrTiO3", "vac_A", "vacancy", "A", "Sr", "Sr", -76.0)
    rows, potentials = formation.formation_rows(
        [ba, vac], {"SrTiO3": (HOST_ENERGY, HOST_SYMBOLS)}, REFERENCES
    )
    values = {(r["defect"], r["limit"]): r["formation_energy_ev"] for r in rows}
    # element-rich: E_f(Ba_Sr) = -80.7 + 80 - mu_Ba + mu_Sr = -0.7 + 1.8 - 1.5 = -0.4
    assert values["sub_Ba_on_A", "element-rich"] == pytest.approx(-0.4)
    # E_f(V_Sr) = -76 + 80 + mu_Sr = 4.0 - 1.5 = 2.5
    assert values["vac_A", "element-rich"] == pytest.approx(2.5)
    # Sr-poor: mu_Sr = -19.5: the vacancy becomes favourable, Ba_Sr too
    assert values["vac_A", "Sr-poor"] == pytest.approx(4.0 - 19.5)
    assert values["sub_Ba_on_A", "Sr-poor"] == pytest.approx(-0.7 + 1.8 - 19.5)
    # O-poor keeps Sr at its reference: same as element-rich for these defects
    assert values["vac_A", "O-poor"] == pytest.approx(2.5)
    assert {r["limit"] for r in potentials} == {
        "element-rich", "O-poor", "Sr-poor", "Ti-poor"
    }  # fmt: skip
    assert all(r["substituent"] in ("Ba", "vacancy") for r in rows)


def test_preferred_site_needs_a_choice():
    rows = [
        {"host": "H", "kind": "substitution", "substituent": "Pb", "site": "A", "limit": "x",
         "formation_energy_ev": 0.3},
        {"host": "H", "kind": "substitution", "substituent": "Pb", "site": "B", "limit": "x",
         "formation_energy_ev": 1.2},
        {"host": "H", "kind": "substitution", "substituent": "Ba", "site": "A", "limit": "x",
         "formation_energy_ev": -0.4},
        {"host": "H", "kind": "vacancy", "substituent": "vacancy", "site": "A", "limit": "x",
         "formation_energy_ev": 2.5},
        {"host": "H", "kind": "substitution", "substituent": "Zr", "site": "A", "limit": "x",
         "formation_energy_ev": math.nan},
    ]  # fmt: skip
    assert formation.preferred_sites(rows) == {("H", "Pb", "x"): "A"}
