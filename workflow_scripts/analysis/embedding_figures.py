"""The embedding figures: t-SNE and PHATE maps coloured by data set, PHATE coloured by |energy
error|, and the dataset-coverage t-SNE (the numbers come from :mod:`.embeddings`).
"""

from __future__ import annotations

import logging

import numpy as np

from workflow_scripts.analysis.common import (
    DATASET_COLOURS,
    add_source_note,
    apply_style,
)

log = logging.getLogger(__name__)

ROLE_TITLES = {
    "pretrained": "pretrained",
    "standard": "standard finetuning",
    "multihead": "multihead finetuning",
}


# --- figures -----------------------------------------------------------------------------


def dataset_styles(keys: list[str]) -> dict[str, dict]:
    """Colour and marker per data set: diamonds for the last one (Perovs-Dopants), drawn on
    top, dots for the others."""
    fallback = ["#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
    return {
        key: {
            "color": DATASET_COLOURS.get(key, fallback[index % len(fallback)]),
            "marker": "D" if index == len(keys) - 1 else "o",
        }
        for index, key in enumerate(keys)
    }


def _scatter_by_dataset(ax, part, x, y, styles, faded=False):
    """Points of each data set of ``part`` in its style, in the order of ``styles``."""
    for key, style in styles.items():
        points = part[part["dataset_key"] == key]
        if len(points):
            size = 14 if style["marker"] == "D" else 8
            ax.scatter(
                points[x], points[y], s=size, alpha=0.25 if faded else 0.6, linewidths=0, **style
            )


def _legend(fig_or_ax, table, styles, **kwargs):
    """One entry per data set: its name and number of structures."""
    from matplotlib.lines import Line2D

    first_model = table[table["model"] == table["model"].iloc[0]]
    handles, labels = [], []
    for key, style in styles.items():
        points = first_model[first_model["dataset_key"] == key]
        handles.append(Line2D([], [], ls="", markersize=8, **style))
        labels.append(f"{points['dataset'].iloc[0]} (n = {len(points)})")
    return fig_or_ax.legend(handles, labels, **kwargs)


def energy_error_scale(errors):
    """Colour scale of the energy errors: 0 to the largest error (eV/atom), ``plasma``."""
    import matplotlib as mpl

    errors = np.asarray(errors, dtype=float)
    errors = errors[np.isfinite(errors)]
    norm = mpl.colors.Normalize(0.0, float(errors.max()) if len(errors) else 1.0)
    return norm, mpl.colormaps["plasma"]


def draw_energy_errors(ax, x, y, errors, norm, cmap) -> None:
    """Points at (x, y) as diamonds coloured by their energy error (eV/atom)."""
    ax.scatter(
        x,
        y,
        s=18,
        marker="D",
        c=np.asarray(errors, dtype=float),
        cmap=cmap,
        norm=norm,
        edgecolors="black",
        linewidths=0.3,
    )


def _label_axes(ax, method: str) -> None:
    import matplotlib as mpl

    ax.set_xlabel(f"{method} 1 (unitless)")
    ax.set_ylabel(f"{method} 2 (unitless)")
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(5))


def draw_maps(table, error_dataset: str, title: str, note: str):
    """Fig. 2: t-SNE (top) and PHATE (bottom), one column per model."""
    import matplotlib as mpl

    plt = apply_style()
    roles = list(dict.fromkeys(table["model_role"]))
    styles = dataset_styles(list(dict.fromkeys(table["dataset_key"])))
    others = {key: style for key, style in styles.items() if key != error_dataset}
    fig, axes = plt.subplots(
        2, len(roles), figsize=(5.2 * len(roles) + 1.2, 10.5), squeeze=False, layout="constrained"
    )
    errors = table["energy_error_ev_per_atom"].dropna()
    norm, cmap = energy_error_scale(errors)
    for column, role in enumerate(roles):
        part = table[table["model_role"] == role]
        tsne_ax, phate_ax = axes[0, column], axes[1, column]
        _scatter_by_dataset(tsne_ax, part, "tsne_1", "tsne_2", styles)
        tsne_ax.set_title(f"{ROLE_TITLES.get(role, role)}\n{part['model'].iloc[0]}")
        _label_axes(tsne_ax, "t-SNE")
        with_errors = part[part["energy_error_ev_per_atom"].notna()]
        if len(with_errors):
            _scatter_by_dataset(phate_ax, part, "phate_1", "phate_2", others, faded=True)
            draw_energy_errors(
                phate_ax,
                with_errors["phate_1"],
                with_errors["phate_2"],
                with_errors["energy_error_ev_per_atom"],
                norm,
                cmap,
            )
            name = with_errors["dataset"].iloc[0]
            phate_ax.set_title(f"PHATE, {name} coloured by |energy error|", fontsize=10.5)
        else:
            _scatter_by_dataset(phate_ax, part, "phate_1", "phate_2", styles)
            phate_ax.set_title("PHATE, coloured by data set", fontsize=10.5)
        _label_axes(phate_ax, "PHATE")
    if len(errors):
        bar = fig.colorbar(
            mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[1, :], shrink=0.9, pad=0.01
        )
        bar.set_label("|energy error| (eV/atom)")
    # the legend, titled with the figure title, stands in for a suptitle (they would overlap)
    _legend(
        fig,
        table,
        styles,
        loc="outside upper center",
        ncol=len(styles),
        title=title,
        title_fontsize=13,
        frameon=False,
    )
    add_source_note(fig, note)
    return fig


def draw_coverage(table, title: str, note: str):
    """Fig. 3b: one t-SNE map coloured by data set."""
    plt = apply_style()
    styles = dataset_styles(list(dict.fromkeys(table["dataset_key"])))
    fig, ax = plt.subplots(figsize=(7.5, 7.0), layout="constrained")
    _scatter_by_dataset(ax, table, "tsne_1", "tsne_2", styles)
    _legend(ax, table, styles, loc="best")
    _label_axes(ax, "t-SNE")
    ax.set_title(title)
    add_source_note(fig, note)
    return fig
