"""The leaderboard: every model ranked on each test set by force MAE and energy MAE.

    python -m workflow_scripts.analysis.leaderboard --table-a1 metrics/tableA1.csv \
        --variants-config variants.json \
        [--energy-alignment metrics/energy_alignment.json] \
        [--labeller mptrj=chgnet --labeller omat24=chgnet] \
        --out metrics/leaderboard.csv [--figure figures/leaderboard.png]

Reads Table A1 (workflow_scripts.mace.metrics) and writes ``leaderboard.csv`` (one row per
test set × model, the values copied from Table A1), ``leaderboard.md`` beside it (one section
per test set, models by force MAE) and, with ``--figure``, a bar chart of the force MAE per
model grouped by test set (log scale when the errors span more than 10×) with its CSV.

Ranks are competition ranks on the exact values, lower is better: ties share the lowest rank
(1, 1, 3). A NaN metric is not ranked, shown n/a and listed last. The energy MAE is the one of
Table A1: aligned across DFT codes (†), raw within one, n/a‡ where not alignable (the marks,
the fit and the aligned cells are named as in tableA1.md; docs/energy_alignment.md).
``--labeller TEST_SET=MODEL`` names the model that made a test set's labels (the demo's
stand-in labeller): there it is listed, marked §, and not ranked (its error is zero by
construction). Kind: baseline (not a variant of the config), foundation (the zero-shot
variant), finetuned, from scratch.

The ranked columns come from METRICS: a later table (e.g. screening metrics) adds a Metric and
merges its columns into Table A1's rows on (model, test_set) before :func:`build`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.analysis import alignment_fit
from workflow_scripts.analysis.common import add_source_note, apply_style, parse_pairs, write_figure
from workflow_scripts.mace import metrics, settings


@dataclass(frozen=True)
class Metric:
    column: str  # the value, lower is better
    rank: str  # the rank column written before it
    header: str  # Markdown header of the value


FORCE = Metric("force_mae_ev_per_a", "rank_force", "F MAE (eV/Å)")
ENERGY = Metric("energy_mae_ev_per_atom", "rank_energy", "E MAE (eV/atom)")
METRICS = (FORCE, ENERGY)  # the first one orders the rows
# leaderboard.csv: Table A1's columns (values copied), the ranks, kind and the labeller flag
COLUMNS = ["test_set", "test_set_name", "rank_force", "model", "kind", "method", "finetune_data"]
COLUMNS += ["force_mae_ev_per_a", "rank_energy", "energy_mae_ev_per_atom", "energy_alignment"]
COLUMNS += ["energy_mae_raw_ev_per_atom", "model_energy_scale", "label_energy_scale"]
COLUMNS += ["n_evaluated", "n_frames", "produced_labels"]
REQUIRED = ["method"] + [c for c in COLUMNS if c in metrics.TABLE_A1_COLUMNS]
FIGURE_COLUMNS = ["test_set", "test_set_name", "model", "kind", FORCE.column, FORCE.rank]
FIGURE_COLUMNS += ["produced_labels"]
LABELS_MARK, NA = "§", "n/a"


def model_kind(model: str, method: str, variants: dict) -> str:
    if model not in variants:
        return "baseline"
    if method == metrics.METHOD_NAMES["zero_shot"]:
        return "foundation"
    return "from scratch" if method == metrics.METHOD_NAMES["scratch"] else "finetuned"


def read_table(path: Path | str):
    """Table A1 as written by metrics (empty cells NaN, energy_alignment a string)."""
    import pandas as pd

    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise KeyError(f"{path} lacks columns {missing}")
    table["energy_alignment"] = table["energy_alignment"].fillna("").astype(str)
    return table


def rank(values, eligible):
    """Competition ranks (ties share the lowest) of the finite eligible values, else NA."""
    values = values.astype(float)
    return values.where(eligible & np.isfinite(values)).rank(method="min").astype("Int64")


def build(table, variants: dict, labellers: dict[str, str] | None = None):
    """The leaderboard rows: per test set (table order), ranked by METRICS[0], unranked last."""
    import pandas as pd

    labellers = {k: v.lower() for k, v in (labellers or {}).items()}
    board = table.copy()
    rows = list(zip(board["model"], board["method"], board["test_set"], strict=True))
    board["kind"] = [model_kind(m, method, variants) for m, method, _ in rows]
    board["produced_labels"] = [labellers.get(t) == str(m).lower() for m, _, t in rows]
    board["_order"] = range(len(board))
    parts = []
    for test_set in dict.fromkeys(board["test_set"]):
        part = board[board["test_set"] == test_set].copy()
        for metric in METRICS:
            part[metric.rank] = rank(part[metric.column], ~part["produced_labels"])
        parts.append(part.sort_values([METRICS[0].rank, "_order"], na_position="last"))
    board = pd.concat(parts) if parts else board
    extra = [m.column for m in METRICS if m.column not in COLUMNS]
    extra += [m.rank for m in METRICS if m.rank not in COLUMNS]
    return board.reindex(columns=COLUMNS + extra).reset_index(drop=True)


def _value(value, digits: int = 3) -> str:
    return NA if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _rank(value) -> str:
    import pandas as pd

    return "–" if pd.isna(value) else str(int(value))


def row_cells(row: dict) -> list[str]:
    """One Markdown row: force rank, model (§ if it made the labels), values with marks."""
    force = _value(row[FORCE.column])
    if force != NA and row["n_evaluated"] < row["n_frames"]:
        force += "*"
    cells = [_rank(row[FORCE.rank])]
    cells += [f"{row['model']} {LABELS_MARK}" if row["produced_labels"] else row["model"]]
    cells += [row["kind"], row["method"], force, _rank(row[ENERGY.rank])]
    cells += [metrics.energy_cell(row) or NA, _value(row["energy_mae_raw_ev_per_atom"])]
    cells += [f"{row['model_energy_scale']} → {row['label_energy_scale']}"]
    for metric in METRICS[2:]:  # columns added by later metric tables
        cells += [_rank(row[metric.rank]), _value(row[metric.column])]
    return cells


def labels_note(board) -> str:
    flagged = board[board["produced_labels"].astype(bool)]
    if flagged.empty:
        return ""
    cells = ", ".join(f"{r.model} on {r.test_set_name}" for r in flagged.itertuples())
    return (
        f"\n{LABELS_MARK} this model made the test set's labels (the stand-in labeller, "
        f"config reference.<set>.standin.labeller): {cells}. Its errors there are zero by "
        "construction, not a result; it is listed but not ranked.\n"
    )


def markdown(board, table, run_label: str, source: str, fit=None, fit_file: str = "") -> str:
    """One section per test set, models by force rank; the notes of tableA1.md."""
    header = ["Rank", "Model", "Kind", "Method", FORCE.header, "E rank", ENERGY.header]
    header += ["E MAE raw (eV/atom)", "Energy scale"]
    for metric in METRICS[2:]:
        header += ["Rank", metric.header]
    lines = [
        f"# Leaderboard — {run_label}",
        "",
        "Every model on each test set, ranked by force MAE (1 = lowest; ties share a rank); "
        "E rank ranks the energy MAE of the same test set. n/a: not computed, not ranked, "
        f"listed last. Values from {source}.",
    ]
    for test_set, part in board.groupby("test_set", sort=False):
        name = part["test_set_name"].iloc[0]
        rows = [row_cells(row) for row in part.to_dict("records")]
        table_md = metrics.markdown_table(header, rows).rstrip()
        lines += ["", f"## {name} (`{test_set}`)", "", table_md]
    text = "\n".join(lines) + "\n"
    partial = (board["n_evaluated"] < board["n_frames"]).any()
    text += (metrics.PARTIAL_NOTE if partial else "") + labels_note(board)
    return text + metrics.energy_note(table.to_dict("records"), fit, fit_file)


def draw(board, models: list[str], note: str):
    """Force MAE bars: one group per test set, one bar per model (table order)."""
    plt = apply_style()
    from matplotlib.patches import Patch

    test_sets = list(dict.fromkeys(board["test_set"]))
    names = dict(zip(board["test_set"], board["test_set_name"], strict=True))
    values = board.pivot(index="model", columns="test_set", values=FORCE.column)
    values = values.reindex(index=models, columns=test_sets).astype(float)
    flagged = board.pivot(index="model", columns="test_set", values="produced_labels")
    flagged = flagged.reindex(index=models, columns=test_sets).fillna(False).astype(bool)
    positive = values.to_numpy()[np.isfinite(values.to_numpy()) & (values.to_numpy() > 0)]
    log = positive.size > 0 and positive.max() / positive.min() > 10
    floor = positive.min() / 2 if log else 0.0
    width = 0.8 / max(len(models), 1)
    figsize = (max(7.0, 1.5 + 0.32 * len(models) * len(test_sets)), 5.0)
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    colours = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    handles = []
    for i, model in enumerate(models):
        x = np.arange(len(test_sets)) + (i - (len(models) - 1) / 2) * width
        heights = values.loc[model].to_numpy()
        drawn = np.where(np.isfinite(heights) & (heights > floor), heights, np.nan)
        colour = colours(i % colours.N)
        bars = ax.bar(x, drawn - floor, width, bottom=floor, color=colour)
        handles.append(Patch(facecolor=colour, label=model))
        for bar, value, xi, mark in zip(bars, heights, x, flagged.loc[model], strict=True):
            bar.set_hatch("//" if mark else None)
            text = (NA if not np.isfinite(value) else f"{value:.3g}") + (" §" if mark else "")
            y = value if np.isfinite(value) and value > floor else floor
            ax.text(xi, y, text, ha="center", va="bottom", rotation=90, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_xticks(range(len(test_sets)), [names[t] for t in test_sets])
    ax.set_ylabel(FORCE.header + (", log scale" if log else ""))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), title="model")
    fig.suptitle("Leaderboard: force MAE per model and test set (lower is better)")
    add_source_note(fig, note)
    return fig


def figure_table(board, models: list[str]):
    """The plotted values, in drawing order: test sets as in the table, then models."""
    order = board["model"].map(models.index) + len(models) * board["test_set"].map(
        list(dict.fromkeys(board["test_set"])).index
    )
    return board.assign(_order=order).sort_values("_order")[FIGURE_COLUMNS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workflow_scripts.analysis.leaderboard",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--table-a1", required=True, type=Path, help="Table A1 (CSV)")
    parser.add_argument(
        "--variants-config", required=True, type=Path, help="variants.json: kinds, run label"
    )
    parser.add_argument("--energy-alignment", type=Path, help="energy_alignment.json (notes)")
    parser.add_argument(
        "--labeller", action="append", metavar="TEST_SET=MODEL", help="MODEL made the labels"
    )
    parser.add_argument("--out", required=True, type=Path, help="CSV; the .md beside it")
    parser.add_argument("--figure", type=Path, help="bar chart PNG; its CSV beside it")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    variants = settings.load_section(args.variants_config)
    run_label = variants.pop("run_label", "")
    table = read_table(args.table_a1)
    board = build(table, variants, parse_pairs(args.labeller, "--labeller"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    board.to_csv(args.out, index=False)
    fit = alignment_fit.load_fit(args.energy_alignment) if args.energy_alignment else None
    fit_file = str(args.energy_alignment.with_suffix(".csv")) if args.energy_alignment else ""
    text = markdown(board, table, run_label, str(args.table_a1), fit, fit_file)
    args.out.with_suffix(".md").write_text(text)
    if args.figure:
        models = list(dict.fromkeys(table["model"]))
        note = f"Data: {args.out}. Run: {run_label}"
        if board["produced_labels"].any():
            note = f"Hatched, {LABELS_MARK}: the model made that test set's labels. " + note
        write_figure(draw(board, models, note), args.figure, figure_table(board, models))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
