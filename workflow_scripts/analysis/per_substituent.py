"""Per-substituent errors of every model on the Perovs-Dopants test set (heat maps).

    python -m workflow_scripts.analysis.per_substituent \
        --metrics metrics/per_substituent.csv --test-set perovs_dopants \
        --settings analysis.json --dataset-name Perovs-Dopants \
        --out figures/per_substituent_errors.png

The metrics table has one row per (model, test_set, substituent) with ``n_frames``,
``energy_mae_ev_per_atom`` and ``force_mae_ev_per_a``; ``substituent`` is an element or
``vacancy``. Substituents are ordered by atomic number, ``vacancy`` last; models keep the
table's order. ``energy_mae_ev_per_atom`` is raw within one DFT code and aligned across codes
(``energy_alignment``: ``raw``, ``aligned`` or ``not aligned: ...``; see
docs/energy_alignment.md); aligned models are marked † in the energy panel, cells that could
not be aligned are left blank and labelled n/a.
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from workflow_scripts import paths
from workflow_scripts.analysis.common import (
    add_source_note,
    apply_style,
    load_settings,
    write_figure,
)
from workflow_scripts.cli import run_cli
from workflow_scripts.elements import ATOMIC_NUMBER
from workflow_scripts.mace.metrics import PER_SUBSTITUENT_COLUMNS

log = logging.getLogger(__name__)

# the per-substituent metric table, as metrics writes it: these are required, the
# energy-alignment columns after them are used where present
COLUMNS = PER_SUBSTITUENT_COLUMNS[:6]
OPTIONAL_COLUMNS = tuple(c for c in PER_SUBSTITUENT_COLUMNS if c not in COLUMNS)
ALIGNED = "aligned"
PANELS = (
    ("energy_mae_ev_per_atom", "energy MAE (eV/atom)"),
    ("force_mae_ev_per_a", "force MAE (eV/Å)"),
)
ANNOTATE_MAX_COLUMNS = 24  # beyond this the numbers no longer fit in the cells


def substituent_order(name: str) -> tuple[int, str]:
    return (ATOMIC_NUMBER.get(name, 1000), name)


def select(metrics, test_set: str):
    """Rows of one test set, models in table order, substituents by atomic number."""
    missing = set(COLUMNS) - set(metrics.columns)
    if missing:
        raise KeyError(f"metrics table lacks columns {sorted(missing)}")
    rows = metrics[metrics["test_set"] == test_set].copy()
    if rows.empty:
        found = sorted(set(metrics["test_set"]))
        raise ValueError(f"no rows for test set {test_set!r} (found {found})")
    rows["substituent"] = rows["substituent"].astype(str)
    models = list(dict.fromkeys(rows["model"]))
    rows["_model"] = rows["model"].map(models.index)
    rows["_sub"] = rows["substituent"].map(substituent_order)
    rows = rows.sort_values(["_model", "_sub"]).drop(columns=["_model", "_sub"])
    present = [c for c in OPTIONAL_COLUMNS if c in rows.columns]
    return rows[list(COLUMNS) + present].reset_index(drop=True)


def alignment_by_model(table) -> dict[str, str]:
    """Model -> ``raw``, ``aligned`` or the first ``not aligned: ...`` reason of its rows."""
    if "energy_alignment" not in table.columns:
        return {}
    result = {}
    for model, part in table.groupby("model", sort=False):
        statuses = [str(s) for s in part["energy_alignment"] if str(s) not in ("", "nan")]
        missing = [s for s in statuses if s.startswith("not aligned")]
        result[model] = missing[0] if missing else (statuses[0] if statuses else "")
    return result


def alignment_note(table) -> str:
    """Which models' energies are aligned across codes and which cells could not be."""
    statuses = alignment_by_model(table)
    if not statuses:
        return ""
    aligned = [m for m, s in statuses.items() if s == ALIGNED]
    parts = ["Energy MAE: raw where model and labels share a DFT code"]
    if aligned:
        parts.append(
            f"† aligned to the labels' code by per-element offsets "
            f"({paths.metric('energy_alignment')}): {', '.join(aligned)}"
        )
    missing = table[table["energy_alignment"].astype(str).str.startswith("not aligned")]
    if len(missing):
        cells = "; ".join(
            f"{r.model} / {r.substituent}: {r.energy_alignment}" for r in missing.itertuples()
        )
        parts.append(f"n/a (not aligned): {cells}")
    return ". ".join(parts) + ". "


def _short(substituent: str) -> str:
    return "vac." if substituent == "vacancy" else substituent


def _norm(values: np.ndarray):
    """Log colour scale when the errors span more than a factor of 10, else linear."""
    import matplotlib as mpl

    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if low > 0 and high / low > 10:
        return mpl.colors.LogNorm(low, high), True
    return mpl.colors.Normalize(min(low, 0.0), high if high > 0 else 1.0), False


def draw(table, title: str, note: str):
    """Two heat maps (energy and force MAE): models × substituents."""
    plt = apply_style()
    models = list(dict.fromkeys(table["model"]))
    subs = sorted(set(table["substituent"]), key=substituent_order)
    frames = table.groupby("substituent")["n_frames"].max()
    width = max(9.0, 0.42 * len(subs) + 0.09 * max(len(m) for m in models) + 2.5)
    height = 2 * (0.42 * len(models) + 1.6) + 1.0
    fig, axes = plt.subplots(2, 1, figsize=(width, height), layout="constrained")
    statuses = alignment_by_model(table)
    if "energy_alignment" in table.columns:
        not_aligned = table["energy_alignment"].astype(str).str.startswith("not aligned")
        blank = set(
            zip(table["model"][not_aligned], table["substituent"][not_aligned], strict=True)
        )
    else:
        blank = set()
    for ax, (column, label) in zip(axes, PANELS, strict=True):
        grid = table.pivot(index="model", columns="substituent", values=column)
        values = grid.reindex(index=models, columns=subs).to_numpy(dtype=float)
        norm, is_log = _norm(values)
        image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis", norm=norm)
        ax.set_xticks(range(len(subs)), [f"{_short(s)}\n({frames[s]})" for s in subs])
        energy = column == "energy_mae_ev_per_atom"
        names = [f"{m} †" if energy and statuses.get(m) == ALIGNED else m for m in models]
        ax.set_yticks(range(len(models)), names)
        if energy:
            for i, model in enumerate(models):
                for j, sub in enumerate(subs):
                    if (model, sub) in blank:
                        ax.text(j, i, "n/a", ha="center", va="center", fontsize=9, color="0.4")
        ax.set_xlabel("substituent (test frames); vac. = vacancy")
        ax.set_ylabel("model")
        ax.spines[:].set_visible(False)
        bar = fig.colorbar(image, ax=ax, pad=0.01)
        bar.set_label(label + (", log scale" if is_log else ""))
        ax.set_title(label)
        if len(subs) <= ANNOTATE_MAX_COLUMNS:
            for (i, j), value in np.ndenumerate(values):
                if np.isfinite(value):
                    dark = norm(value) < 0.55
                    ax.text(
                        j,
                        i,
                        f"{value:.3g}",
                        ha="center",
                        va="center",
                        fontsize=9.5,
                        color="white" if dark else "black",
                    )
    fig.suptitle(title, fontsize=13)
    add_source_note(fig, note)
    return fig


def run(args) -> None:
    import pandas as pd

    settings = load_settings(args.settings)
    table = select(pd.read_csv(args.metrics, keep_default_na=False, na_values=[""]), args.test_set)
    title = f"Errors per substituent on the {args.dataset_name} test set"
    note = (
        alignment_note(table)
        + f"Data: {args.metrics} (test set {args.test_set}). Run: {settings['run_label']}"
    )
    write_figure(draw(table, title, note), args.out, table)
    log.info("per-substituent errors:\n%s", table.to_string(index=False))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", required=True, help="the per-substituent metric table (CSV)")
    parser.add_argument("--test-set", default="perovs_dopants")
    parser.add_argument("--settings", required=True, help="the analysis settings (JSON)")
    parser.add_argument("--dataset-name", required=True, help="shown in the title")
    parser.add_argument("--out", required=True, help="PNG; the CSV is written beside it")
    return run_cli(parser, argv, run)


if __name__ == "__main__":
    sys.exit(main())
