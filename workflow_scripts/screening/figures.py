"""Screening figures: DFT formation energies (host x substituent per site) and the parity of
every model's formation energies against DFT's.

    python -m workflow_scripts.screening.figures heatmap --formation F.csv --out X.png
    python -m workflow_scripts.screening.figures parity --values V.csv --out Y.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from workflow_scripts.analysis.common import add_source_note, apply_style, write_figure
from workflow_scripts.screening.formation import ELEMENT_RICH


def heatmap(formation, limit: str, note: str):
    """One panel per site: hosts x substituents, E_f (eV) at ``limit``."""
    plt = apply_style()
    rows = formation[formation["limit"] == limit]
    sites = sorted(rows["site"].unique())
    fig, axes = plt.subplots(
        1, len(sites), figsize=(4.2 * len(sites) + 1, 3.6), layout="constrained", squeeze=False
    )
    table = rows.pivot_table(
        index="host", columns=["site", "substituent"], values="formation_energy_ev"
    )
    vmin, vmax = float(rows["formation_energy_ev"].min()), float(rows["formation_energy_ev"].max())
    image = None
    for ax, site in zip(axes[0], sites, strict=True):
        part = rows[rows["site"] == site].pivot_table(
            index="host", columns="substituent", values="formation_energy_ev"
        )
        image = ax.imshow(part.to_numpy(), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(part.shape[1]), part.columns)
        ax.set_yticks(range(part.shape[0]), part.index)
        ax.set_title(f"site {site}")
        for (i, j), value in np.ndenumerate(part.to_numpy()):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label=f"E_f (eV), {limit}")
    add_source_note(fig, note)
    flat = table.copy()
    flat.columns = [f"{site}:{sub}" for site, sub in flat.columns]
    return fig, flat.reset_index()


def parity(values, note: str):
    """E_f(model) against E_f(DFT), model-relaxed, every limit; held-out dopants filled."""
    plt = apply_style()
    rows = values[values["mode"] == "relaxed"]
    models = list(dict.fromkeys(rows["model"]))
    fig, ax = plt.subplots(figsize=(6.4, 5.6), layout="constrained")
    colours = plt.get_cmap("tab10")
    for index, model in enumerate(models):
        part = rows[rows["model"] == model]
        held = part["held_out"].astype(bool)
        colour = colours(index % 10)
        ax.scatter(part.loc[~held, "ef_dft"], part.loc[~held, "ef_model"], s=28,
                   facecolors="none", edgecolors=colour, label=f"{model}")  # fmt: skip
        ax.scatter(part.loc[held, "ef_dft"], part.loc[held, "ef_model"], s=28, color=colour)
    low = float(min(rows["ef_dft"].min(), rows["ef_model"].min()))
    high = float(max(rows["ef_dft"].max(), rows["ef_model"].max()))
    ax.plot([low, high], [low, high], color="grey", lw=1)
    ax.set_xlabel("E_f, DFT (eV)")
    ax.set_ylabel("E_f, model-relaxed (eV)")
    ax.legend(fontsize=8, title="open: in-sample, filled: held-out", title_fontsize=8)
    add_source_note(fig, note)
    return fig, rows[["model", "host", "defect", "limit", "held_out", "ef_dft", "ef_model"]]


def main(argv=None) -> int:
    import pandas as pd

    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.screening.figures")
    parser.add_argument("figure", choices=["heatmap", "parity"])
    parser.add_argument("--table", required=True, type=Path, help="formation or values CSV")
    parser.add_argument("--run-label", default="")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    table = pd.read_csv(args.table)
    note = f"Data: {args.table}. Run: {args.run_label}"
    if args.figure == "heatmap":
        fig, data = heatmap(table, ELEMENT_RICH, note)
    else:
        fig, data = parity(table, note)
    write_figure(fig, args.out, data)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
