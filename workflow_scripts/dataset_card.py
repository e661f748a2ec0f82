"""The Perovs-Dopants data set as one self-contained folder: splits, E0s, frame table, card.

Writes the artefact folder (named after the data set) with byte copies of ``train.extxyz``,
``valid.extxyz``, ``test.extxyz`` and ``isolated_atoms.extxyz``; ``frames.csv`` (one row per
frame of each of those files, from the frames' own info: a value a frame lacks is left empty);
``README.md``
(the data set card: contents, units and keys, DFT settings, how to load it, licence,
citation); and ``SHA256SUMS`` (``sha256sum -c SHA256SUMS`` in the folder checks the rest).
Nothing depends on the clock or on the order of the file system: a rerun on the same inputs
writes identical bytes. A missing input, or a frame without ``REF_energy`` or ``REF_forces``,
is an error naming the file (and the frame).

CLI::

    python -m workflow_scripts.dataset_card --train dataset/train.extxyz \
        --valid dataset/valid.extxyz --test dataset/test.extxyz \
        --isolated-atoms dataset/isolated_atoms.extxyz \
        --dft-settings dft.json --dataset-settings dataset.json \
        --name Perovs-Dopants --out-dir dataset/Perovs-Dopants
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from workflow_scripts import paths
from workflow_scripts.cli import setup_logging
from workflow_scripts.files import sha256_file

log = logging.getLogger("workflow_scripts.dataset_card")

FILES = ("train", "valid", "test", "held_out", "isolated_atoms")  # extxyz files, card order
OPTIONAL_FILES = ("held_out",)  # held-out dopants (dataset.split.held_out_substituents)
ISOLATED_ATOM = "IsolatedAtom"
COLUMNS = (
    "split", "index", "config_type", "host", "defect", "site", "substituent", "step",
    "relaxation_status", "n_atoms", "formula", "energy_eV", "energy_per_atom_eV",
    "max_force_eV_per_A", "scf_converged", "cp2k_version", "settings_hash", "source",
)  # fmt: skip
INFO_COLUMNS = ("config_type", "host", "defect", "site", "substituent", "relaxation_status")
INFO_COLUMNS += ("cp2k_version", "settings_hash")


class DatasetCardError(ValueError):
    """An input the artefact cannot be built from (the message names the file)."""


def read_frames(path: Path) -> list:
    """Every frame of one extxyz file; each must carry REF_energy and REF_forces."""
    from ase.io import read

    frames = read(path, index=":", format="extxyz") if path.stat().st_size else []
    for index, atoms in enumerate(frames):
        missing = [key for key in ("REF_energy",) if key not in atoms.info]
        missing += [key for key in ("REF_forces",) if key not in atoms.arrays]
        if missing:
            raise DatasetCardError(f"{path}: frame {index} has no {' or '.join(missing)}")
    return frames


def _number(value) -> str:
    return repr(float(value))


def calculation_folder(summary_template: str, **wildcards) -> str:
    """The folder of a CP2K job's summary (``<name>`` where a wildcard is left open)."""
    folder = str(Path(summary_template).parent)
    for key in ("host", "defect", "element"):
        folder = folder.replace("{" + key + "}", str(wildcards.get(key, f"<{key}>")))
    return folder


def frame_source(info: dict, atoms) -> str:
    """The CP2K calculation folder a frame came from, by the workflow's layout; empty when
    the frame's info does not say (never guessed)."""
    if info.get("config_type") == ISOLATED_ATOM and len(atoms) == 1:
        return calculation_folder(paths.CP2K_ATOM, element=atoms.get_chemical_symbols()[0])
    if info.get("host") and info.get("defect"):
        return calculation_folder(paths.CP2K_RELAX, host=info["host"], defect=info["defect"])
    return ""


def frame_row(split: str, index: int, atoms) -> dict:
    """One frames.csv row: what the frame's info and arrays hold."""
    info = atoms.info
    n_atoms = len(atoms)
    energy = float(info["REF_energy"])
    forces = np.asarray(atoms.arrays["REF_forces"], dtype=float).reshape(n_atoms, 3)
    row = {key: str(info.get(key, "")) for key in INFO_COLUMNS}
    row.update(
        split=split,
        index=str(index),
        step=str(int(info["step"])) if "step" in info else "",
        n_atoms=str(n_atoms),
        formula=atoms.get_chemical_formula(),
        energy_eV=_number(energy),
        energy_per_atom_eV=_number(energy / n_atoms),
        max_force_eV_per_A=_number(np.linalg.norm(forces, axis=1).max()) if n_atoms else "",
        scf_converged=str(bool(info["scf_converged"])) if "scf_converged" in info else "",
        source=frame_source(info, atoms),
    )
    return row


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_checksums(folder: Path, names: list[str]) -> None:
    """``SHA256SUMS`` in sha256sum's format (two spaces, text mode), sorted by file name."""
    lines = [f"{sha256_file(folder / name)}  {name}\n" for name in sorted(names)]
    (folder / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


# --- the card ------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _defect_kind(row: dict) -> str:
    if not row["substituent"]:
        return "unknown"
    what = "vacancy" if row["substituent"] == "vacancy" else "substitution"
    return f"{what} on {row['site'] or '?'}"


E0_NOTE = (
    "`train.extxyz` starts with the isolated atoms (the E0s); `isolated_atoms.extxyz` holds "
    "the same frames on their own. "
)


def contents_section(rows: list[dict], dataset: dict) -> str:
    """Counts per file and per host and defect kind, the elements and the split used."""
    per_file = []
    present = {r["split"] for r in rows}
    for split in [f for f in FILES if f not in OPTIONAL_FILES or f in present]:
        mine = [r for r in rows if r["split"] == split]
        atoms = sum(r["config_type"] == ISOLATED_ATOM for r in mine)
        n_atoms = sum(int(r["n_atoms"]) for r in mine)
        per_file.append([f"`{split}.extxyz`", len(mine), atoms, len(mine) - atoms, n_atoms])
    relaxation = [r for r in rows if r["config_type"] != ISOLATED_ATOM and r["split"] in FILES[:3]]
    kinds = sorted({(r["host"], _defect_kind(r)) for r in relaxation})
    per_kind = []
    for host, kind in kinds:
        mine = [r for r in relaxation if (r["host"], _defect_kind(r)) == (host, kind)]
        counts = Counter(r["split"] for r in mine)
        n_relax = len({r["defect"] for r in mine})
        per_kind.append([host or "?", kind, n_relax] + [counts[s] for s in FILES[:3]])
    split = dataset.get("split") or {}
    split_text = (
        f"Split mode `{split['mode']}`, fractions {split.get('fractions')}, seed "
        f"{split.get('seed')} (`workflow_scripts/splits.py`). "
        if split
        else ""
    )
    held = sorted({r["substituent"] for r in rows if r["split"] == "held_out"})
    if held:
        split_text += (
            f"Held-out dopants ({', '.join(held)}): their relaxations are in `held_out.extxyz` "
            "only, in no train, valid or test file. "
        )
    if split.get("mode") == "frame":
        split_text += (
            "Frames are drawn at random, as in the studies: ionic steps of one relaxation "
            "land in train and test alike, so test errors are optimistic. "
        )
    return (
        "## Contents\n\n"
        + _table(["file", "frames", "IsolatedAtom", "relaxation frames", "atoms"], per_file)
        + "\n\n"
        + ((E0_NOTE if per_file[0][2] else "") + split_text).strip()
        + "\n\nRelaxation frames per host and defect kind (relaxations: distinct defects):\n\n"
        + _table(["host", "defect kind", "relaxations", "train", "valid", "test"], per_kind)
        + "\n\nElements: "
        + ", ".join(sorted({el for r in rows for el in _elements(r["formula"])}))
        + ".\n"
    )


def _elements(formula: str) -> set[str]:
    from ase.formula import Formula

    return set(Formula(formula).count())


RELAX_FOLDER = calculation_folder(paths.CP2K_RELAX)  # wildcards as <host>, <defect>
ATOM_FOLDER = calculation_folder(paths.CP2K_ATOM)

UNITS = f"""## Units and keys

Extended XYZ (ASE), with mace-torch's default keys:

| key | where | unit, meaning |
|---|---|---|
| `REF_energy` | info | eV, total energy of the cell |
| `REF_forces` | arrays | eV/Å |
| `REF_stress` | info | eV/Å³, Voigt order xx yy zz yz xz xy, ASE's sign (below) |
| `config_type` | info | `IsolatedAtom` for the E0 frames (one free atom), else the name |
| `host`, `defect` | info | host; defect (`sub_<El>_on_<site>`, `vac_<site>`) |
| `site`, `substituent` | info | A/B/X site of the defect; element or `vacancy` |
| `step` | info | ionic step of the relaxation, 0 = initial geometry |
| `scf_converged` | info | `T` on every frame here (the splits drop unconverged steps) |
| `relaxation_status` | info | `converged`, `max_iter` or `failed` (then `failure_kind`) |
| `cp2k_version`, `settings_hash` | info | the CP2K that computed it; its physics settings |

Energies are CP2K's Hartree times ASE's CODATA 2014 factor. Stress: positive = tensile
(ASE's sign, the opposite of CP2K's); the isolated atoms carry none.

`frames.csv` has one row per frame of the four extxyz files (`split`; `index` = the frame's
position in that file), energies in eV, `max_force_eV_per_A` = the largest per-atom |F|, and
`source` = the CP2K calculation folder of the run that made it
(`{RELAX_FOLDER}`, `{ATOM_FOLDER}`); a value a frame does
not carry is left empty. `SHA256SUMS` holds the SHA-256 of every other file.
"""


def dft_section(dft: dict, rows: list[dict]) -> str:
    """The CP2K settings (the run's dft section) and the versions and hashes in the frames."""
    scf, geo, atoms = dft.get("scf", {}), dft.get("geo_opt", {}), dft.get("isolated_atoms", {})
    kpoints = dft.get("kpoints")
    items = [
        f"functional {dft.get('xc')}, GTH pseudopotentials; basis: the first MOLOPT tier of "
        f"{', '.join(dft.get('basis_preference') or [])} found for each element"
        + (f" (overrides: {sorted(dft['elements'])})" if dft.get("elements") else ""),
        f"plane-wave cutoff {dft.get('cutoff')} Ry, relative cutoff {dft.get('rel_cutoff')} Ry, "
        f"{dft.get('ngrids')} grids, EPS_DEFAULT {dft.get('eps_default')}",
        f"k-points {kpoints}" if kpoints else "Γ point only",
        f"spin polarisation {dft.get('spin_polarized')}; SCF: method {scf.get('method')}, "
        f"EPS_SCF {scf.get('eps_scf')}, MAX_SCF {scf.get('max_scf')}, smearing "
        f"{scf.get('smearing_temperature')} K",
        f"GEO_OPT {geo.get('optimizer')}: max force {geo.get('max_force')} eV/Å, at most "
        f"{geo.get('max_iter')} steps; stress printed: {dft.get('print_stress')}",
        f"isolated atoms: cubic box {atoms.get('box')} Å, EPS_SCF "
        f"{atoms.get('scf', {}).get('eps_scf')}",
    ]
    versions = sorted({r["cp2k_version"] for r in rows if r["cp2k_version"]})
    hashes = sorted({r["settings_hash"] for r in rows if r["settings_hash"]})
    return (
        "## DFT settings\n\n"
        + "".join(f"- {item}\n" for item in items)
        + f"\nCP2K versions in the frames: {', '.join(versions) or 'not recorded'}; "
        f"settings hashes: {', '.join(hashes) or 'not recorded'}.\n\n"
        f"All settings (`{paths.fill(paths.SECTION_SETTINGS, section='dft')}` of the run):\n\n"
        "```json\n" + json.dumps(dft, indent=1, sort_keys=True) + "\n```\n"
    )


LOADING = """## Loading

```python
import ase.io, pandas
train = ase.io.read("train.extxyz", ":")          # list of ase.Atoms
energy = train[-1].info["REF_energy"]; forces = train[-1].arrays["REF_forces"]
frames = pandas.read_csv("frames.csv")
```

With mace; the `IsolatedAtom` frames at the top of `train.extxyz` set the E0s (mace then
ignores `--E0s`):

```bash
mace_run_train --name=my_model --train_file=train.extxyz --valid_file=valid.extxyz \\
  --test_file=test.extxyz --energy_key=REF_energy --forces_key=REF_forces \\
  --stress_key=REF_stress ...
```

Check the files: `sha256sum -c SHA256SUMS` in this folder.
"""


def licence_section(name: str) -> str:
    return (
        "## Licence\n\n"
        "The data in this folder were computed by whoever ran the workflow and are theirs to "
        f"license; the workflow sets no licence for {name}. The published Perovs-Dopants "
        "data set (IntelLabs/Perovs-Dopants) is distributed under CDLA-Permissive-2.0; "
        "licensing this one under CDLA-Permissive-2.0 too would match it.\n\n"
        "## How to cite\n\n"
        "Cite the Perovs-Dopants studies (see the perovs-dopants workflow's README) and the "
        "workflow; cite CP2K, and mace and ASE if you use them.\n"
    )


def render_card(name: str, rows: list[dict], dft: dict, dataset: dict) -> str:
    run_label = str(dataset.get("run_label") or "")
    head = f"# {name}\n\n"
    if "stand-in" in f"{run_label} {name}".lower():
        head += (
            f"> **Not the study's data.** Run `{run_label}` uses stand-ins. The frames here "
            "are this run's own CP2K calculations at the DFT settings below; do not publish "
            "or compare them as the Perovs-Dopants data set.\n\n"
        )
    head += (
        "CP2K relaxations of doped perovskite supercells (neutral substitutions and "
        "vacancies on A, B and X sites), made by the perovs-dopants workflow: every "
        "SCF-converged ionic step of each relaxation is a labelled frame, with the isolated "
        "atoms' energies as E0s, split into train, valid and test for MACE."
        + (f" Run: `{run_label}`." if run_label else "")
        + "\n\n"
    )
    sections = [contents_section(rows, dataset), UNITS, dft_section(dft, rows), LOADING]
    return head + "\n".join(sections) + "\n" + licence_section(name)


# --- building the folder -------------------------------------------------------------------


def build_artefact(
    inputs: dict[str, Path], dft_file: Path, name: str, out_dir: Path, dataset_file=None
) -> dict[str, int]:
    """Write the folder (module docstring); returns frames per file. Every input is read and
    checked before anything is written."""
    for path in [*inputs.values(), dft_file] + ([dataset_file] if dataset_file else []):
        if not Path(path).is_file():
            raise DatasetCardError(f"{path}: no such file")
    files = [split for split in FILES if split in inputs]
    frames = {split: read_frames(Path(inputs[split])) for split in files}
    dft = json.loads(Path(dft_file).read_text())
    dataset = json.loads(Path(dataset_file).read_text()) if dataset_file else {}
    rows = [frame_row(split, i, a) for split in files for i, a in enumerate(frames[split])]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for split in files:
        shutil.copyfile(inputs[split], out_dir / f"{split}.extxyz")
        written.append(f"{split}.extxyz")
    write_csv(rows, out_dir / "frames.csv")
    card = render_card(name, rows, dft, dataset)
    (out_dir / "README.md").write_text(card, encoding="utf-8")
    write_checksums(out_dir, written + ["frames.csv", "README.md"])
    return {split: len(frames[split]) for split in files}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.dataset_card")
    for split in FILES:
        flag = "--" + split.replace("_", "-")
        required = split not in OPTIONAL_FILES
        parser.add_argument(flag, dest=split, required=required, type=Path, help=f"{split}.extxyz")
    parser.add_argument("--dft-settings", required=True, type=Path, help="the dft settings (JSON)")
    parser.add_argument(
        "--dataset-settings", type=Path, help="the dataset settings (JSON: run label, split)"
    )
    parser.add_argument("--name", required=True, help="data set name (config dataset.name)")
    parser.add_argument(
        "--out-dir", required=True, type=Path, help="the artefact folder, named after the data set"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    inputs = {split: getattr(args, split) for split in FILES if getattr(args, split)}
    try:
        counts = build_artefact(
            inputs, args.dft_settings, args.name, args.out_dir, args.dataset_settings
        )
    except DatasetCardError as error:
        log.error("%s", error)
        return 1
    log.info(
        "%s: %s frames; README.md, frames.csv, SHA256SUMS written",
        args.out_dir,
        ", ".join(f"{split} {n}" for split, n in counts.items()),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
