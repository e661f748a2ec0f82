"""Hosts, site roles, defect supercells and the manifest (real pymatgen structures)."""

import csv
import json
from pathlib import Path

import pytest

from workflow_scripts import structures
from workflow_scripts.config import REPO_ROOT, ConfigError, load_config
from workflow_scripts.defects import build_defect_structure, host_defects, plan_defects
from workflow_scripts.hosts import build_host, prototype_structure
from workflow_scripts.materials_project import fetch_hosts, search_criteria
from workflow_scripts.sites import detect_roles, role_elements

CATIO3 = {"source": "file", "path": "resources/hosts/CaTiO3_Pnma.cif"}
DEFECTS = {
    "supercell": [2, 2, 2],
    "substituents": {"A": ["Ba"], "B": ["Fe", "Ti"]},
    "anion_substituents": {"O": ["N"]},
    "vacancies": ["A", "B"],
}


@pytest.fixture(scope="module")
def srtio3():
    return build_host("SrTiO3", {"source": "prototype"}, REPO_ROOT)


@pytest.fixture(scope="module")
def catio3():
    return build_host("CaTiO3", CATIO3, REPO_ROOT)


def test_prototype_roles_are_detected_not_assumed():
    for formula, expected in [("SrTiO3", ("Sr", "Ti", "O")), ("CsPbI3", ("Cs", "Pb", "I"))]:
        roles = detect_roles(prototype_structure(formula), formula)
        assert (roles["A"], roles["B"], roles["X"]) == expected


def test_orthorhombic_catio3_has_one_a_one_b_two_x_sites(catio3):
    assert role_elements(catio3) == {"A": "Ca", "B": "Ti", "X": "O"}  # found automatically
    names = [d.name for d in host_defects("CaTiO3", catio3, CATIO3, DEFECTS)]
    assert names == [
        "sub_Ba_on_A",
        "vac_A",
        "sub_Fe_on_B",
        "vac_B",
        "sub_N_on_X1",
        "sub_N_on_X2",
    ]  # Ti on B skipped: it is the host's own atom
    x_defects = [d for d in host_defects("CaTiO3", catio3, CATIO3, DEFECTS) if d.role == "X"]
    sites = [catio3[d.site_index] for d in x_defects]
    assert all(site.specie.symbol == "O" for site in sites)
    # The two X sites are the 4c (apical) and 8d (equatorial) oxygens of Pnma.
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    wyckoffs = SpacegroupAnalyzer(catio3).get_symmetry_dataset().wyckoffs
    assert sorted(wyckoffs[d.site_index] for d in x_defects) == ["c", "d"]


@pytest.mark.parametrize(
    ("name", "formula", "n_atoms", "magmom"),
    [
        ("sub_Ba_on_A", "Ba1 Sr7 Ti8 O24", 40, 0.0),
        ("sub_Fe_on_B", "Sr8 Ti7 Fe1 O24", 40, 4.0),
        ("vac_A", "Sr7 Ti8 O24", 39, 0.0),
        ("vac_B", "Sr8 Ti7 O24", 39, 0.0),
        ("sub_N_on_X", "Sr8 Ti8 N1 O23", 40, 1.0),
    ],
)
def test_one_defect_per_supercell(srtio3, name, formula, n_atoms, magmom):
    spec = next(d for d in host_defects("SrTiO3", srtio3, {}, DEFECTS) if d.name == name)
    structure = build_defect_structure(srtio3, spec, [2, 2, 2], "prototype")
    assert len(structure) == n_atoms
    assert structure.composition.formula == formula
    assert max(structure.site_properties["magmom"]) == magmom
    assert sum(m > 0 for m in structure.site_properties["magmom"]) == (magmom > 0)
    host_counts = (srtio3 * [2, 2, 2]).composition
    assert structure.composition[spec.replaced] == host_counts[spec.replaced] - 1
    if spec.kind == "substitution":
        assert structure.composition[spec.species] == 1
    assert structure.properties["defect"] == name


def test_cli_writes_structures_and_manifest(tmp_path, srtio3):
    spec = {"source": "prototype"}
    host_json = tmp_path / "SrTiO3.json"
    structures.main(
        ["host", "--name", "SrTiO3", "--spec", json.dumps(spec), "--base-dir", str(REPO_ROOT),
         "--out-json", str(host_json), "--out-cif", str(tmp_path / "SrTiO3.cif")]
    )  # fmt: skip
    out = []
    for defect in host_defects("SrTiO3", srtio3, spec, DEFECTS)[:3]:
        target = tmp_path / f"{defect.name}.json"
        structures.main(
            ["defect", "--host-json", str(host_json), "--defect", json.dumps(defect.__dict__),
             "--supercell", "2", "1", "1", "--out-json", str(target),
             "--out-cif", str(tmp_path / f"{defect.name}.cif")]
        )  # fmt: skip
        out.append(str(target))
    structures.main(["manifest", "--out", str(tmp_path / "manifest.csv"), *out])
    with open(tmp_path / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["defect"], r["formula"], r["n_atoms"]) for r in rows] == [
        ("sub_Ba_on_A", "Ba1Sr1Ti2O6", "10"),
        ("vac_A", "Sr1Ti2O6", "9"),
        ("sub_Fe_on_B", "Sr2Ti1Fe1O6", "10"),
    ]
    assert rows[2]["role"] == "B" and rows[2]["replaced"] == "Ti" and rows[2]["magmom"] == "4.0"


def test_study_config_plans_over_400_defects():
    config = load_config(REPO_ROOT / "config.yaml")
    plan = plan_defects(config, REPO_ROOT)
    pairs = {(d.host, d.name) for d in plan.defects}
    assert len(pairs) == len(plan.defects) >= 400
    assert ("SrTiO3", "sub_Fe_on_B") in pairs and ("SrTiO3", "sub_Ti_on_B") not in pairs
    assert ("CaTiO3", "sub_N_on_X2") in pairs and ("CsPbI3", "sub_N_on_X") not in pairs


class FakeRester:
    """Replays a recorded mp-api summary-search response and keeps the query it was sent."""

    def __init__(self, docs):
        self.docs, self.criteria = docs, None
        self.materials = self
        self.summary = self

    def search(self, **criteria):
        self.criteria = criteria
        return self.docs


def test_materials_project_hosts_from_recorded_response(tmp_path):
    recorded = json.loads(
        (Path(__file__).parent / "data/mp_summary_abc3_response.json").read_text()
    )
    rester = FakeRester(recorded["docs"])
    settings = {"band_gap": [1.0, 3.0], "energy_above_hull_max": 0.0, "max_hosts": 10}
    names = fetch_hosts(settings, tmp_path, rester=rester)
    assert rester.criteria == search_criteria(settings)
    assert rester.criteria["band_gap"] == (1.0, 3.0) and rester.criteria["formula"] == "ABC3"
    # NaNO3 is ABX3 but its "B" (N) is trigonal, not octahedral: not a perovskite host.
    assert names == ["SrTiO3_mp-5229", "CsPbBr3_mp-600089"]
    host = build_host("SrTiO3_mp-5229", {"source": "file", "path": "SrTiO3_mp-5229.cif"}, tmp_path)
    assert role_elements(host) == {"A": "Sr", "B": "Ti", "X": "O"}


def test_materials_project_without_key_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    settings = {"band_gap": [1.0, 3.0], "energy_above_hull_max": 0.0, "max_hosts": 10}
    with pytest.raises(ConfigError, match="MP_API_KEY"):
        fetch_hosts(settings, tmp_path)


def test_host_files_and_host_manifest_carry_the_recorded_band_gaps(tmp_path):
    """PBE gap, its source and the lattice constant's source reach results/hosts/{host}.json;
    results/hosts/manifest.csv marks each host against the study's gap window."""
    from workflow_scripts.hosts import HOST_FACTS, NO_SOURCE

    hosts = {
        "CsSnI3": {"source": "prototype"},
        "KNbO3": {"source": "prototype"},
        "SrTiO3": {"source": "prototype"},
        "CaTiO3": {**CATIO3, "site_roles": {"A": "Ca", "B": "Ti", "X": "O"}},
    }
    jsons = []
    for name, spec in hosts.items():
        target = tmp_path / f"{name}.json"
        structures.main(
            ["host", "--name", name, "--spec", json.dumps(spec), "--base-dir", str(REPO_ROOT),
             "--out-json", str(target), "--out-cif", str(tmp_path / f"{name}.cif")]
        )  # fmt: skip
        jsons.append(str(target))
    props = json.loads((tmp_path / "CsSnI3.json").read_text())["properties"]
    assert props["space_group"] == "Pm-3m"
    assert props["pbe_band_gap_ev"] == 0.45
    assert "mp-614013" in props["pbe_band_gap_source"]
    catio3_props = json.loads((tmp_path / "CaTiO3.json").read_text())["properties"]
    assert catio3_props["space_group"] == "Pnma"
    assert catio3_props["pbe_band_gap_ev"] is None
    assert catio3_props["pbe_band_gap_source"] == NO_SOURCE
    srtio3_props = json.loads((tmp_path / "SrTiO3.json").read_text())["properties"]
    assert "sh5025" in srtio3_props["lattice_constant_source"]

    out = tmp_path / "manifest.csv"
    structures.main(["host-manifest", "--gap-window", "1.0", "3.0", "--out", str(out), *jsons])
    with open(out) as handle:
        rows = {row["host"]: row for row in csv.DictReader(handle)}
    assert rows["CsSnI3"]["in_gap_window"] == "false"
    assert rows["KNbO3"]["in_gap_window"] == "true"
    assert rows["KNbO3"]["pbe_band_gap_ev"] == "1.426"
    assert rows["SrTiO3"]["in_gap_window"] == "unknown"  # no Pm-3m value with a source
    assert rows["CaTiO3"]["space_group"] == "Pnma" and rows["CaTiO3"]["n_sites"] == "20"
    assert {row["gap_window_ev"] for row in rows.values()} == {"1-3"}
    # every recorded gap has a source, every missing one says so
    for facts in HOST_FACTS:
        assert facts.pbe_band_gap_source
        if facts.pbe_band_gap is None:
            assert NO_SOURCE in facts.pbe_band_gap_source, facts.formula


def test_every_study_host_has_recorded_facts():
    """Each host of config.yaml and each built-in prototype is in the host-facts table."""
    from workflow_scripts.hosts import PROTOTYPE_LATTICE_CONSTANTS, host_facts

    config = load_config(REPO_ROOT / "config.yaml")
    for name, spec in config["hosts"].items():
        space_group = "Pm-3m" if spec["source"] == "prototype" else "Pnma"
        assert host_facts(name, space_group) is not None, name
    for formula in PROTOTYPE_LATTICE_CONSTANTS:
        assert host_facts(formula, "Pm-3m").lattice_constant == PROTOTYPE_LATTICE_CONSTANTS[formula]
