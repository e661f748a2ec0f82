"""Element distribution (Fig. 3a): counts from a manifest and host structures."""

import csv
import json

import pandas as pd
import pytest

from workflow_scripts.analysis import element_distribution
from workflow_scripts.defects import MANIFEST_COLUMNS


def _host_json(path, species_roles):
    """A pymatgen Structure dict with a ``role`` site property, as the host stage writes."""
    from pymatgen.core import Lattice, Structure

    species = [element for element, _ in species_roles]
    coords = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    structure = Structure(
        Lattice.cubic(4.0),
        species,
        coords,
        site_properties={"role": [role for _, role in species_roles]},
    )
    path.write_text(json.dumps(structure.as_dict()))


def _manifest_row(host, defect, kind, role, species, replaced):
    return {
        "host": host,
        "defect": defect,
        "kind": kind,
        "role": role,
        "species": species,
        "replaced": replaced,
        "site_index": 0,
        "n_atoms": 10,
        "formula": "x",
        "source": "prototype",
        "magmom": 0.0,
    }


def _write_inputs(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.mkdir()
    _host_json(
        hosts / "SrTiO3.json", [("Sr", "A"), ("Ti", "B"), ("O", "X"), ("O", "X"), ("O", "X")]
    )
    _host_json(
        hosts / "CsPbBr3.json", [("Cs", "A"), ("Pb", "B"), ("Br", "X"), ("Br", "X"), ("Br", "X")]
    )
    rows = [
        _manifest_row("SrTiO3", "sub_Ba_on_A", "substitution", "A", "Ba", "Sr"),
        _manifest_row("SrTiO3", "sub_Zr_on_B", "substitution", "B", "Zr", "Ti"),
        _manifest_row("SrTiO3", "vac_A", "vacancy", "A", "Sr", "Sr"),
        _manifest_row("SrTiO3", "sub_N_on_X", "substitution", "X", "N", "O"),
        _manifest_row("CsPbBr3", "sub_Rb_on_A", "substitution", "A", "Rb", "Cs"),
        _manifest_row("CsPbBr3", "sub_Sn_on_B", "substitution", "B", "Sn", "Pb"),
        _manifest_row("CsPbBr3", "vac_B", "vacancy", "B", "Pb", "Pb"),
    ]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    settings = tmp_path / "analysis.json"
    settings.write_text(json.dumps({"run_label": "test"}))
    return manifest, hosts, settings


def test_counts_per_site_and_substituent(tmp_path):
    manifest, hosts, settings = _write_inputs(tmp_path)
    out = tmp_path / "figures" / "element_distribution.png"
    element_distribution.main(
        [
            "--manifest",
            str(manifest),
            "--hosts",
            *map(str, sorted(hosts.glob("*.json"))),
            "--settings",
            str(settings),
            "--dataset-name",
            "Perovs-Dopants",
            "--out",
            str(out),
        ]
    )
    assert out.stat().st_size > 10_000
    table = pd.read_csv(out.with_suffix(".csv"))
    rows = list(table.itertuples(index=False, name=None))
    assert rows == [
        # host elements, A then B then X, each by atomic number; 4 SrTiO3 and 3 CsPbBr3 rows
        ("host", "A", "Sr", 4),
        ("host", "A", "Cs", 3),
        ("host", "B", "Ti", 4),
        ("host", "B", "Pb", 3),
        ("host", "X", "O", 4),
        ("host", "X", "Br", 3),
        # substituents by atomic number, vacancies last
        ("substituent", "X", "N", 1),
        ("substituent", "A", "Rb", 1),
        ("substituent", "B", "Zr", 1),
        ("substituent", "B", "Sn", 1),
        ("substituent", "A", "Ba", 1),
        ("substituent", "A", "vacancy", 1),
        ("substituent", "B", "vacancy", 1),
    ]


def test_host_roles_are_read_from_the_structure(tmp_path):
    _, hosts, _ = _write_inputs(tmp_path)
    assert element_distribution.host_site_elements(hosts / "SrTiO3.json") == {
        "A": ["Sr"],
        "B": ["Ti"],
        "X": ["O"],
    }
    assert element_distribution.site_of("X2") == "X"
    with pytest.raises(ValueError, match="unknown site role"):
        element_distribution.site_of("Q")


def test_a_manifest_host_without_structure_is_an_error(tmp_path):
    manifest, hosts, _ = _write_inputs(tmp_path)
    table = pd.read_csv(manifest)
    only_one = {"SrTiO3": element_distribution.host_site_elements(hosts / "SrTiO3.json")}
    with pytest.raises(KeyError, match="CsPbBr3"):
        element_distribution.element_counts(table, only_one)
