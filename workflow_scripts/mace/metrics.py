"""The study's tables: every model's errors (:mod:`.errors`) on every test set.

Outputs in ``--out-dir``: ``table1_force_mae.{csv,md}`` (force MAE, model x test set, the
layout of the study's Table 1), ``tableA1.{csv,md}`` (E MAE, F MAE, F RMSE and stress MAE per
model and test set, Table A1), ``per_element_force_mae.csv`` and ``per_substituent.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from workflow_scripts.analysis import alignment_fit, energy_alignment
from workflow_scripts.analysis.common import parse_pairs
from workflow_scripts.formatting import format_number
from workflow_scripts.mace import settings
from workflow_scripts.mace.errors import (
    EnergyScales,
    collect,
    per_element,
    per_substituent,
    summary,
)

METHOD_NAMES = {
    "zero_shot": "zero-shot",
    "standard": "standard",
    "multihead": "multihead",
    "scratch": "from scratch",
}
PER_SUBSTITUENT_COLUMNS = (
    "model",
    "test_set",
    "substituent",
    "n_frames",
    "energy_mae_ev_per_atom",
    "force_mae_ev_per_a",
    "energy_mae_raw_ev_per_atom",
    "energy_alignment",
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
    "energy_mae_raw_ev_per_atom",
    "energy_alignment",
    "model_energy_scale",
    "label_energy_scale",
]
PARTIAL_NOTE = (
    "\n\\* evaluated on the frames whose elements the model knows; see tableA1 "
    "(n_evaluated / n_frames).\n"
)
ALIGNED_MARK, NOT_ALIGNED_MARK = "†", "n/a‡"
ELEMENT_COLUMNS = ("model", "test_set", "element", "n_atoms", "force_mae_ev_per_a")


def model_rows(
    models: list[str], variants: dict, names: dict[str, str], foundation: str, baselines: dict
) -> list[dict]:
    """Row labels of the tables: model, base model, finetune data, method (a baseline's base
    model is its label, e.g. "SevenNet-0 (11Jul2024)")."""
    rows = []
    for model in models:
        variant = variants.get(model)
        if variant is None:
            base = baselines.get(model, {}).get("label", model)
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


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def build_tables(
    predictions: dict[tuple[str, str], Path],
    models: list[str],
    test_sets: list[str],
    labels: list[dict],
    names: dict[str, str],
    model_scales: dict[str, str] | None = None,
    fit: alignment_fit.AlignmentFit | None = None,
) -> dict:
    """All metric rows: summary (Table A1), per element, per substituent. ``predictions``:
    (model, test set) -> its predictions file. ``model_scales``: model -> energy scale
    (default: every model on its test sets' scale, i.e. raw)."""
    from workflow_scripts.mace.evaluate import read_frames

    summary_rows, element_rows, substituent_rows = [], [], []
    for model, label in zip(models, labels, strict=True):
        for test_set in test_sets:
            errors = collect(read_frames(predictions[model, test_set]))
            head = head_label(label["method"], errors.heads)
            label_scale = energy_alignment.label_energy_scale(test_set)
            model_scale = (model_scales or {}).get(model, label_scale)
            scales = EnergyScales(model_scale, label_scale, fit)
            summary_rows.append(
                label
                | {"test_set": test_set, "test_set_name": names[test_set], "head": head}
                | summary(errors, scales)
            )
            element_rows += [
                (model, test_set, element, count, value)
                for element, (count, value) in per_element(errors).items()
            ]
            substituent_rows += [
                (model, test_set, substituent, *values)
                for substituent, values in per_substituent(errors, scales).items()
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
            value = format_number(record[names[test_set]], 3, missing="")
            cells.append(value + "*" if value and (record["model"], test_set) in partial else value)
        rows.append(cells)
    markdown = markdown_table(header + [names[t] for t in test_sets], rows)
    (out_dir / "table1_force_mae.md").write_text(
        f"# Force MAE (eV/Å) — {run_label}\n\n" + markdown + (PARTIAL_NOTE if partial else "")
    )


def energy_cell(row: dict) -> str:
    """The energy MAE as Table A1 shows it: † when aligned across codes, n/a‡ when not alignable
    (also used by the leaderboard)."""
    status = str(row.get("energy_alignment", energy_alignment.RAW))
    if status.startswith(energy_alignment.NOT_ALIGNED):
        return NOT_ALIGNED_MARK
    value = format_number(row["energy_mae_ev_per_atom"], 3, missing="")
    return value + ALIGNED_MARK if value and status == energy_alignment.ALIGNED else value


def energy_note(
    summary_rows: list[dict], fit: alignment_fit.AlignmentFit | None, fit_file: str = ""
) -> str:
    """What the energy columns of Table A1 compare: raw, aligned (with which fit), or not."""
    aligned = [r for r in summary_rows if r.get("energy_alignment") == energy_alignment.ALIGNED]
    missing = [
        r
        for r in summary_rows
        if str(r.get("energy_alignment", "")).startswith(energy_alignment.NOT_ALIGNED)
    ]
    lines = [
        "",
        "E MAE compares total energies per atom on one code's scale. Where the model predicts "
        "on the labels' code (Energy scale `CP2K → CP2K` or `VASP → VASP`) the energies are "
        "raw. Where it does not, the prediction is moved to the labels' code first: "
        "E' = E_pred + Σ n_Z δ_Z (CP2K → VASP) or E_pred − Σ n_Z δ_Z (VASP → CP2K), with "
        "per-element offsets δ_Z fitted on the CP2K-recomputed MPtrj structures "
        "(docs/energy_alignment.md). E MAE raw is never aligned; across codes it measures the "
        "codes' reference offset (hundreds of eV/atom), not the model.",
        "",
    ]
    if fit is not None:
        lines.append(f"Fit{f' ({fit_file})' if fit_file else ''}: {fit.describe()}.")
    else:
        lines.append("Fit: none (reference.mptrj.cp2k_subset_size is 0): no cell is aligned.")
    lines.append("")
    if aligned:
        cells = ", ".join(
            f"{r['model']} on {r['test_set_name']} ({r['model_energy_scale']} → "
            f"{r['label_energy_scale']})"
            for r in aligned
        )
        lines.append(f"{ALIGNED_MARK} aligned: {cells}.")
    if missing:
        cells = "; ".join(
            f"{r['model']} on {r['test_set_name']}: {r['energy_alignment']}" for r in missing
        )
        lines.append(f"{NOT_ALIGNED_MARK} {cells}. No value is given for these cells.")
    lines.append(
        "Aligned energies carry what the per-element offsets do not: PBE+U frames on the VASP "
        "side (U-elements in oxides/fluorides; excluded from the fit), and CHGNet's MP2020 "
        "corrections."
    )
    return "\n".join(lines) + "\n"


def write_table_a1(
    summary_rows: list[dict],
    out_dir: Path,
    run_label: str,
    fit: alignment_fit.AlignmentFit | None = None,
    fit_file: str = "",
) -> None:
    """Energy MAE, force MAE and RMSE, stress MAE per model and test set (Table A1)."""
    import pandas as pd

    pd.DataFrame(summary_rows, columns=TABLE_A1_COLUMNS).to_csv(
        out_dir / "tableA1.csv", index=False
    )
    header = ["Model", "Method", "Test set", "Frames", "Energy scale", "E MAE (eV/atom)"]
    header += ["E MAE raw (eV/atom)", "F MAE (eV/Å)", "F RMSE (eV/Å)", "Stress MAE (eV/Å³)"]
    rows = [
        [
            row["model"],
            row["method"],
            row["test_set_name"],
            f"{row['n_evaluated']}/{row['n_frames']}",
            f"{row.get('model_energy_scale', '')} → {row.get('label_energy_scale', '')}",
            energy_cell(row),
            format_number(row.get("energy_mae_raw_ev_per_atom", np.nan), 3, missing=""),
            format_number(row["force_mae_ev_per_a"], 3, missing=""),
            format_number(row["force_rmse_ev_per_a"], 3, missing=""),
            format_number(row["stress_mae_ev_per_a3"], 4, missing=""),
        ]
        for row in summary_rows
    ]
    (out_dir / "tableA1.md").write_text(
        f"# Energy and force errors — {run_label}\n\n"
        + markdown_table(header, rows)
        + energy_note(summary_rows, fit, fit_file)
    )


def write_tables(
    tables: dict,
    test_sets: list[str],
    names: dict[str, str],
    out_dir: Path,
    run_label: str,
    fit: alignment_fit.AlignmentFit | None = None,
    fit_file: str = "",
) -> None:
    """Table 1 and Table A1 (CSV + Markdown), per-element and per-substituent CSVs."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    write_table1(tables["summary"], test_sets, names, out_dir, run_label)
    write_table_a1(tables["summary"], out_dir, run_label, fit, fit_file)
    pd.DataFrame(tables["element"], columns=list(ELEMENT_COLUMNS)).to_csv(
        out_dir / "per_element_force_mae.csv", index=False
    )
    pd.DataFrame(tables["substituent"], columns=list(PER_SUBSTITUENT_COLUMNS)).to_csv(
        out_dir / "per_substituent.csv", index=False
    )


def prediction_files(values: list[str], models, test_sets) -> dict[tuple[str, str], Path]:
    """``MODEL/TEST_SET=FILE`` arguments; stops naming any model and test set left without."""
    files = {}
    for key, path in parse_pairs(values, "--prediction").items():
        model, _, test_set = key.rpartition("/")
        files[model, test_set] = Path(path)
    missing = [f"{m}/{t}" for m in models for t in test_sets if (m, t) not in files]
    if missing:
        raise SystemExit(f"--prediction: no predictions file for {', '.join(missing)}")
    return files


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.mace.metrics")
    commands = parser.add_subparsers(dest="command", required=True)
    tables = commands.add_parser("tables", help="metric tables from prediction files")
    tables.add_argument(
        "--prediction",
        action="append",
        default=[],
        help="MODEL/TEST_SET=FILE, one per model and test set",
    )
    tables.add_argument("--models", required=True, nargs="+", help="rows, in order")
    tables.add_argument("--variants-config", required=True, type=Path)
    tables.add_argument("--evaluation-config", required=True, type=Path)
    tables.add_argument("--baselines-config", required=True, type=Path, help="baselines.json")
    tables.add_argument("--dataset-config", required=True, type=Path)
    tables.add_argument("--reference-config", required=True, type=Path)
    tables.add_argument("--foundation-info", required=True, type=Path, help="foundation.json")
    tables.add_argument(
        "--energy-alignment",
        type=Path,
        help="the energy-alignment fit (JSON); without it cross-code energies are n/a",
    )
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
    baselines = settings.load_section(args.baselines_config)
    baselines.pop("run_label", None)
    labels = model_rows(args.models, variants, names, foundation, baselines)
    test_sets = list(evaluation["test_sets"])
    head = evaluation.get("multihead_head", "finetuned")
    model_scales = {
        model: energy_alignment.model_energy_scale(model, variants, head, baselines)
        for model in args.models
    }
    fit = alignment_fit.load_fit(args.energy_alignment) if args.energy_alignment else None
    predictions = prediction_files(args.prediction, args.models, test_sets)
    tables = build_tables(predictions, args.models, test_sets, labels, names, model_scales, fit)
    fit_file = str(args.energy_alignment.with_suffix(".csv")) if args.energy_alignment else ""
    write_tables(tables, test_sets, names, args.out_dir, run_label, fit, fit_file)
    print((args.out_dir / "table1_force_mae.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
