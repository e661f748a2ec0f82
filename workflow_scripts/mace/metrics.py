"""Errors of every model on every test set and the study's tables.

Definitions (all on frames that have a prediction):

* energy MAE (eV/atom): mean over frames of |E_pred - E_ref| / n_atoms;
* force MAE (eV/Å): mean of |F_pred - F_ref| over every Cartesian component of every atom
  (mace's ``mae_f``); force RMSE (eV/Å): root of the mean squared component error;
* stress MAE (eV/Å³): mean of |σ_pred - σ_ref| over the six Voigt components, on frames with
  ``REF_stress``;
* per element: force MAE over the atoms of that element; per substituent: energy and force
  MAE over the frames with that ``substituent`` info (Perovs-Dopants frames).

Energies of models whose head was fitted to CP2K isolated atoms are on CP2K's energy scale:
their energy MAE on VASP test sets (MPtrj, OMat24) is dominated by the reference offset;
force errors are not affected.

Outputs in ``--out-dir``: ``table1_force_mae.{csv,md}`` (force MAE, model x test set, the
layout of the study's Table 1), ``tableA1.{csv,md}`` (E MAE, F MAE, F RMSE and stress MAE per
model and test set, Table A1), ``per_element_force_mae.csv`` and ``per_substituent.csv``.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workflow_scripts.mace import settings
from workflow_scripts.mace.evaluate import ENERGY_KEY, FORCES_KEY, SKIPPED_KEY, STRESS_KEY

REF_ENERGY, REF_FORCES, REF_STRESS = "REF_energy", "REF_forces", "REF_stress"
METHOD_NAMES = {
    "zero_shot": "zero-shot",
    "standard": "standard",
    "multihead": "multihead",
    "scratch": "from scratch",
}
BASELINE_NAMES = {"chgnet": "CHGNet"}
PER_SUBSTITUENT_COLUMNS = (
    "model",
    "test_set",
    "substituent",
    "n_frames",
    "energy_mae_ev_per_atom",
    "force_mae_ev_per_a",
)
LABEL_COLUMNS = ["model", "base_model", "finetune_data", "method"]
TABLE_A1_COLUMNS = LABEL_COLUMNS + [
    "head",
    "test_set",
    "test_set_name",
    "n_frames",
    "n_evaluated",
    "energy_mae_ev_per_atom",
    "force_mae_ev_per_a",
    "force_rmse_ev_per_a",
    "stress_mae_ev_per_a3",
    "n_stress",
]
PARTIAL_NOTE = (
    "\n\\* evaluated on the frames whose elements the model knows; see tableA1 "
    "(n_evaluated / n_frames).\n"
)
ENERGY_SCALE_NOTE = (
    "\nEnergies are total energies on each label's own scale. A model whose head was fitted "
    "to CP2K isolated atoms predicts CP2K-scale energies; one fitted to VASP data predicts "
    "VASP-scale energies. An E MAE across the two (CP2K test set vs VASP-scale model or the "
    "reverse) measures the codes' reference offset (hundreds of eV/atom with GTH "
    "pseudopotentials), not the model: compare energies within one code, forces across codes.\n"
)
ELEMENT_COLUMNS = ("model", "test_set", "element", "n_atoms", "force_mae_ev_per_a")


def energy_mae_per_atom(predicted, reference, n_atoms) -> float:
    predicted, reference = np.asarray(predicted, float), np.asarray(reference, float)
    return float(np.mean(np.abs(predicted - reference) / np.asarray(n_atoms, float)))


def force_mae(predicted, reference) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, float) - np.asarray(reference, float))))


def force_rmse(predicted, reference) -> float:
    difference = np.asarray(predicted, float) - np.asarray(reference, float)
    return float(np.sqrt(np.mean(difference**2)))


def stress_mae(predicted, reference) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, float) - np.asarray(reference, float))))


@dataclass
class Errors:
    """Labels and predictions of the evaluated frames of one (model, test set)."""

    n_frames: int = 0
    n_atoms: list[int] = field(default_factory=list)
    energy: list[tuple[float, float]] = field(default_factory=list)
    forces_predicted: list[np.ndarray] = field(default_factory=list)
    forces_reference: list[np.ndarray] = field(default_factory=list)
    symbols: list[np.ndarray] = field(default_factory=list)
    stress: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    substituents: list[str | None] = field(default_factory=list)
    heads: set[str] = field(default_factory=set)


def collect(frames) -> Errors:
    """Pairs of labels and predictions from a predictions file's frames."""
    errors = Errors(n_frames=len(frames))
    for atoms in frames:
        if SKIPPED_KEY in atoms.info or ENERGY_KEY not in atoms.info:
            continue
        if atoms.info.get("head"):
            errors.heads.add(str(atoms.info["head"]))
        errors.n_atoms.append(len(atoms))
        errors.energy.append((float(atoms.info[ENERGY_KEY]), float(atoms.info[REF_ENERGY])))
        errors.forces_predicted.append(np.asarray(atoms.arrays[FORCES_KEY], float))
        errors.forces_reference.append(np.asarray(atoms.arrays[REF_FORCES], float))
        errors.symbols.append(np.array(atoms.get_chemical_symbols()))
        if REF_STRESS in atoms.info and STRESS_KEY in atoms.info:
            errors.stress.append((atoms.info[STRESS_KEY], atoms.info[REF_STRESS]))
        substituent = atoms.info.get("substituent")
        errors.substituents.append(None if substituent is None else str(substituent))
    return errors


def _voigt(stress) -> np.ndarray:
    stress = np.asarray(stress, float)
    if stress.shape == (3, 3) or stress.size == 9:
        s = stress.reshape(3, 3)
        return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    return stress.reshape(6)


def summary(errors: Errors) -> dict:
    """Energy/force/stress errors of one (model, test set); NaN where nothing to compare."""
    evaluated = len(errors.energy)
    row = {"n_frames": errors.n_frames, "n_evaluated": evaluated}
    if evaluated == 0:
        return (
            row
            | dict.fromkeys(
                ("energy_mae_ev_per_atom", "force_mae_ev_per_a", "force_rmse_ev_per_a"), np.nan
            )
            | {"stress_mae_ev_per_a3": np.nan, "n_stress": 0}
        )
    predicted, reference = zip(*errors.energy, strict=True)
    forces_predicted = np.concatenate(errors.forces_predicted)
    forces_reference = np.concatenate(errors.forces_reference)
    row["energy_mae_ev_per_atom"] = energy_mae_per_atom(predicted, reference, errors.n_atoms)
    row["force_mae_ev_per_a"] = force_mae(forces_predicted, forces_reference)
    row["force_rmse_ev_per_a"] = force_rmse(forces_predicted, forces_reference)
    if errors.stress:
        stress_predicted = np.array([_voigt(p) for p, _ in errors.stress])
        stress_reference = np.array([_voigt(r) for _, r in errors.stress])
        row["stress_mae_ev_per_a3"] = stress_mae(stress_predicted, stress_reference)
    else:
        row["stress_mae_ev_per_a3"] = np.nan
    row["n_stress"] = len(errors.stress)
    return row


def per_element(errors: Errors) -> dict[str, tuple[int, float]]:
    """Element -> (number of atoms, force MAE)."""
    if not errors.symbols:
        return {}
    symbols = np.concatenate(errors.symbols)
    difference = np.abs(
        np.concatenate(errors.forces_predicted) - np.concatenate(errors.forces_reference)
    )
    return {
        element: (int(np.sum(symbols == element)), float(difference[symbols == element].mean()))
        for element in sorted(set(symbols.tolist()))
    }


def per_substituent(errors: Errors) -> dict[str, tuple[int, float, float]]:
    """Substituent -> (number of frames, energy MAE eV/atom, force MAE eV/Å)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, substituent in enumerate(errors.substituents):
        if substituent is not None:
            groups[substituent].append(index)
    result = {}
    for substituent, indices in sorted(groups.items()):
        predicted = [errors.energy[i][0] for i in indices]
        reference = [errors.energy[i][1] for i in indices]
        n_atoms = [errors.n_atoms[i] for i in indices]
        result[substituent] = (
            len(indices),
            energy_mae_per_atom(predicted, reference, n_atoms),
            force_mae(
                np.concatenate([errors.forces_predicted[i] for i in indices]),
                np.concatenate([errors.forces_reference[i] for i in indices]),
            ),
        )
    return result


def model_rows(
    models: list[str], variants: dict, names: dict[str, str], foundation: str, chgnet: str
) -> list[dict]:
    """Row labels of the tables: model, base model, finetune data, method."""
    rows = []
    for model in models:
        variant = variants.get(model)
        if variant is None:
            base = f"{BASELINE_NAMES.get(model, model)} {chgnet}".strip()
            rows.append(
                {"model": model, "base_model": base, "finetune_data": "–", "method": "zero-shot"}
            )
            continue
        method = variant["method"]
        rows.append(
            {
                "model": model,
                "base_model": "–" if method == "scratch" else foundation,
                "finetune_data": names[variant["data"]] if "data" in variant else "–",
                "method": METHOD_NAMES[method],
            }
        )
    return rows


def head_label(method: str, heads: set[str]) -> str:
    """The head(s) used, as shown in tables: multihead models say which head it is."""
    if method != METHOD_NAMES["multihead"]:
        return ",".join(sorted(heads)) if heads else "–"
    roles = {"pt_head": "pretraining"}
    return ",".join(f"{roles.get(head, 'finetuned')} ({head})" for head in sorted(heads))


def _format(value: float, digits: int = 3) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def build_tables(
    predictions_dir: Path,
    models: list[str],
    test_sets: list[str],
    labels: list[dict],
    names: dict[str, str],
) -> dict:
    """All metric rows: summary (Table A1), per element, per substituent."""
    from workflow_scripts.mace.evaluate import read_frames

    summary_rows, element_rows, substituent_rows = [], [], []
    for model, label in zip(models, labels, strict=True):
        for test_set in test_sets:
            errors = collect(read_frames(predictions_dir / model / f"{test_set}.extxyz"))
            head = head_label(label["method"], errors.heads)
            summary_rows.append(
                label
                | {"test_set": test_set, "test_set_name": names[test_set], "head": head}
                | summary(errors)
            )
            element_rows += [
                (model, test_set, element, count, value)
                for element, (count, value) in per_element(errors).items()
            ]
            substituent_rows += [
                (model, test_set, substituent, *values)
                for substituent, values in per_substituent(errors).items()
            ]
    return {"summary": summary_rows, "element": element_rows, "substituent": substituent_rows}


def table1_rows(summary_rows: list[dict], test_sets: list[str], names: dict[str, str]):
    """Force MAE, one row per model (in order) and one column per test set."""
    import pandas as pd

    rows: dict[str, dict] = {}
    for record in summary_rows:
        row = rows.setdefault(
            record["model"],
            {key: record[key] for key in ("model", "base_model", "finetune_data", "method")}
            | {"head": set()},
        )
        if record["head"]:
            row["head"].add(record["head"])
        row[names[record["test_set"]]] = record["force_mae_ev_per_a"]
    for row in rows.values():
        row["head"] = ",".join(sorted(row["head"]))
    columns = LABEL_COLUMNS + ["head"] + [names[t] for t in test_sets]
    return pd.DataFrame(list(rows.values()), columns=columns)


def write_table1(
    summary_rows: list[dict], test_sets: list[str], names: dict, out_dir: Path, run_label: str
) -> None:
    """Force MAE, model x test set (the study's Table 1); ``*`` marks partly evaluated cells."""
    table1 = table1_rows(summary_rows, test_sets, names)
    table1.to_csv(out_dir / "table1_force_mae.csv", index=False)
    partial = {
        (row["model"], row["test_set"])
        for row in summary_rows
        if row["n_evaluated"] < row["n_frames"]
    }
    header = ["Model", "Base model", "Finetune data", "Method", "Head"]
    rows = []
    for record in table1.to_dict("records"):
        cells = [str(record[c]) for c in LABEL_COLUMNS + ["head"]]
        for test_set in test_sets:
            value = _format(record[names[test_set]])
            cells.append(value + "*" if value and (record["model"], test_set) in partial else value)
        rows.append(cells)
    markdown = markdown_table(header + [names[t] for t in test_sets], rows)
    (out_dir / "table1_force_mae.md").write_text(
        f"# Force MAE (eV/Å) — {run_label}\n\n" + markdown + (PARTIAL_NOTE if partial else "")
    )


def write_table_a1(summary_rows: list[dict], out_dir: Path, run_label: str) -> None:
    """Energy MAE, force MAE and RMSE, stress MAE per model and test set (Table A1)."""
    import pandas as pd

    pd.DataFrame(summary_rows, columns=TABLE_A1_COLUMNS).to_csv(
        out_dir / "tableA1.csv", index=False
    )
    header = ["Model", "Method", "Test set", "Frames", "E MAE (eV/atom)", "F MAE (eV/Å)"]
    header += ["F RMSE (eV/Å)", "Stress MAE (eV/Å³)"]
    rows = [
        [
            row["model"],
            row["method"],
            row["test_set_name"],
            f"{row['n_evaluated']}/{row['n_frames']}",
            _format(row["energy_mae_ev_per_atom"]),
            _format(row["force_mae_ev_per_a"]),
            _format(row["force_rmse_ev_per_a"]),
            _format(row["stress_mae_ev_per_a3"], 4),
        ]
        for row in summary_rows
    ]
    (out_dir / "tableA1.md").write_text(
        f"# Energy and force errors — {run_label}\n\n"
        + markdown_table(header, rows)
        + ENERGY_SCALE_NOTE
    )


def write_tables(
    tables: dict, test_sets: list[str], names: dict[str, str], out_dir: Path, run_label: str
) -> None:
    """Table 1 and Table A1 (CSV + Markdown), per-element and per-substituent CSVs."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    write_table1(tables["summary"], test_sets, names, out_dir, run_label)
    write_table_a1(tables["summary"], out_dir, run_label)
    pd.DataFrame(tables["element"], columns=list(ELEMENT_COLUMNS)).to_csv(
        out_dir / "per_element_force_mae.csv", index=False
    )
    pd.DataFrame(tables["substituent"], columns=list(PER_SUBSTITUENT_COLUMNS)).to_csv(
        out_dir / "per_substituent.csv", index=False
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.mace.metrics")
    commands = parser.add_subparsers(dest="command", required=True)
    tables = commands.add_parser("tables", help="metric tables from prediction files")
    tables.add_argument(
        "--predictions-dir", required=True, type=Path, help="holds {model}/{test_set}.extxyz"
    )
    tables.add_argument("--models", required=True, nargs="+", help="rows, in order")
    tables.add_argument("--variants-config", required=True, type=Path)
    tables.add_argument("--evaluation-config", required=True, type=Path)
    tables.add_argument("--dataset-config", required=True, type=Path)
    tables.add_argument("--reference-config", required=True, type=Path)
    tables.add_argument("--foundation-info", required=True, type=Path, help="foundation.json")
    tables.add_argument("--out-dir", required=True, type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    variants = settings.load_section(args.variants_config)
    evaluation = settings.load_section(args.evaluation_config)
    names = settings.dataset_display_names(
        settings.load_section(args.dataset_config), settings.load_section(args.reference_config)
    )
    foundation = settings.load_section(args.foundation_info)["name"]
    run_label = variants.pop("run_label", evaluation.get("run_label", ""))
    labels = model_rows(args.models, variants, names, foundation, evaluation["chgnet_model"])
    test_sets = list(evaluation["test_sets"])
    tables = build_tables(args.predictions_dir, args.models, test_sets, labels, names)
    write_tables(tables, test_sets, names, args.out_dir, run_label)
    print((args.out_dir / "table1_force_mae.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
