"""Host cell relaxation: the cell and positions CP2K's CELL_OPT reached -> the host the
supercells are built from, with the lattice change recorded.

The relaxation itself is ``python -m workflow_scripts.cp2k.run cell-relax`` (one CP2K job per
host, :mod:`workflow_scripts.cp2k.run`). Its k-mesh samples the host cell as densely as
``dft.kpoints`` samples the supercell (:func:`equivalent_kpoints`), so the host lattice is
the one the defect relaxations would themselves find for the pristine crystal.

CLI::

    python -m workflow_scripts.host_cells relaxed --host-json hosts/SrTiO3.json \
        --workdir cp2k/host_cell/SrTiO3 \
        --summary cp2k/host_cell/SrTiO3/summary.json \
        --out-json hosts/relaxed/SrTiO3.json --out-cif hosts/relaxed/SrTiO3.cif
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from workflow_scripts.cli import setup_logging

log = logging.getLogger("workflow_scripts.host_cells")


class HostCellError(RuntimeError):
    """The host cell relaxation gives no usable cell."""


def equivalent_kpoints(supercell_kpoints, supercell) -> list[int] | None:
    """The host cell's Monkhorst-Pack mesh that samples it as densely as ``supercell_kpoints``
    (null = Γ) samples the ``supercell`` repetition of it; None when that is Γ."""
    mesh = [1, 1, 1] if supercell_kpoints is None else list(supercell_kpoints)
    host_mesh = [int(k) * int(n) for k, n in zip(mesh, supercell, strict=True)]
    return None if host_mesh == [1, 1, 1] else host_mesh


def lattice_change(initial, relaxed) -> dict:
    """Lattice lengths (Å), volumes (Å³) and their relative changes (%) of two pymatgen
    lattices."""
    a0, a1 = np.array(initial.abc), np.array(relaxed.abc)
    return {
        "initial_abc_angstrom": [round(float(x), 6) for x in a0],
        "relaxed_abc_angstrom": [round(float(x), 6) for x in a1],
        "abc_change_percent": [round(float(x), 4) for x in 100 * (a1 / a0 - 1)],
        "initial_volume_angstrom3": round(float(initial.volume), 6),
        "relaxed_volume_angstrom3": round(float(relaxed.volume), 6),
        "volume_change_percent": round(float(100 * (relaxed.volume / initial.volume - 1)), 4),
    }


def relaxed_host(host, workdir: Path | str, summary: dict):
    """``host`` (pymatgen Structure, site order as CP2K got it) with the cell and positions of
    the relaxation's last converged step; ``properties["cell_relaxation"]`` says how it ended.
    A relaxation that failed for good is an error naming its reason."""
    from pymatgen.core import Lattice, Structure

    # imported here: common.smk imports this module at DAG-parse time for equivalent_kpoints
    from workflow_scripts.cp2k.trajectory import stitch

    if summary.get("status") == "failed":
        raise HostCellError(
            f"{workdir}: the cell relaxation of host {host.properties.get('host')} failed "
            f"({summary.get('failure_kind')}: {summary.get('failure_reason')}); fix its cause, "
            "or set dft.host_cell.relax: false to build supercells of the unrelaxed cell"
        )
    stitched = stitch(workdir)
    if not stitched.frames:
        raise HostCellError(f"{workdir}: no converged step in the cell relaxation")
    last = stitched.frames[-1]
    symbols = [site.specie.symbol for site in host]
    if list(stitched.symbols) != symbols:
        raise HostCellError(
            f"{workdir}: CP2K's atoms {stitched.symbols} are not the host's {symbols}"
        )
    cell = last.cell if last.cell is not None else stitched.cell
    lattice = Lattice(cell)
    relaxed = Structure(
        lattice,
        host.species,
        last.positions,
        coords_are_cartesian=True,
        site_properties=host.site_properties,
        properties=dict(host.properties),
    )
    # CP2K's sign: positive = the cell pushes outwards (it printed "Internal Pressure" so)
    pressure_gpa = float(np.trace(last.stress)) / 3 if last.stress is not None else None
    relaxed.properties["cell_relaxation"] = {
        "status": summary.get("status"),  # converged | max_iter
        "n_steps": last.step,
        "final_pressure_gpa": None if pressure_gpa is None else round(pressure_gpa, 5),
        "final_energy_ev_per_atom": round(float(summary["final_energy_eV"]) / len(host), 6),
        "settings_hash": summary.get("settings_hash"),
        "cp2k_version": summary.get("cp2k_version"),
        **lattice_change(host.lattice, lattice),
    }
    return relaxed


def main(argv=None) -> int:
    from workflow_scripts.structures import read_structure, write_structure

    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.host_cells")
    sub = parser.add_subparsers(dest="command", required=True)
    relaxed = sub.add_parser("relaxed", help="the relaxed host from its CELL_OPT folder")
    relaxed.add_argument("--host-json", required=True, help="the host as built")
    relaxed.add_argument("--workdir", required=True, help="the cell relaxation's folder")
    relaxed.add_argument("--summary", required=True, help="its summary.json")
    relaxed.add_argument("--out-json", required=True)
    relaxed.add_argument("--out-cif", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    host = read_structure(Path(args.host_json))
    summary = json.loads(Path(args.summary).read_text())
    try:
        structure = relaxed_host(host, args.workdir, summary)
    except HostCellError as error:
        log.error("%s", error)
        return 1
    write_structure(structure, Path(args.out_json), Path(args.out_cif))
    change = structure.properties["cell_relaxation"]
    log.info(
        "host %s: a %s -> %s Å (%s %%), volume %+.2f %%, %s after %d steps",
        host.properties.get("host"),
        change["initial_abc_angstrom"],
        change["relaxed_abc_angstrom"],
        change["abc_change_percent"],
        change["volume_change_percent"],
        change["status"],
        change["n_steps"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
