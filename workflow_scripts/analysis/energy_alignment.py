"""Per-element energy offsets between the DFT codes (VASP scale vs CP2K scale).

    python -m workflow_scripts.analysis.energy_alignment fit \
        --reference reference/MPtrj/cp2k_subset.extxyz \
        --out metrics/energy_alignment.csv

CP2K (GTH pseudopotentials) and VASP (PAW) total energies differ by hundreds of eV per atom,
almost entirely a per-element constant (each code's pseudo-atom reference). The CP2K-recomputed
MPtrj subset holds the same structures with both labels (``REF_energy`` from CP2K,
``VASP_energy`` from MPtrj), so the offsets are fitted by linear least squares::

    (E_VASP(f) - E_CP2K(f)) / N_f = sum_Z (n_Z(f) / N_f) * delta_Z + residual_f

over frames ``f`` (``n_Z`` atoms of element Z, ``N_f`` atoms in all; one equation per frame in
eV/atom, so large and small cells weigh alike). Sign convention:
``E_VASP-scale ≈ E_CP2K + sum_Z n_Z delta_Z``, so a CP2K-scale energy moves to the VASP scale by
``+ sum n_Z delta_Z`` and a VASP-scale energy to the CP2K scale by ``- sum n_Z delta_Z``
(:meth:`AlignmentFit.to_scale`).

Frames in which an element carries a Hubbard U under the Materials Project rule (PBE+U in
MPtrj; CP2K here is plain PBE) are left out of the fit (rule: ``periodic_table.elements_with_u``).

Rank deficiency: when some elements occur only in fixed ratios (e.g. only in SrTiO3), their
individual offsets are not determined. The fit then keeps the minimum-norm solution, flags
those elements ``determined = False`` and names the elements they are confounded with; an
energy is aligned only when its composition lies in the row space of the fitted compositions
(then every least-squares solution gives the same shift, so the minimum-norm choice does not
matter). Otherwise, and for an element without any data, :meth:`AlignmentFit.shift` raises
:class:`AlignmentError` naming the elements; nothing is ever filled with zero.

Outputs: ``energy_alignment.csv`` (one row per element: delta_ev, determined, n_atoms_in_fit,
n_frames_in_fit, confounded_with, and the fit's summary columns fit_*) and
``energy_alignment.json`` beside it (the whole fit, read back by :func:`load_fit`).
See docs/energy_alignment.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from workflow_scripts import paths
from workflow_scripts.analysis.alignment_fit import (
    CP2K,
    VASP,
    AlignmentError,
    AlignmentFit,
    element_names,
    fit_frames,
    write_fit,
)
from workflow_scripts.cli import setup_logging

log = logging.getLogger(__name__)


# Label scale of every data set key (common.smk dataset_file()).
LABEL_SCALES = {
    "perovs_dopants": CP2K,
    "perovs_dopants_initial": CP2K,
    "mptrj_cp2k_subset": CP2K,
    "mptrj": VASP,
    "mptrj_embedding_sample": VASP,
    "omat24": VASP,
}
# Scale of a head trained on each variants.*.data (CP2K-labelled data -> CP2K-scale energies).
DATA_SCALES = {"perovs_dopants": CP2K, "mptrj_cp2k": CP2K, "omat24": VASP}

FIT_CSV = paths.metric("energy_alignment")
FIT_JSON = paths.metric("energy_alignment", "json")  # the whole fit, read by load_fit()
RAW, ALIGNED, NOT_ALIGNED = "raw", "aligned", "not aligned"
NO_FIT = f"{NOT_ALIGNED}: no energy-alignment fit (reference.mptrj.cp2k_subset_size is 0)"


# --- which scale a model predicts and a test set is labelled with ------------------------------


def model_energy_scale(
    model: str, variants: dict, multihead_head: str = "finetuned", baselines: dict | None = None
) -> str:
    """VASP for the foundation (zero-shot) model and the pretraining head of a multihead model;
    a baseline's declared scale (``baselines.*.energy_scale``, VASP when not given); else the
    scale of the data the evaluated head was trained on (``DATA_SCALES``: Perovs-Dopants and the
    CP2K-recomputed MPtrj subset -> CP2K, OMat24 -> VASP). A head trained on CP2K labels
    predicts CP2K-scale energies whatever its E0s."""
    variant = variants.get(model)
    if variant is None:
        return (baselines or {}).get(model, {}).get("energy_scale", VASP)
    method = variant["method"]
    if method == "zero_shot":
        return VASP
    if method == "multihead" and multihead_head == "pretraining":
        return VASP  # pt_head: trained on the MPtrj replay set
    return DATA_SCALES[variant["data"]]


def label_energy_scale(dataset: str) -> str:
    if dataset not in LABEL_SCALES:
        raise KeyError(f"no label energy scale known for data set {dataset!r}")
    return LABEL_SCALES[dataset]


def scale_flags(config: dict, models) -> str:
    """``--energy-scale MODEL=SCALE`` for each model (embedding-map rule)."""
    import shlex

    head = config["evaluation"].get("multihead_head", "finetuned")
    return " ".join(
        "--energy-scale "
        + shlex.quote(f"{m}={model_energy_scale(m, config['variants'], head, config['baselines'])}")
        for m in models
    )


def fit_files(config: dict) -> list[str]:
    """The fit's JSON as a rule input, or nothing when no CP2K subset is computed."""
    if config["reference"]["mptrj"].get("cp2k_subset_size", 0) > 0:
        return [FIT_JSON]
    return []


# --- the fit -----------------------------------------------------------------------------------


# --- aligning the energies of one (model, data set) ------------------------------------------


def alignment_status(
    symbols_per_frame, model_scale: str, label_scale: str, fit: AlignmentFit | None
) -> tuple[list[float | None], str]:
    """Per-frame shift to add to predicted energies (eV; None where impossible) and the cell's
    status: ``raw`` (same code: shift 0), ``aligned``, or ``not aligned: ...`` naming why."""
    if model_scale == label_scale:
        return [0.0] * len(symbols_per_frame), RAW
    if fit is None:
        return [None] * len(symbols_per_frame), NO_FIT
    sign = 1.0 if label_scale == VASP else -1.0
    shifts, uncovered, undetermined = [], set(), set()
    for symbols in symbols_per_frame:
        try:
            shifts.append(sign * fit.shift(symbols))
        except AlignmentError as error:
            shifts.append(None)
            uncovered.update(error.uncovered)
            undetermined.update(error.undetermined)
    return shifts, cell_status(uncovered, undetermined)


def cell_status(uncovered=(), undetermined=()) -> str:
    """``aligned`` or ``not aligned: element(s) X not covered[; ...]``."""
    reasons = []
    if uncovered:
        reasons.append(f"element(s) {element_names(uncovered)} not covered")
    if undetermined:
        reasons.append(
            f"element(s) {element_names(undetermined)} not determined (fixed ratios in fit)"
        )
    return f"{NOT_ALIGNED}: " + "; ".join(reasons) if reasons else ALIGNED


def aligned_energy_errors(predicted, reference, n_atoms, shifts) -> tuple[np.ndarray, np.ndarray]:
    """|E_pred − E_ref| / N raw and aligned (NaN where the shift is None), eV/atom."""
    predicted = np.asarray(predicted, float)
    reference = np.asarray(reference, float)
    n_atoms = np.asarray(n_atoms, float)
    shift = np.array([np.nan if s is None else s for s in shifts], dtype=float)
    raw = np.abs(predicted - reference) / n_atoms
    return raw, np.abs(predicted + shift - reference) / n_atoms


# --- CLI ---------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="per-element offsets from the CP2K-recomputed MPtrj subset")
    fit.add_argument("--reference", required=True, type=Path, help="cp2k_subset.extxyz")
    fit.add_argument(
        "--label-source", default=VASP, help="who made the VASP_energy labels (notes only)"
    )
    fit.add_argument("--out", required=True, type=Path, help="CSV; the JSON is written beside it")
    return parser.parse_args(argv)


def run(args) -> AlignmentFit:
    from workflow_scripts.analysis.common import read_frames

    frames = read_frames(args.reference) if Path(args.reference).stat().st_size else []
    fit = fit_frames(frames, source=str(args.reference), label_source=args.label_source)
    write_fit(fit, args.out)
    log.info("energy alignment: %s\n%s", fit.describe(), fit.table().to_string(index=False))
    if not fit.full_rank:
        log.warning(
            "rank-deficient fit: %s not determined; energies with them are not aligned",
            element_names(el for el in fit.elements if not fit.determined(el)),
        )
    return fit


def main(argv=None) -> int:
    setup_logging()
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
