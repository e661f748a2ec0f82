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
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workflow_scripts import paths
from workflow_scripts.analysis.periodic_table import elements_with_u
from workflow_scripts.cli import setup_logging
from workflow_scripts.elements import ATOMIC_NUMBER

log = logging.getLogger(__name__)

CP2K_KEY = "REF_energy"  # the CP2K single point (cp2k.trajectory mptrj-labels)
VASP_KEY = "VASP_energy"  # MPtrj's own label of the same structure

# Energy scales: the code whose total energies a model predicts or a test set is labelled with.
VASP, CP2K = "VASP", "CP2K"
SCALES = (VASP, CP2K)
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
# A composition is in the fit's row space when its component outside it is this small
# (relative to its length); the compositions are small integers, so this is far from noise.
ROW_SPACE_TOL = 1e-8

CSV_COLUMNS = (
    "element",
    "atomic_number",
    "delta_ev",
    "determined",
    "n_atoms_in_fit",
    "n_frames_in_fit",
    "confounded_with",
    "fit_n_frames",
    "fit_n_frames_excluded_u",
    "fit_rank",
    "fit_n_elements",
    "fit_status",
    "fit_residual_mae_ev_per_atom",
    "fit_residual_max_ev_per_atom",
)


class AlignmentError(ValueError):
    """An energy that the fit cannot align; ``elements`` are the ones to blame."""

    def __init__(self, message: str, uncovered=(), undetermined=()):
        super().__init__(message)
        self.uncovered = sorted(uncovered, key=_z)
        self.undetermined = sorted(undetermined, key=_z)


def _z(symbol: str) -> int:
    return ATOMIC_NUMBER.get(symbol, 1000)


def _names(elements) -> str:
    return ", ".join(sorted(elements, key=_z))


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


@dataclass
class AlignmentFit:
    """Per-element offsets delta_Z (eV per atom of Z): E_VASP ≈ E_CP2K + sum n_Z delta_Z."""

    elements: list[str]
    delta: np.ndarray  # (n_elements,) minimum-norm least-squares solution
    row_space: np.ndarray  # (rank, n_elements) orthonormal basis of the fitted compositions
    n_atoms: dict[str, int] = field(default_factory=dict)
    n_frames_with: dict[str, int] = field(default_factory=dict)
    n_frames: int = 0
    n_frames_excluded_u: int = 0
    residual_mae: float = float("nan")  # eV/atom, mean |residual_f|
    residual_max: float = float("nan")
    source: str = ""
    label_source: str = VASP

    @property
    def rank(self) -> int:
        return int(len(self.row_space))

    @property
    def full_rank(self) -> bool:
        return self.rank == len(self.elements)

    @property
    def status(self) -> str:
        if not self.elements:
            return "empty (no frames)"
        return "determined" if self.full_rank else "rank-deficient (minimum-norm solution)"

    def _in_row_space(self, vector: np.ndarray) -> bool:
        if not len(self.row_space):
            return not np.any(vector)
        outside = vector - self.row_space.T @ (self.row_space @ vector)
        return float(np.linalg.norm(outside)) <= ROW_SPACE_TOL * max(1.0, np.linalg.norm(vector))

    def determined(self, element: str) -> bool:
        if element not in self.elements:
            return False
        unit = np.zeros(len(self.elements))
        unit[self.elements.index(element)] = 1.0
        return self._in_row_space(unit)

    def confounded_with(self, element: str) -> list[str]:
        """Elements whose offsets the fit cannot tell apart from this one's (null space)."""
        if element not in self.elements or self.determined(element):
            return []
        null = _null_space(self.row_space, len(self.elements))
        k = self.elements.index(element)
        tol = ROW_SPACE_TOL
        involved = np.any(np.abs(null[:, [k]]) > tol, axis=1) if len(null) else np.zeros(0)
        rows = null[involved] if len(null) else null
        others = {
            self.elements[j]
            for j in range(len(self.elements))
            if j != k and len(rows) and np.any(np.abs(rows[:, j]) > tol)
        }
        return sorted(others, key=_z)

    def shift(self, symbols) -> float:
        """sum_Z n_Z delta_Z (eV) of a structure; AlignmentError when it is not determined."""
        counts = Counter(str(s) for s in symbols)
        uncovered = [el for el in counts if el not in self.elements]
        if uncovered:
            raise AlignmentError(
                f"element(s) {_names(uncovered)} not covered by the energy-alignment fit "
                f"({self.source or 'no source'}: no CP2K-recomputed MPtrj frame without U "
                "contains them)",
                uncovered=uncovered,
            )
        vector = np.array([counts.get(el, 0) for el in self.elements], dtype=float)
        if not self._in_row_space(vector):
            undetermined = [el for el in counts if not self.determined(el)]
            raise AlignmentError(
                f"element(s) {_names(undetermined)} not determined by the energy-alignment "
                f"fit (rank {self.rank} of {len(self.elements)}: they occur only in fixed "
                "ratios with other elements there)",
                undetermined=undetermined,
            )
        return float(vector @ self.delta)

    def to_scale(self, energy: float, symbols, source: str, target: str) -> float:
        """``energy`` (eV, whole structure) moved from scale ``source`` to ``target``."""
        for scale in (source, target):
            if scale not in SCALES:
                raise ValueError(f"unknown energy scale {scale!r} (known: {SCALES})")
        if source == target:
            return float(energy)
        shift = self.shift(symbols)
        return float(energy) + shift if target == VASP else float(energy) - shift

    def table(self):
        """One row per element (``CSV_COLUMNS``), by atomic number."""
        import pandas as pd

        rows = [
            {
                "element": el,
                "atomic_number": ATOMIC_NUMBER[el],
                "delta_ev": float(self.delta[k]),
                "determined": self.determined(el),
                "n_atoms_in_fit": self.n_atoms.get(el, 0),
                "n_frames_in_fit": self.n_frames_with.get(el, 0),
                "confounded_with": " ".join(self.confounded_with(el)),
                "fit_n_frames": self.n_frames,
                "fit_n_frames_excluded_u": self.n_frames_excluded_u,
                "fit_rank": self.rank,
                "fit_n_elements": len(self.elements),
                "fit_status": self.status,
                "fit_residual_mae_ev_per_atom": self.residual_mae,
                "fit_residual_max_ev_per_atom": self.residual_max,
            }
            for k, el in enumerate(self.elements)
        ]
        return pd.DataFrame(rows, columns=list(CSV_COLUMNS))

    def describe(self) -> str:
        """One line for table notes."""
        if not self.elements:
            return f"no usable frames in {self.source}"
        return (
            f"{self.n_frames} frames of {self.source} ({self.label_source} − CP2K, "
            f"{self.n_frames_excluded_u} PBE+U frames left out), {len(self.elements)} elements, "
            f"{self.status}, residual MAE {self.residual_mae:.4f} eV/atom"
        )

    def to_json(self) -> dict:
        return {
            "elements": self.elements,
            "delta_ev": self.delta.tolist(),
            "row_space": self.row_space.tolist(),
            "n_atoms_in_fit": self.n_atoms,
            "n_frames_in_fit": self.n_frames_with,
            "n_frames": self.n_frames,
            "n_frames_excluded_u": self.n_frames_excluded_u,
            "residual_mae_ev_per_atom": self.residual_mae,
            "residual_max_ev_per_atom": self.residual_max,
            "source": self.source,
            "label_source": self.label_source,
            "sign_convention": "E_VASP-scale = E_CP2K + sum_Z n_Z delta_ev[Z]",
        }

    @classmethod
    def from_json(cls, data: dict) -> AlignmentFit:
        n = len(data["elements"])
        return cls(
            elements=list(data["elements"]),
            delta=np.asarray(data["delta_ev"], float).reshape(n),
            row_space=np.asarray(data["row_space"], float).reshape(-1, n),
            n_atoms=dict(data["n_atoms_in_fit"]),
            n_frames_with=dict(data["n_frames_in_fit"]),
            n_frames=int(data["n_frames"]),
            n_frames_excluded_u=int(data["n_frames_excluded_u"]),
            residual_mae=float(data["residual_mae_ev_per_atom"]),
            residual_max=float(data["residual_max_ev_per_atom"]),
            source=data.get("source", ""),
            label_source=data.get("label_source", VASP),
        )


def _null_space(row_space: np.ndarray, n: int) -> np.ndarray:
    """Orthonormal basis (rows) of the complement of ``row_space`` in R^n."""
    if n == 0:
        return np.zeros((0, 0))
    if not len(row_space):
        return np.eye(n)
    _, s, vt = np.linalg.svd(row_space, full_matrices=True)
    rank = int(np.sum(s > ROW_SPACE_TOL))
    return vt[rank:]


def fit_offsets(
    compositions: list[dict[str, int]],
    differences: list[float],
    *,
    n_frames_excluded_u: int = 0,
    source: str = "",
    label_source: str = VASP,
) -> AlignmentFit:
    """Least-squares per-element offsets from (composition, E_VASP − E_CP2K in eV) pairs."""
    if len(compositions) != len(differences):
        raise ValueError(f"{len(compositions)} compositions but {len(differences)} energies")
    elements = sorted({el for c in compositions for el, n in c.items() if n > 0}, key=_z)
    if not elements:
        return AlignmentFit(
            [],
            np.zeros(0),
            np.zeros((0, 0)),
            n_frames_excluded_u=n_frames_excluded_u,
            source=source,
            label_source=label_source,
        )
    counts = np.array([[c.get(el, 0) for el in elements] for c in compositions], dtype=float)
    n_atoms = counts.sum(axis=1)
    x = counts / n_atoms[:, None]
    y = np.asarray(differences, float) / n_atoms
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    tol = s.max() * max(x.shape) * np.finfo(float).eps
    rank = int(np.sum(s > tol))
    delta = vt[:rank].T @ ((u[:, :rank].T @ y) / s[:rank])
    residual = y - x @ delta
    return AlignmentFit(
        elements=elements,
        delta=delta,
        row_space=vt[:rank],
        n_atoms={el: int(counts[:, k].sum()) for k, el in enumerate(elements)},
        n_frames_with={el: int(np.sum(counts[:, k] > 0)) for k, el in enumerate(elements)},
        n_frames=len(compositions),
        n_frames_excluded_u=n_frames_excluded_u,
        residual_mae=float(np.mean(np.abs(residual))),
        residual_max=float(np.max(np.abs(residual))),
        source=source,
        label_source=label_source,
    )


def fit_frames(frames, *, source: str = "", label_source: str = VASP) -> AlignmentFit:
    """The fit from CP2K-subset frames (``REF_energy`` CP2K, ``VASP_energy`` VASP); frames
    with a Hubbard-U element (MP rule) or without both energies are left out."""
    compositions, differences, excluded_u, no_label = [], [], 0, 0
    for atoms in frames:
        symbols = atoms.get_chemical_symbols()
        if elements_with_u(symbols):
            excluded_u += 1
            continue
        if CP2K_KEY not in atoms.info or VASP_KEY not in atoms.info:
            no_label += 1
            continue
        compositions.append(dict(Counter(symbols)))
        differences.append(float(atoms.info[VASP_KEY]) - float(atoms.info[CP2K_KEY]))
    if no_label:
        log.warning("%d frames without both %s and %s left out", no_label, CP2K_KEY, VASP_KEY)
    return fit_offsets(
        compositions,
        differences,
        n_frames_excluded_u=excluded_u,
        source=source,
        label_source=label_source,
    )


def write_fit(fit: AlignmentFit, csv: Path | str) -> Path:
    """The CSV and the JSON beside it (same stem)."""
    csv = Path(csv)
    csv.parent.mkdir(parents=True, exist_ok=True)
    fit.table().to_csv(csv, index=False)
    path = csv.with_suffix(".json")
    path.write_text(json.dumps(fit.to_json(), indent=1) + "\n")
    return path


def load_fit(path: Path | str) -> AlignmentFit:
    """The fit from its JSON (or from the CSV's path: the JSON beside it is read)."""
    path = Path(path)
    if path.suffix != ".json":
        path = path.with_suffix(".json")
    return AlignmentFit.from_json(json.loads(path.read_text()))


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
        reasons.append(f"element(s) {_names(uncovered)} not covered")
    if undetermined:
        reasons.append(f"element(s) {_names(undetermined)} not determined (fixed ratios in fit)")
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
            _names(el for el in fit.elements if not fit.determined(el)),
        )
    return fit


def main(argv=None) -> int:
    setup_logging()
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
