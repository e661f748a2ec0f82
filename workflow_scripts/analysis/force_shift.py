"""DFT-code shift: forces of MPtrj structures from VASP (MPtrj), CP2K and the foundation model.

    python -m workflow_scripts.analysis.force_shift density \
        --reference reference/MPtrj/cp2k_subset.extxyz \
        --predictions predictions/MACE-MP-0b3/mptrj_cp2k_subset.extxyz \
        --settings analysis.json --dataset-name MPtrj --model-name MACE-MP-0b3 \
        --out figures/force_shift_density.png
    python -m workflow_scripts.analysis.force_shift periodic-table \
        --reference reference/MPtrj/cp2k_subset.extxyz \
        --settings analysis.json --dataset-name MPtrj \
        --out figures/force_shift_periodic_table.png

The reference file holds the CP2K labels as ``REF_forces`` and MPtrj's own (VASP) labels as
``VASP_forces``; the predictions file adds ``MACE_forces`` to the same frames. Differences are
per Cartesian component (density plot, Fig. 1) or per atom as the length of the difference
vector |F_VASP - F_CP2K| (periodic table, Fig. A1). Each figure writes its CSV beside it; the
density plot also writes ``<name>_summary.csv`` (mean, MAE, RMSE of each difference).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.analysis.common import (
    add_source_note,
    apply_style,
    load_settings,
    read_frames,
    write_figure,
)
from workflow_scripts.analysis.periodic_table import (
    HUBBARD_U_RULE,
    elements_with_u,
    table_position,
)
from workflow_scripts.cli import run_cli
from workflow_scripts.elements import ATOMIC_NUMBER

log = logging.getLogger(__name__)

CP2K_KEY = "REF_forces"
VASP_KEY = "VASP_forces"
MODEL_KEY = "MACE_forces"


@dataclass
class ForceSet:
    """Per-atom forces (eV/Å) of the same atoms from each source, stacked over frames."""

    symbols: np.ndarray  # (n_atoms,) element symbols
    carries_u: np.ndarray  # (n_atoms,) bool: this atom had a Hubbard U in MPtrj
    vasp: np.ndarray  # (n_atoms, 3)
    cp2k: np.ndarray  # (n_atoms, 3)
    model: np.ndarray | None  # (n_atoms, 3) or None when no predictions were given
    n_frames: int


def _array(atoms, key: str, path: Path, index: int) -> np.ndarray:
    if key not in atoms.arrays:
        raise KeyError(f"{path}: frame {index} has no per-atom array {key!r}")
    return np.asarray(atoms.arrays[key], dtype=float)


def load_forces(reference: Path, predictions: Path | None = None) -> ForceSet:
    """Forces of every atom of the CP2K subset; predictions must hold the same frames."""
    frames = read_frames(reference)
    predicted = read_frames(predictions) if predictions is not None else None
    if predicted is not None and len(predicted) != len(frames):
        raise ValueError(
            f"{predictions} has {len(predicted)} frames, {reference} has {len(frames)}"
        )
    symbols, carries_u, vasp, cp2k, model = [], [], [], [], []
    for index, atoms in enumerate(frames):
        frame_symbols = atoms.get_chemical_symbols()
        with_u = elements_with_u(frame_symbols)
        symbols.extend(frame_symbols)
        carries_u.extend(symbol in with_u for symbol in frame_symbols)
        vasp.append(_array(atoms, VASP_KEY, reference, index))
        cp2k.append(_array(atoms, CP2K_KEY, reference, index))
        if predicted is not None:
            other = predicted[index]
            same = len(other) == len(atoms) and np.array_equal(other.numbers, atoms.numbers)
            if not same or not np.allclose(other.positions, atoms.positions, atol=1e-6):
                raise ValueError(f"frame {index} differs between {reference} and {predictions}")
            model.append(_array(other, MODEL_KEY, predictions, index))
    if not frames:
        raise ValueError(f"{reference}: no frames")
    return ForceSet(
        symbols=np.array(symbols),
        carries_u=np.array(carries_u, dtype=bool),
        vasp=np.concatenate(vasp),
        cp2k=np.concatenate(cp2k),
        model=np.concatenate(model) if model else None,
        n_frames=len(frames),
    )


def component_series(forces: ForceSet, label_source: str = "VASP", model_name: str = "model"):
    """Name -> flattened force components (eV/Å): the label source's forces and the three
    pairwise differences (first minus second)."""
    series = {
        f"{label_source} force": forces.vasp.ravel(),
        f"{label_source} - CP2K": (forces.vasp - forces.cp2k).ravel(),
    }
    if forces.model is not None:
        series[f"{label_source} - {model_name}"] = (forces.vasp - forces.model).ravel()
        series[f"CP2K - {model_name}"] = (forces.cp2k - forces.model).ravel()
    return series


def plot_limit(values: list[np.ndarray], quantile: float) -> float:
    """Half-width of a symmetric axis that holds ``quantile`` of all |values|."""
    limit = float(np.quantile(np.abs(np.concatenate(values)), quantile))
    return limit if limit > 0 else 1.0


def histogram_table(series: dict[str, np.ndarray], bins: int, limits: dict[str, float]):
    """Long table: series, bin edges, count and density (count / (all values × width))."""
    import pandas as pd

    rows = []
    for name, values in series.items():
        edges = np.linspace(-limits[name], limits[name], bins + 1)
        counts, _ = np.histogram(values, bins=edges)
        density = counts / (len(values) * np.diff(edges))
        rows.append(
            pd.DataFrame(
                {
                    "series": name,
                    "bin_left_ev_per_a": edges[:-1],
                    "bin_right_ev_per_a": edges[1:],
                    "count": counts,
                    "density_per_ev_per_a": density,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def summary_table(series: dict[str, np.ndarray], limits: dict[str, float]):
    """Mean, MAE, RMSE and largest |value| of each series (eV/Å), and what lies off the plot."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "series": name,
                "n_components": len(values),
                "mean_ev_per_a": float(np.mean(values)),
                "mae_ev_per_a": float(np.mean(np.abs(values))),
                "rmse_ev_per_a": float(np.sqrt(np.mean(values**2))),
                "max_abs_ev_per_a": float(np.max(np.abs(values))),
                "n_outside_plot": int(np.sum(np.abs(values) > limits[name])),
            }
            for name, values in series.items()
        ]
    )


def per_element_table(forces: ForceSet):
    """Per element: atoms, mean |F_VASP − F_CP2K| (length of the difference vector, eV/Å),
    atoms that carried a Hubbard U in MPtrj, and the element's periodic-table cell."""
    import pandas as pd

    norms = np.linalg.norm(forces.vasp - forces.cp2k, axis=1)
    rows = []
    for symbol in sorted(set(forces.symbols), key=ATOMIC_NUMBER.__getitem__):
        mask = forces.symbols == symbol
        row, column = table_position(symbol)
        n_with_u = int(np.sum(forces.carries_u[mask]))
        rows.append(
            {
                "element": symbol,
                "atomic_number": ATOMIC_NUMBER[symbol],
                "n_atoms": int(mask.sum()),
                "mean_abs_force_diff_ev_per_a": float(norms[mask].mean()),
                "n_atoms_with_u": n_with_u,
                "carries_hubbard_u": n_with_u > 0,
                "table_row": row,
                "table_column": column,
            }
        )
    return pd.DataFrame(rows)


# --- figures -----------------------------------------------------------------------------


def draw_density(histograms, summary, title: str, note: str, label_source: str):
    """Fig. 1: the label source's force distribution on top, the differences below."""
    plt = apply_style()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8.5, 8.5), gridspec_kw={"height_ratios": [1, 2]}, layout="constrained"
    )
    names = list(dict.fromkeys(histograms["series"]))
    stats = summary.set_index("series")
    colours = ["#4C72B0", "#C44E52", "#DD8452", "#55A868"]
    for name, colour in zip(names, colours, strict=False):
        part = histograms[histograms["series"] == name]
        centres = (part["bin_left_ev_per_a"] + part["bin_right_ev_per_a"]) / 2
        if name == names[0]:
            top.fill_between(
                centres,
                part["density_per_ev_per_a"],
                step="mid",
                color=colour,
                alpha=0.6,
                label=f"{name} components",
            )
            continue
        row = stats.loc[name]
        label = (
            f"{name}: mean {row['mean_ev_per_a']:+.3f}, MAE {row['mae_ev_per_a']:.3f}, "
            f"RMSE {row['rmse_ev_per_a']:.3f}"
        )
        bottom.step(
            centres, part["density_per_ev_per_a"], where="mid", color=colour, lw=1.8, label=label
        )
    top.set_xlabel(f"{label_source} force component $F$ (eV/Å)")
    top.set_ylabel("density (1/(eV/Å))")
    top.set_yscale("log")
    top.set_ylim(top=top.get_ylim()[1] * 6)  # headroom for the legend
    top.legend(loc="upper right")
    bottom.set_xlabel("force component difference $\\Delta F$ (eV/Å)")
    bottom.set_ylabel("density (1/(eV/Å))")
    bottom.set_yscale("log")
    bottom.axvline(0, color="0.5", lw=0.8, ls=":")
    bottom.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), title="difference (eV/Å)")
    fig.suptitle(title)
    add_source_note(fig, note)
    return fig


_U_COLOUR = "#1F3B99"


def _element_cell(ax, symbol, y, column, values, norm, cmap) -> None:
    """One element's cell: coloured by its mean |ΔF|, outlined when it carries a Hubbard U."""
    from matplotlib.patches import Rectangle

    has_data = symbol in values.index
    value = values.loc[symbol, "mean_abs_force_diff_ev_per_a"] if has_data else None
    face = cmap(norm(value)) if has_data else "#F2F2F2"
    with_u = has_data and bool(values.loc[symbol, "carries_hubbard_u"])
    ax.add_patch(
        Rectangle(
            (column - 0.46, y - 0.46),
            0.92,
            0.92,
            facecolor=face,
            edgecolor=_U_COLOUR if with_u else "0.6",
            lw=3.2 if with_u else 0.6,
        )
    )
    dark = has_data and norm(value) > 0.6
    text_colour = "white" if dark else ("black" if has_data else "0.6")
    weight = "bold" if has_data else "normal"
    ax.text(
        column, y - 0.16, symbol, ha="center", va="center", fontsize=12, fontweight=weight,
        color=text_colour,
    )  # fmt: skip
    if has_data:
        ax.text(
            column, y + 0.2, f"{value:.3g}", ha="center", va="center", fontsize=9.5,
            color=text_colour,
        )  # fmt: skip


def draw_periodic_table(table, title: str, note: str, label_source: str = "VASP"):
    """Fig. A1: mean |ΔF| per element, cells of elements with a Hubbard U outlined."""
    import matplotlib as mpl
    from matplotlib.patches import Rectangle

    from workflow_scripts.analysis.periodic_table import all_positions

    plt = apply_style()
    fig, ax = plt.subplots(figsize=(15, 9.0), layout="constrained")
    values = table.set_index("element")
    vmax = float(values["mean_abs_force_diff_ev_per_a"].max()) or 1.0
    norm = mpl.colors.Normalize(vmin=0.0, vmax=vmax)
    cmap = mpl.colormaps["YlOrRd"]
    for symbol, (row, column) in all_positions().items():
        y = row - 0.5 if row > 7 else row  # f-block rows closer to the main table
        _element_cell(ax, symbol, y, column, values, norm, cmap)
    ax.set_xlim(0.45, 18.55)
    ax.set_ylim(10.0, 0.45)
    ax.set_aspect("equal")
    ax.axis("off")
    # colour bar and legend sit in the empty block above the transition metals (x 2.5-12.5)
    bar_ax = ax.inset_axes([3.0, 0.7, 9.0, 0.3], transform=ax.transData)
    bar = fig.colorbar(
        mpl.cm.ScalarMappable(norm=norm, cmap=cmap), cax=bar_ax, orientation="horizontal"
    )
    bar.set_label(f"mean |F({label_source}) − F(CP2K)| per atom (eV/Å)", fontsize=11)
    ax.add_patch(Rectangle((3.0, 2.0), 0.45, 0.45, facecolor="white", edgecolor=_U_COLOUR, lw=3.2))
    ax.text(
        3.65,
        2.22,
        "element carries a Hubbard U (PBE+U) in some of these frames;\n"
        "CP2K here is plain PBE. Grey cells: element not in the data.",
        va="center",
        fontsize=10.5,
    )
    ax.text(3.0, 3.1, HUBBARD_U_RULE, fontsize=10, color="0.3", va="center")
    ax.set_title(title, fontsize=13)
    add_source_note(fig, note)
    return fig


# --- CLI -----------------------------------------------------------------------------------


def _source_note(args, settings: dict, forces: ForceSet) -> str:
    labels = (
        "MPtrj's VASP labels: PBE/PBE+U"
        if args.label_source == "VASP"
        else (f"{args.label_source}s stand in for VASP")
    )
    return (
        f"Data: {args.dataset_name}, {forces.n_frames} structures, {len(forces.symbols)} atoms "
        f"({args.reference}); CP2K here: plain PBE; {labels}. Run: {settings['run_label']}"
    )


def run_density(args) -> None:
    settings = load_settings(args.settings)
    forces = load_forces(Path(args.reference), Path(args.predictions))
    series = component_series(forces, args.label_source, args.model_name)
    quantile = settings["force_shift"]["range_quantile"]
    force_name, *differences = series
    limits = {force_name: plot_limit([series[force_name]], quantile)}
    shared = plot_limit([series[name] for name in differences], quantile)
    limits.update({name: shared for name in differences})
    histograms = histogram_table(series, settings["force_shift"]["bins"], limits)
    summary = summary_table(series, limits)
    title = (
        f"Force components on {args.dataset_name}: {args.label_source}, CP2K and {args.model_name}"
    )
    fig = draw_density(
        histograms, summary, title, _source_note(args, settings, forces), args.label_source
    )
    write_figure(fig, args.out, histograms)
    summary.to_csv(Path(args.out).with_name(Path(args.out).stem + "_summary.csv"), index=False)
    log.info("force shift:\n%s", summary.to_string(index=False))


def run_periodic_table(args) -> None:
    settings = load_settings(args.settings)
    forces = load_forces(Path(args.reference))
    table = per_element_table(forces)
    title = (
        f"Mean force difference {args.label_source} − CP2K per element, "
        f"{args.dataset_name} ({forces.n_frames} structures)"
    )
    fig = draw_periodic_table(table, title, _source_note(args, settings, forces), args.label_source)
    write_figure(fig, args.out, table)
    log.info("per-element force shift:\n%s", table.to_string(index=False))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("density", run_density, "Fig. 1: force-difference densities"),
        ("periodic-table", run_periodic_table, "Fig. A1: mean |ΔF| per element"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--reference", required=True, help="cp2k_subset.extxyz")
        if name == "density":
            cmd.add_argument("--predictions", required=True, help="foundation model predictions")
            cmd.add_argument("--model-name", required=True, help="shown in labels")
        cmd.add_argument("--settings", required=True, help="the analysis settings (JSON)")
        cmd.add_argument("--dataset-name", required=True, help="e.g. MPtrj or MPtrj-stand-in")
        cmd.add_argument(
            "--label-source", default="VASP", help="who made the VASP_* labels (legend text)"
        )
        cmd.add_argument("--out", required=True, help="PNG; the CSV is written beside it")
        cmd.set_defaults(func=func)
    return run_cli(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
