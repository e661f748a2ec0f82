"""Embedding maps: per-structure mean MACE descriptors drawn with t-SNE and PHATE.

    python -m workflow_scripts.analysis.embeddings sample \
        --pool reference/MPtrj/pool.extxyz --size 10000 --seed 0 \
        --out analysis/MPtrj/embedding_sample.extxyz
    python -m workflow_scripts.analysis.embeddings initial \
        --out analysis/Perovs-Dopants/initial_structures.extxyz \
        trajectories/SrTiO3/sub_Fe_on_B.extxyz ...
    python -m workflow_scripts.analysis.embeddings maps --settings analysis.json \
        --model pretrained=MACE-MP-0b3 --model standard=ft-dopants-standard \
        --model multihead=ft-dopants-multihead \
        --dataset mptrj_embedding_sample=MPtrj --dataset omat24=OMat24 \
        --dataset "perovs_dopants_initial=Perovs-Dopants (initial structures)" \
        --error-dataset perovs_dopants_initial --error-role standard --error-role multihead \
        --descriptor MACE-MP-0b3/omat24=descriptors/MACE-MP-0b3/omat24.npy ... \
        --prediction ft-dopants-standard/perovs_dopants_initial=PREDICTIONS.extxyz ... \
        --out figures/embedding_maps.png
    python -m workflow_scripts.analysis.embeddings coverage --settings ... --model MACE-MP-0b3 \
        --dataset mptrj_embedding_sample=MPtrj --dataset perovs_dopants=Perovs-Dopants \
        --descriptor MACE-MP-0b3/perovs_dopants=D.npy ... --out figures/dataset_coverage_tsne.png

Descriptors are the ``--descriptor`` files, one per model and data set (one row per frame of
the data set, in file order); energy errors come from the ``--prediction`` files
(``MACE_energy`` against ``REF_energy``, eV/atom). ``maps`` draws t-SNE (top) and PHATE
(bottom) per model, coloured by data set; the PHATE maps of the ``--error-role`` models
(default: every model but the ``pretrained`` one) colour the error data set's points by
|energy error| (Fig. 2). ``initial`` writes the initial structure (ionic step 0) of every
Perovs-Dopants trajectory, the structures Fig. 2 draws.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from workflow_scripts.analysis.common import (
    files_folder,
    keyed_file,
    keyed_files,
    load_settings,
    parse_pairs,
    read_frames,
    write_figure,
)
from workflow_scripts.analysis.embedding_figures import draw_coverage, draw_maps
from workflow_scripts.analysis.structure_sets import initial_frames, sample_frames
from workflow_scripts.cli import run_cli

log = logging.getLogger(__name__)


# --- descriptors, errors, projections ------------------------------------------------------


def load_descriptors(files: dict, model: str, dataset: str) -> np.ndarray:
    """The (structures, features) matrix of one model on one data set, from ``files``
    ({(model, data set): .npy file})."""
    path = keyed_file(files, model, dataset, "--descriptor")
    matrix = np.load(path)
    if matrix.ndim != 2 or len(matrix) == 0:
        raise ValueError(f"{path}: expected a non-empty (structures, features) matrix")
    return matrix.astype(np.float64)


def energy_errors(
    path: Path, model_scale: str | None = None, label_scale: str | None = None, fit=None
) -> tuple[np.ndarray, list[str]]:
    """|MACE_energy − REF_energy| per atom (eV/atom) and the substituent of every frame.

    When the model predicts on another DFT code's scale than the labels (``model_scale`` !=
    ``label_scale``), the prediction is aligned first with the per-element offsets of ``fit``
    (:mod:`.energy_alignment`); a frame the fit cannot align gets NaN (drawn uncoloured),
    never a raw cross-code error."""
    from workflow_scripts.analysis import energy_alignment

    frames = read_frames(path)
    for index, atoms in enumerate(frames):
        if "MACE_energy" not in atoms.info or "REF_energy" not in atoms.info:
            raise KeyError(f"{path}: frame {index} lacks MACE_energy or REF_energy")
    shifts, status = [0.0] * len(frames), energy_alignment.RAW
    if model_scale is not None and label_scale is not None:
        symbols = [atoms.get_chemical_symbols() for atoms in frames]
        shifts, status = energy_alignment.alignment_status(symbols, model_scale, label_scale, fit)
        if status != energy_alignment.RAW:
            log.info("%s: energies %s (%s -> %s)", path, status, model_scale, label_scale)
    _, errors = energy_alignment.aligned_energy_errors(
        [atoms.info["MACE_energy"] for atoms in frames],
        [atoms.info["REF_energy"] for atoms in frames],
        [len(atoms) for atoms in frames],
        shifts,
    )
    substituents = [str(atoms.info.get("substituent", "")) for atoms in frames]
    return errors, substituents


def tsne_map(points: np.ndarray, settings: dict, seed: int, threads: int = 1) -> np.ndarray:
    """2-d t-SNE after PCA to ``pca_components``; perplexity capped at (n − 1) / 3."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(points)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 structures, got {n}")
    components = min(settings["pca_components"], points.shape[1], n)
    if components < points.shape[1]:
        points = PCA(n_components=components, random_state=seed).fit_transform(points)
    perplexity = min(float(settings["perplexity"]), (n - 1) / 3)
    return TSNE(
        n_components=2,
        perplexity=perplexity,
        max_iter=settings["max_iter"],
        init="pca",
        random_state=seed,
        n_jobs=threads,
    ).fit_transform(points)


def phate_map(points: np.ndarray, settings: dict, seed: int, threads: int = 1) -> np.ndarray:
    """2-d PHATE; knn capped at n − 2 for tiny data sets."""
    import phate

    n = len(points)
    if n < 4:
        raise ValueError(f"PHATE needs at least 4 structures, got {n}")
    n_pca = min(100, n - 1) if points.shape[1] > 100 else None
    operator = phate.PHATE(
        n_components=2,
        knn=min(settings["knn"], n - 2),
        decay=settings["decay"],
        n_pca=n_pca,
        random_state=seed,
        n_jobs=threads,
        verbose=0,
    )
    return np.asarray(operator.fit_transform(points))


def _stack(descriptors: dict, model: str, datasets: dict[str, str]):
    """Descriptors of every data set for one model, and the row ranges of each data set."""
    blocks = [load_descriptors(descriptors, model, key) for key in datasets]
    widths = {block.shape[1] for block in blocks}
    if len(widths) != 1:
        raise ValueError(f"descriptors of {model} differ in width across data sets: {widths}")
    return np.concatenate(blocks), [len(block) for block in blocks]


def _rows(role, model, datasets, sizes):
    """Identifying columns of the points of one model, in stacking order."""
    import pandas as pd

    parts = []
    for (key, name), size in zip(datasets.items(), sizes, strict=True):
        parts.append(
            pd.DataFrame(
                {
                    "model_role": role,
                    "model": model,
                    "dataset_key": key,
                    "dataset": name,
                    "frame_index": np.arange(size),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def embedding_table(
    models: dict[str, str],
    datasets: dict[str, str],
    error_dataset: str,
    descriptors: dict,
    predictions: dict | None,
    settings: dict,
    threads: int = 1,
    error_roles=None,
    energy_scales: dict[str, str] | None = None,
    fit=None,
):
    """One row per (model, structure): t-SNE and PHATE coordinates and the energy error (of
    the models in ``error_roles``; default every role but ``pretrained``). ``energy_scales``:
    model -> DFT-code scale of its energies; with ``fit`` the errors of a model on another
    code's scale than the error data set are aligned (:func:`energy_errors`)."""
    import pandas as pd

    from workflow_scripts.analysis import energy_alignment

    if error_roles is None:
        error_roles = [role for role in models if role != "pretrained"]
    tables = []
    for role, model in models.items():
        points, sizes = _stack(descriptors, model, datasets)
        table = _rows(role, model, datasets, sizes)
        table["energy_error_ev_per_atom"] = np.nan
        table["substituent"] = ""
        if role in error_roles and predictions is not None:
            path = keyed_file(predictions, model, error_dataset, "--prediction")
            model_scale = (energy_scales or {}).get(model)
            label_scale = energy_alignment.LABEL_SCALES.get(error_dataset)
            errors, substituents = energy_errors(path, model_scale, label_scale, fit)
            rows = table.index[table["dataset_key"] == error_dataset]
            if len(rows) != len(errors):
                raise ValueError(f"{path}: {len(errors)} frames but {len(rows)} descriptor rows")
            table.loc[rows, "energy_error_ev_per_atom"] = errors
            table.loc[rows, "substituent"] = substituents
        seed = settings["seed"]
        tsne = tsne_map(points, settings["tsne"], seed, threads)
        phate = phate_map(points, settings["phate"], seed, threads)
        table.insert(5, "tsne_1", tsne[:, 0])
        table.insert(6, "tsne_2", tsne[:, 1])
        table.insert(7, "phate_1", phate[:, 0])
        table.insert(8, "phate_2", phate[:, 1])
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def coverage_table(
    model: str, datasets: dict[str, str], descriptors: dict, settings: dict, threads: int = 1
):
    """t-SNE of one model's descriptors of the given data sets (Fig. 3b)."""
    points, sizes = _stack(descriptors, model, datasets)
    table = _rows("pretrained", model, datasets, sizes)
    tsne = tsne_map(points, settings["tsne"], settings["seed"], threads)
    table["tsne_1"], table["tsne_2"] = tsne[:, 0], tsne[:, 1]
    return table


# --- CLI -----------------------------------------------------------------------------------


def run_sample(args) -> None:
    sample_frames(Path(args.pool), Path(args.out), args.size, args.seed)


def run_initial(args) -> None:
    initial_frames([Path(path) for path in args.trajectories], Path(args.out))


def load_fit(path):
    from workflow_scripts.analysis.alignment_fit import load_fit as load

    return load(path)


def run_maps(args) -> None:
    settings = load_settings(args.settings)
    models = parse_pairs(args.model, "--model")
    datasets = parse_pairs(args.dataset, "--dataset")
    descriptors = keyed_files(args.descriptor, "--descriptor")
    predictions = keyed_files(args.prediction, "--prediction")
    table = embedding_table(
        models,
        datasets,
        args.error_dataset,
        descriptors,
        predictions,
        settings,
        args.threads,
        args.error_role,
        parse_pairs(args.energy_scale, "--energy-scale"),
        load_fit(args.energy_alignment) if args.energy_alignment else None,
    )
    names = ", ".join(datasets.values())
    title = f"Per-structure mean MACE descriptors of {names}"
    note = (
        f"Descriptors: {files_folder(descriptors)}/<model>/<data set>.npy; energy errors: "
        f"{files_folder(predictions)}/<model>/{args.error_dataset}.extxyz. "
        f"Run: {settings['run_label']}"
    )
    write_figure(draw_maps(table, args.error_dataset, title, note), args.out, table)


def run_coverage(args) -> None:
    settings = load_settings(args.settings)
    datasets = parse_pairs(args.dataset, "--dataset")
    descriptors = keyed_files(args.descriptor, "--descriptor")
    table = coverage_table(args.model, datasets, descriptors, settings, args.threads)
    title = f"Chemical space covered, t-SNE of {args.model} descriptors"
    note = f"Descriptors: {files_folder(descriptors)}/{args.model}/. Run: {settings['run_label']}"
    write_figure(draw_coverage(table, title, note), args.out, table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sample = sub.add_parser("sample", help="random frames of the MPtrj pool")
    sample.add_argument("--pool", required=True)
    sample.add_argument("--size", type=int, required=True)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", required=True)
    sample.set_defaults(func=run_sample)
    initial = sub.add_parser("initial", help="step-0 frame of every Perovs-Dopants trajectory")
    initial.add_argument("--out", required=True)
    initial.add_argument("trajectories", nargs="+", help="trajectory extxyz files")
    initial.set_defaults(func=run_initial)
    maps = sub.add_parser("maps", help="Fig. 2: t-SNE and PHATE maps per model")
    maps.add_argument("--model", action="append", required=True, help="ROLE=MODEL, in order")
    maps.add_argument("--error-dataset", default="perovs_dopants_initial")
    maps.add_argument(
        "--error-role",
        action="append",
        help="role whose PHATE map is coloured by energy error (repeat; default: all but "
        "pretrained)",
    )
    maps.add_argument(
        "--prediction", action="append", default=[], help="MODEL/DATASET=FILE (repeat)"
    )
    maps.add_argument(
        "--energy-scale",
        action="append",
        help="MODEL=VASP|CP2K: the DFT code whose energies the model predicts (repeat)",
    )
    maps.add_argument(
        "--energy-alignment", help="energy_alignment.json: aligns energies across codes"
    )
    maps.set_defaults(func=run_maps)
    coverage = sub.add_parser("coverage", help="Fig. 3b: t-SNE of data-set coverage")
    coverage.add_argument("--model", required=True)
    coverage.set_defaults(func=run_coverage)
    for cmd in (maps, coverage):
        cmd.add_argument("--settings", required=True, help="the analysis settings (JSON)")
        cmd.add_argument("--dataset", action="append", required=True, help="KEY=DISPLAY NAME")
        cmd.add_argument(
            "--descriptor", action="append", default=[], help="MODEL/DATASET=FILE (repeat)"
        )
        cmd.add_argument("--threads", type=int, default=1)
        cmd.add_argument("--out", required=True, help="PNG; the CSV is written beside it")
    return run_cli(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
