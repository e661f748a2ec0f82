"""The DFT side of the screen: every structure it needs, and the DFT formation energies.

Reads the CP2K relaxations of the defects, of each host's pristine supercell and of the
elemental references, and writes

* ``--out-structures`` (extxyz): per entry its initial and final geometry (info ``screen_id``
  ``defect:{host}/{defect}``, ``host:{host}`` or ``reference:{element}``; ``geometry`` initial |
  final; ``relax_cell`` for solid references; the DFT energy ``REF_energy`` on final frames),
  only for entries whose relaxation converged. The model jobs relax and evaluate these.
* ``--out-formation`` (CSV): E_f per defect and chemical-potential limit
  (:mod:`.formation`), ``--out-potentials`` the limits, ``--out-entries`` every entry with its
  status, reason when not used, DFT wall time and force evaluations.

Only converged relaxations count: an entry whose CP2K job ended ``max_iter`` or ``failed`` is
listed with its reason and left out; a defect whose host or any needed reference is missing is
listed likewise.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from workflow_scripts.analysis.common import parse_pairs
from workflow_scripts.screening import formation

CONVERGED = "converged"
# A reference whose positions symmetry fixes (at a fixed cell) is a single point: "done".
USABLE = (CONVERGED, "done")
ENTRY_COLUMNS = [
    "screen_id", "kind", "host", "defect", "element", "status", "used", "reason",
    "energy_ev", "n_atoms", "dft_wall_s", "dft_force_evaluations", "held_out",
]  # fmt: skip
FORMATION_COLUMNS = [
    "host", "defect", "kind", "site", "substituent", "replaced", "limit", "held_out",
    "formation_energy_ev",
]  # fmt: skip
POTENTIAL_COLUMNS = [
    "host", "limit", "element", "mu_ev", "delta_mu_ev", "formation_enthalpy_ev_per_fu"
]  # fmt: skip


def summary_paths(values: list[str], flag: str) -> dict[str, Path]:
    """``KEY=PATH`` arguments of a repeated flag as paths."""
    return {key: Path(path) for key, path in parse_pairs(values, flag).items()}


def relaxation(summary_path: Path):
    """(summary, initial frame, final frame) of one CP2K job (frames None when not usable)."""
    from workflow_scripts.cp2k.labelled_frames import to_atoms
    from workflow_scripts.cp2k.trajectory import stitch

    summary = json.loads(summary_path.read_text())
    if summary.get("status") not in USABLE:
        return summary, None, None
    stitched = stitch(summary_path.parent)
    if not stitched.frames:
        return summary, None, None
    first, last = stitched.frames[0], stitched.frames[-1]
    initial = to_atoms(first, stitched.symbols, stitched.cell, {})
    final = to_atoms(last, stitched.symbols, stitched.cell, {})
    return summary, initial, final


def _entry(screen_id, kind, summary, final, **keys) -> dict:
    status = summary.get("status", "missing")
    reason = "" if status in USABLE else f"CP2K job ended {status}"
    if status == "failed":
        reason += f" ({summary.get('failure_kind')}: {summary.get('failure_reason')})"
    return {
        "screen_id": screen_id,
        "kind": kind,
        "host": keys.get("host", ""),
        "defect": keys.get("defect", ""),
        "element": keys.get("element", ""),
        "status": status,
        "used": final is not None,
        "reason": reason,
        "energy_ev": final.info["REF_energy"] if final is not None else float("nan"),
        "n_atoms": len(final) if final is not None else 0,
        "dft_wall_s": summary.get("wall_s", float("nan")),
        "dft_force_evaluations": summary.get("n_force_evaluations", 0),
        "held_out": keys.get("held_out", False),
    }


def collect(manifest: Path, defects, hosts, references, held_out: set[str]):
    """Entries, structure frames and formation-energy inputs from the CP2K summaries."""
    rows = {(r["host"], r["defect"]): r for r in csv.DictReader(manifest.open())}
    entries, frames, inputs = [], [], {"defects": [], "hosts": {}, "references": {}}

    def add(screen_id, initial, final, relax_cell=False, **info):
        for geometry, atoms in (("initial", initial), ("final", final)):
            atoms.info.update(screen_id=screen_id, geometry=geometry, relax_cell=relax_cell)
            atoms.info.update(info)
            if geometry == "initial":
                atoms.info.pop("REF_energy", None)
                atoms.arrays.pop("REF_forces", None)
                atoms.info.pop("REF_stress", None)
            frames.append(atoms)

    for element, path in sorted(references.items()):
        summary, initial, final = relaxation(path)
        entries.append(_entry(f"reference:{element}", "reference", summary, final, element=element))
        if final is not None:
            add(f"reference:{element}", initial, final, summary.get("task") == "cell_relax")
            inputs["references"][element] = final.info["REF_energy"] / len(final)
    for host, path in sorted(hosts.items()):
        summary, initial, final = relaxation(path)
        entries.append(_entry(f"host:{host}", "host", summary, final, host=host))
        if final is not None:
            add(f"host:{host}", initial, final)
            inputs["hosts"][host] = (final.info["REF_energy"], final.get_chemical_symbols())
    for key, path in sorted(defects.items()):
        host, _, name = key.partition("/")
        row = rows[(host, name)]
        out = row["kind"] != "vacancy" and row["species"] in held_out
        summary, initial, final = relaxation(path)
        screen_id = f"defect:{host}/{name}"
        entry = _entry(screen_id, "defect", summary, final, host=host, defect=name, held_out=out)
        entries.append(entry)
        if final is None:
            continue
        needed = {row["species"], row["replaced"]} - set(inputs["references"])
        if host not in inputs["hosts"] or needed:
            missing = [f"host {host}"] if host not in inputs["hosts"] else []
            entry.update(used=False, reason="no " + ", ".join(missing + sorted(needed)))
            continue
        add(screen_id, initial, final, host=host, defect=name, held_out=out)
        inputs["defects"].append(
            formation.Defect(
                host, name, row["kind"], row["role"], row["species"], row["replaced"],
                final.info["REF_energy"],
            )
        )  # fmt: skip
    return entries, frames, inputs


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.screening.dft_set")
    parser.add_argument("--manifest", required=True, type=Path, help="structures manifest.csv")
    parser.add_argument("--defect", action="append", default=[], help="HOST/DEFECT=summary")
    parser.add_argument("--host", action="append", default=[], help="HOST=pristine summary")
    parser.add_argument("--reference", action="append", default=[], help="ELEMENT=summary")
    parser.add_argument("--held-out", nargs="*", default=[], help="held-out substituents")
    parser.add_argument("--out-structures", required=True, type=Path)
    parser.add_argument("--out-formation", required=True, type=Path)
    parser.add_argument("--out-potentials", required=True, type=Path)
    parser.add_argument("--out-entries", required=True, type=Path)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from ase.io import write

    args = parse_args(argv)
    held_out = set(args.held_out)
    entries, frames, inputs = collect(
        args.manifest,
        summary_paths(args.defect, "--defect"),
        summary_paths(args.host, "--host"),
        summary_paths(args.reference, "--reference"),
        held_out,
    )
    energies, potentials = formation.formation_rows(
        inputs["defects"], inputs["hosts"], inputs["references"]
    )
    for row in energies:
        row["held_out"] = row["substituent"] in held_out
    args.out_structures.parent.mkdir(parents=True, exist_ok=True)
    write(args.out_structures, frames, format="extxyz")
    write_csv(args.out_formation, energies, FORMATION_COLUMNS)
    write_csv(args.out_potentials, potentials, POTENTIAL_COLUMNS)
    write_csv(args.out_entries, entries, ENTRY_COLUMNS)
    unused = [e for e in entries if not e["used"]]
    print(f"{len(entries)} entries, {len(unused)} not used; {len(energies)} formation energies")
    for entry in unused:
        print(f"  not used: {entry['screen_id']}: {entry['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
