"""Shared by the analysis CLIs: settings, figure style, writing a figure with its table."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from workflow_scripts.config import SCHEMA_DIR, validate_schema

# Colours of the data sets, the same in every figure.
DATASET_COLOURS = {
    "mptrj": "#4C72B0",
    "mptrj_embedding_sample": "#4C72B0",
    "omat24": "#55A868",
    "perovs_dopants": "#C44E52",
    "perovs_dopants_initial": "#C44E52",
}


def load_settings(path: Path | str) -> dict:
    """The ``analysis`` section from its settings file, defaults filled in.

    ``run_label`` is kept; a missing key takes the schema default, so tests can pass
    partial settings.
    """
    raw = json.loads(Path(path).read_text())
    run_label = raw.pop("run_label", "")
    schema = yaml.safe_load((SCHEMA_DIR / "analysis.schema.yaml").read_text())
    settings = validate_schema(raw, schema)
    settings["run_label"] = run_label
    return settings


def keyed_files(values: list[str] | None, flag: str) -> dict[tuple[str, str], Path]:
    """``MODEL/DATASET=FILE`` arguments of a repeated flag as {(model, data set): file}."""
    files = {}
    for key, path in parse_pairs(values, flag).items():
        model, sep, dataset = key.rpartition("/")
        if not sep:
            raise SystemExit(f"{flag}: expected MODEL/DATASET=FILE, got {key}={path}")
        files[model, dataset] = Path(path)
    return files


def keyed_file(files: dict[tuple[str, str], Path], model: str, dataset: str, flag: str) -> Path:
    """The file of (model, data set), or a stop naming the flag that lacks it."""
    try:
        return files[model, dataset]
    except KeyError:
        raise SystemExit(f"{flag}: no file for {model}/{dataset}") from None


def files_folder(files: dict[tuple[str, str], Path]) -> str:
    """The folder that holds the per-model folders of ``files`` (for figure notes)."""
    return ", ".join(sorted({str(path.parents[1]) for path in files.values()}))


def parse_pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    """``["a=x", "b=y"]`` from a repeated CLI flag as ``{"a": "x", "b": "y"}``, in order."""
    pairs = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag}: expected KEY=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


def apply_style():
    """Matplotlib (Agg) with fonts that stay readable when the PNG is shown at 100 %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 10,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "savefig.bbox": "tight",
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def add_source_note(fig, text: str, fontsize: float = 9.5) -> None:
    """A grey note at the bottom of the figure naming the data it was drawn from.

    It is the figure's ``supxlabel``, so a constrained layout keeps room for it.
    """
    import textwrap

    width = int(fig.get_figwidth() * 72 / (0.62 * fontsize))  # characters per line
    fig.supxlabel(textwrap.fill(text, width), fontsize=fontsize, color="0.25")


def write_figure(fig, png: Path | str, table) -> Path:
    """Save ``fig`` as ``png`` and ``table`` (a DataFrame) as the CSV beside it."""
    import matplotlib.pyplot as plt

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    csv = png.with_suffix(".csv")
    table.to_csv(csv, index=False)
    return csv


def read_frames(path: Path | str) -> list:
    """Every frame of an extxyz file (ASE Atoms, labels in ``info``/``arrays``)."""
    import ase.io

    return ase.io.read(str(path), index=":", format="extxyz")
