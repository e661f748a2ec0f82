"""Each finding checked on this run's numbers: a-g on the force MAEs of Table A1, h on the
force-shift summary (Fig. 1), i and j on the per-structure mean descriptors (Fig. 2).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.analysis import plan as analysis_plan
from workflow_scripts.analysis.findings_criteria import (
    A_MIN_RATIO,
    B_MAX_RATIO,
    C_MIN_RATIO,
    CRITERIA,
    D_DOPANT_ABS,
    D_DOPANT_REL,
    D_MAX_MPTRJ_RATIO,
    DOPANTS,
    E_MIN_RATIO,
    F_DOPANT_ABS,
    F_DOPANT_REL,
    F_MIN_MPTRJ_RATIO,
    FINDINGS,
    G_MIN_STANDARD_RATIO,
    G_MIN_ZERO_SHOT_RATIO,
    H_MIN_RATIO,
    I_MIN_RATIO,
    MPTRJ,
    Finding,
    NotComputed,
    _fmt,
    ratio,
    require,
    verdict,
)

log = logging.getLogger(__name__)

# --- force errors of Table A1 -------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    label: str
    value: float
    note: str = ""

    def __str__(self) -> str:
        return f"{self.label} = {_fmt(self.value)} eV/Å{self.note}"


class ForceTable:
    """Force MAE of (model, test set) from ``tableA1.csv``."""

    def __init__(self, table):
        self.table = table

    def mae(self, model: str, test_set: str) -> Value:
        table = self.table
        of_set = table[table["test_set"] == test_set]
        if of_set.empty:
            raise NotComputed(f"test set {test_set} is not in evaluation.test_sets")
        rows = of_set[of_set["model"] == model]
        if rows.empty:
            raise NotComputed(f"{model} has no {test_set} row in tableA1")
        row = rows.iloc[0]
        name = row.get("test_set_name", test_set)
        value = float(row["force_mae_ev_per_a"])
        if not math.isfinite(value):
            raise NotComputed(f"{model} was evaluated on no {name} frame")
        n_evaluated, n_frames = int(row["n_evaluated"]), int(row["n_frames"])
        note = f" ({n_evaluated}/{n_frames} frames)" if n_evaluated < n_frames else ""
        return Value(f"{model} on {name}", value, note)


def _numbers(*items) -> str:
    return "; ".join(str(item) for item in items)


def check_a(forces: ForceTable, roles: dict) -> Finding:
    (zero_shot,) = require(roles, "pretrained")
    dopants, mptrj = forces.mae(zero_shot, DOPANTS), forces.mae(zero_shot, MPTRJ)
    r = ratio(dopants.value, mptrj.value)
    return Finding(
        "a",
        FINDINGS["a"],
        _numbers(dopants, mptrj, f"ratio = {_fmt(r)}"),
        CRITERIA["a"],
        verdict(r >= A_MIN_RATIO),
    )


def check_b(forces: ForceTable, roles: dict) -> Finding:
    zero_shot, standard = require(roles, "pretrained", "standard")
    finetuned, before = forces.mae(standard, DOPANTS), forces.mae(zero_shot, DOPANTS)
    r = ratio(finetuned.value, before.value)
    return Finding(
        "b",
        FINDINGS["b"],
        _numbers(finetuned, before, f"ratio = {_fmt(r)}"),
        CRITERIA["b"],
        verdict(r <= B_MAX_RATIO),
    )


def check_c(forces: ForceTable, roles: dict) -> Finding:
    zero_shot, standard = require(roles, "pretrained", "standard")
    finetuned, before = forces.mae(standard, MPTRJ), forces.mae(zero_shot, MPTRJ)
    r = ratio(finetuned.value, before.value)
    return Finding(
        "c",
        FINDINGS["c"],
        _numbers(finetuned, before, f"ratio = {_fmt(r)}"),
        CRITERIA["c"],
        verdict(r >= C_MIN_RATIO),
    )


def check_d(forces: ForceTable, roles: dict) -> Finding:
    standard, multihead = require(roles, "standard", "multihead")
    mh_mptrj, std_mptrj = forces.mae(multihead, MPTRJ), forces.mae(standard, MPTRJ)
    mh_dopants, std_dopants = forces.mae(multihead, DOPANTS), forces.mae(standard, DOPANTS)
    r = ratio(mh_mptrj.value, std_mptrj.value)
    allowed = std_dopants.value + max(D_DOPANT_REL * std_dopants.value, D_DOPANT_ABS)
    return Finding(
        "d",
        FINDINGS["d"],
        _numbers(
            mh_mptrj,
            std_mptrj,
            f"MPtrj ratio = {_fmt(r)}",
            mh_dopants,
            std_dopants,
            f"dopant limit = {_fmt(allowed)} eV/Å",
        ),
        CRITERIA["d"],
        verdict(r <= D_MAX_MPTRJ_RATIO and mh_dopants.value <= allowed),
    )


def check_e(forces: ForceTable, roles: dict, lrs: dict) -> Finding:
    low, high = require(roles, "lr_low", "lr_high")
    high_mptrj, low_mptrj = forces.mae(high, MPTRJ), forces.mae(low, MPTRJ)
    r = ratio(high_mptrj.value, low_mptrj.value)
    return Finding(
        "e",
        FINDINGS["e"],
        _numbers(
            f"{high_mptrj} (lr {lrs[high]:g})",
            f"{low_mptrj} (lr {lrs[low]:g})",
            f"ratio = {_fmt(r)}",
        ),
        CRITERIA["e"],
        verdict(r >= E_MIN_RATIO),
    )


def check_f(forces: ForceTable, roles: dict) -> Finding:
    standard, scratch = require(roles, "standard", "scratch")
    scratch_dopants, std_dopants = forces.mae(scratch, DOPANTS), forces.mae(standard, DOPANTS)
    scratch_mptrj, std_mptrj = forces.mae(scratch, MPTRJ), forces.mae(standard, MPTRJ)
    allowed = std_dopants.value + max(F_DOPANT_REL * std_dopants.value, F_DOPANT_ABS)
    r = ratio(scratch_mptrj.value, std_mptrj.value)
    return Finding(
        "f",
        FINDINGS["f"],
        _numbers(
            scratch_dopants,
            std_dopants,
            f"dopant limit = {_fmt(allowed)} eV/Å",
            scratch_mptrj,
            std_mptrj,
            f"MPtrj ratio = {_fmt(r)}",
        ),
        CRITERIA["f"],
        verdict(scratch_dopants.value <= allowed and r >= F_MIN_MPTRJ_RATIO),
    )


def check_g(forces: ForceTable, roles: dict) -> Finding:
    zero_shot, standard, cp2k = require(roles, "pretrained", "standard", "mptrj_cp2k")
    cp2k_dopants = forces.mae(cp2k, DOPANTS)
    zs_dopants, std_dopants = forces.mae(zero_shot, DOPANTS), forces.mae(standard, DOPANTS)
    to_zero_shot = ratio(cp2k_dopants.value, zs_dopants.value)
    to_standard = ratio(cp2k_dopants.value, std_dopants.value)
    return Finding(
        "g",
        FINDINGS["g"],
        _numbers(
            cp2k_dopants,
            zs_dopants,
            std_dopants,
            f"ratio to zero-shot = {_fmt(to_zero_shot)}",
            f"ratio to standard = {_fmt(to_standard)}",
        ),
        CRITERIA["g"],
        verdict(to_zero_shot >= G_MIN_ZERO_SHOT_RATIO and to_standard >= G_MIN_STANDARD_RATIO),
    )


# --- the force shift (Fig. 1) ---------------------------------------------------------------


def force_shift_values(summary) -> tuple[Value, Value]:
    """(label − CP2K, label − model) MAE from the force-shift summary; the label source is
    VASP in the study (a stand-in label in the demo)."""
    series = list(summary["series"])
    shifts = [name for name in series if name.endswith(" - CP2K")]
    if not shifts:
        raise NotComputed("no '<label> - CP2K' series in the force-shift summary")
    shift = shifts[0]
    source = shift[: -len(" - CP2K")]
    models = [name for name in series if name.startswith(f"{source} - ") and name != shift]
    if not models:
        raise NotComputed(f"no '{source} - <model>' series in the force-shift summary")
    mae = dict(zip(summary["series"], summary["mae_ev_per_a"], strict=True))
    return (
        Value(f"MAE({shift})", float(mae[shift])),
        Value(f"MAE({models[0]})", float(mae[models[0]])),
    )


def check_h(summary_path: Path | None) -> Finding:
    import pandas as pd

    if summary_path is None or not Path(summary_path).is_file():
        raise NotComputed(
            "no force-shift summary: the config draws no force-shift figure "
            "(reference.mptrj.cp2k_subset_size 0 or no zero_shot variant)"
        )
    shift, model = force_shift_values(pd.read_csv(summary_path))
    r = ratio(shift.value, model.value)
    return Finding(
        "h",
        FINDINGS["h"],
        _numbers(shift, model, f"ratio = {_fmt(r)}"),
        CRITERIA["h"],
        verdict(r > H_MIN_RATIO),
    )


# --- descriptors (Fig. 2) --------------------------------------------------------------------


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment of two descriptor sets of the same structures (rows):
    1 for sets that differ by a rotation, reflection, isotropic scaling or translation."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same structures: {len(x)} vs {len(y)} rows")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(x.T @ y) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


@dataclass(frozen=True)
class NeighbourRatio:
    ratio: float
    median_to_reference: float
    median_within_reference: float
    n_points: int
    n_reference: int


def nn_distance_ratio(points: np.ndarray, reference: np.ndarray) -> NeighbourRatio:
    """Median distance of each point to its nearest reference point over the median distance
    of each reference point to its nearest other reference point (Euclidean)."""
    from sklearn.neighbors import NearestNeighbors

    points = np.asarray(points, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if len(reference) < 2 or len(points) < 1:
        raise ValueError("need at least 2 reference points and 1 point")
    index = NearestNeighbors(n_neighbors=2).fit(reference)
    to_reference = index.kneighbors(points, n_neighbors=1)[0][:, 0]
    within = index.kneighbors(reference, n_neighbors=2)[0][:, 1]
    median_to, median_within = float(np.median(to_reference)), float(np.median(within))
    return NeighbourRatio(
        ratio(median_to, median_within), median_to, median_within, len(points), len(reference)
    )


def _descriptors(files: dict | None, model: str, dataset: str) -> np.ndarray:
    """One model's descriptors of one data set, from ``files`` ({(model, data set): file})."""
    if not files:
        raise NotComputed("no descriptor files given")
    path = files.get((model, dataset))
    if path is None:
        raise NotComputed(f"no descriptor file of {model} on {dataset} given")
    if not Path(path).is_file():
        raise NotComputed(f"{path} does not exist")
    return np.load(path)


def check_i(descriptors: dict | None, roles: dict) -> Finding:
    (pretrained,) = require(roles, "pretrained")
    mptrj = _descriptors(descriptors, pretrained, analysis_plan.EMBEDDING_SAMPLE)
    dopants = _descriptors(descriptors, pretrained, analysis_plan.INITIAL_STRUCTURES)
    result = nn_distance_ratio(dopants, mptrj)
    return Finding(
        "i",
        FINDINGS["i"],
        _numbers(
            f"median NN distance of the {result.n_points} initial dopant structures to the "
            f"MPtrj sample = {_fmt(result.median_to_reference)}",
            f"median NN distance within the MPtrj sample ({result.n_reference} structures) = "
            f"{_fmt(result.median_within_reference)}",
            f"ratio = {_fmt(result.ratio)} ({pretrained} descriptors)",
        ),
        CRITERIA["i"],
        verdict(result.ratio > I_MIN_RATIO),
    )


def check_j(descriptors: dict | None, roles: dict) -> Finding:
    pretrained, standard, multihead = require(roles, "pretrained", "standard", "multihead")
    datasets = analysis_plan.MAP_DATASETS

    def stacked(model):
        return np.concatenate([_descriptors(descriptors, model, d) for d in datasets])

    base = stacked(pretrained)
    to_standard = linear_cka(base, stacked(standard))
    to_multihead = linear_cka(base, stacked(multihead))
    return Finding(
        "j",
        FINDINGS["j"],
        _numbers(
            f"CKA({pretrained}, {multihead}) = {_fmt(to_multihead)}",
            f"CKA({pretrained}, {standard}) = {_fmt(to_standard)}",
            f"on the {len(base)} structures of the embedding maps ({', '.join(datasets)})",
        ),
        CRITERIA["j"],
        verdict(to_multihead > to_standard),
    )
