"""Structure stage CLI: host cells, defect supercells, the manifest, Materials Project hosts.

    python -m workflow_scripts.structures host --name SrTiO3 --spec '{"source": "prototype"}' \
        --out-json hosts/SrTiO3.json --out-cif hosts/SrTiO3.cif
    python -m workflow_scripts.structures defect --host-json hosts/SrTiO3.json \
        --defect '{...DefectSpec...}' --supercell 2 2 2 --out-json X.json --out-cif X.cif
    python -m workflow_scripts.structures manifest --out manifest.csv STRUCTURE.json ...
    python -m workflow_scripts.structures host-manifest --gap-window 1 3 --out h.csv HOST.json
        (HOST.json: the relaxed host, paths.RELAXED_HOST, when the host cells are relaxed)
    python -m workflow_scripts.structures materials-project --settings mp.json --out-folder DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from workflow_scripts.cli import run_cli
from workflow_scripts.defects import DefectSpec, build_defect_structure, write_manifest
from workflow_scripts.hosts import build_host, host_properties, in_gap_window

log = logging.getLogger(__name__)


def write_structure(structure, out_json: Path, out_cif: Path) -> None:
    """The structure as pymatgen JSON (authoritative, with site properties) and CIF (viewing)."""
    from pymatgen.io.cif import CifWriter

    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(structure.as_dict(), indent=1))
    CifWriter(structure).write_file(str(out_cif))


def read_structure(path: Path):
    from pymatgen.core import Structure

    return Structure.from_dict(json.loads(Path(path).read_text()))


def make_host(args) -> None:
    spec = json.loads(args.spec)
    if args.structure_files:
        spec["path"] = str(Path(args.structure_files[0]).resolve())
    structure = build_host(args.name, spec, Path(args.base_dir))
    # PBE band gap, space group and lattice-constant source (workflow_scripts.hosts.HOST_FACTS)
    structure.properties = {
        "host": args.name,
        "source": spec["source"],
        **host_properties(structure),
    }
    write_structure(structure, Path(args.out_json), Path(args.out_cif))
    log.info(
        "host %s: %s, %d sites", args.name, structure.composition.reduced_formula, len(structure)
    )


def make_defect(args) -> None:
    host = read_structure(Path(args.host_json))
    spec = DefectSpec(**json.loads(args.defect))
    structure = build_defect_structure(host, spec, args.supercell, host.properties["source"])
    write_structure(structure, Path(args.out_json), Path(args.out_cif))
    log.info("%s/%s: %s, %d atoms", spec.host, spec.name, structure.formula, len(structure))


def make_pristine(args) -> None:
    """The host supercell without a defect, built exactly as the defect supercells are (same
    repetition of the same host cell): E_host of the formation energies."""
    import numpy as np

    host = read_structure(Path(args.host_json))
    structure = host.copy()
    structure.make_supercell(np.diag(args.supercell))
    structure.add_site_property("magmom", [0.0] * len(structure))
    structure.properties = {
        "host": host.properties["host"],
        "defect": "pristine",
        "kind": "pristine",
        "source": host.properties["source"],
    }
    write_structure(structure, Path(args.out_json), Path(args.out_cif))
    log.info("%s/pristine: %s, %d atoms", args.host_name, structure.formula, len(structure))


def make_manifest(args) -> None:
    write_manifest([Path(p) for p in args.structures], Path(args.out))
    log.info("manifest of %d defect structures: %s", len(args.structures), args.out)


HOST_MANIFEST_COLUMNS = (
    "host",
    "formula",
    "space_group",
    "source",
    "n_sites",
    "lattice_a_angstrom",
    "lattice_constant_source",
    "cell_relaxation",
    "initial_lattice_a_angstrom",
    "lattice_a_change_percent",
    "volume_change_percent",
    "final_pressure_gpa",
    "pbe_band_gap_ev",
    "pbe_band_gap_source",
    "gap_window_ev",
    "in_gap_window",
)


def host_manifest_rows(host_jsons: list[Path], gap_window: tuple[float, float]) -> list[dict]:
    """One row per host: its cell, PBE band gap with source, and whether the gap is in the
    study's window (``true``/``false``, ``unknown`` without a recorded gap). The facts are
    looked up again here, so a corrected table reaches the manifest without redoing hosts."""
    rows = []
    for path in host_jsons:
        structure = read_structure(path)
        facts = host_properties(structure)
        inside = in_gap_window(facts["pbe_band_gap_ev"], gap_window)
        relaxation = structure.properties.get("cell_relaxation") or {}
        rows.append(
            {
                "host": structure.properties.get("host", Path(path).stem),
                "formula": facts["formula"],
                "space_group": facts["space_group"],
                "source": structure.properties.get("source", ""),
                "n_sites": len(structure),
                "lattice_a_angstrom": round(structure.lattice.a, 4),
                "lattice_constant_source": facts["lattice_constant_source"],
                # a = the cell the supercells repeat; the CP2K cell relaxation's change of it
                "cell_relaxation": relaxation.get("status", "not relaxed"),
                "initial_lattice_a_angstrom": relaxation.get("initial_abc_angstrom", [""])[0],
                "lattice_a_change_percent": relaxation.get("abc_change_percent", [""])[0],
                "volume_change_percent": relaxation.get("volume_change_percent", ""),
                "final_pressure_gpa": relaxation.get("final_pressure_gpa", ""),
                "pbe_band_gap_ev": ""
                if facts["pbe_band_gap_ev"] is None
                else facts["pbe_band_gap_ev"],
                "pbe_band_gap_source": facts["pbe_band_gap_source"],
                "gap_window_ev": f"{gap_window[0]:g}-{gap_window[1]:g}",
                "in_gap_window": "unknown" if inside is None else str(inside).lower(),
            }
        )
    return rows


def make_host_manifest(args) -> None:
    rows = host_manifest_rows([Path(p) for p in args.hosts], tuple(args.gap_window))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HOST_MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    outside = [row["host"] for row in rows if row["in_gap_window"] == "false"]
    log.info("host manifest of %d hosts: %s; outside the gap window: %s", len(rows), out, outside)


def fetch_materials_project(args) -> None:
    from workflow_scripts.materials_project import fetch_hosts

    settings = json.loads(Path(args.settings).read_text())
    fetch_hosts(settings, Path(args.out_folder))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    host = sub.add_parser("host", help="one host cell with A/B/X roles")
    host.add_argument("--name", required=True)
    host.add_argument("--spec", required=True, help="the host's config entry as JSON")
    host.add_argument("--base-dir", default=".", help="structure paths are relative to this")
    host.add_argument("--structure-files", nargs="*", default=[], help="the host's file, if any")
    host.add_argument("--out-json", required=True)
    host.add_argument("--out-cif", required=True)
    host.set_defaults(func=make_host)
    defect = sub.add_parser("defect", help="one defect supercell")
    defect.add_argument("--host-json", required=True)
    defect.add_argument("--defect", required=True, help="the DefectSpec as JSON")
    defect.add_argument("--supercell", type=int, nargs=3, required=True)
    defect.add_argument("--out-json", required=True)
    defect.add_argument("--out-cif", required=True)
    defect.set_defaults(func=make_defect)
    pristine = sub.add_parser("pristine", help="the host supercell without a defect")
    pristine.add_argument("--host-json", required=True)
    pristine.add_argument("--host-name", required=True)
    pristine.add_argument("--supercell", type=int, nargs=3, required=True)
    pristine.add_argument("--out-json", required=True)
    pristine.add_argument("--out-cif", required=True)
    pristine.set_defaults(func=make_pristine)

    manifest = sub.add_parser("manifest", help="CSV manifest of defect structures")
    manifest.add_argument("--out", required=True)
    manifest.add_argument("structures", nargs="+")
    manifest.set_defaults(func=make_manifest)
    hosts = sub.add_parser("host-manifest", help="CSV of the hosts with PBE band gaps")
    hosts.add_argument("--out", required=True)
    hosts.add_argument("--gap-window", type=float, nargs=2, required=True, metavar=("LOW", "HIGH"))
    hosts.add_argument("hosts", nargs="+", help="the hosts' structure JSON files")
    hosts.set_defaults(func=make_host_manifest)
    mp = sub.add_parser("materials-project", help="query host perovskites (needs MP_API_KEY)")
    mp.add_argument("--settings", required=True, help="JSON of the materials_project section")
    mp.add_argument("--out-folder", required=True)
    mp.set_defaults(func=fetch_materials_project)
    return run_cli(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
