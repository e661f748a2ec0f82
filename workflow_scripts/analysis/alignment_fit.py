"""The per-element energy offsets between two DFT codes, E_VASP − E_CP2K, fitted by least
squares on the CP2K-recomputed MPtrj subset (docs/energy_alignment.md): which elements the
frames determine, which are confounded, the residuals, and the fit's CSV/JSON files.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workflow_scripts.analysis.periodic_table import elements_with_u
from workflow_scripts.elements import ATOMIC_NUMBER

log = logging.getLogger(__name__)

CP2K_KEY = "REF_energy"  # the CP2K single point (cp2k.trajectory mptrj-labels)


VASP_KEY = "VASP_energy"  # MPtrj's own label of the same structure


# Energy scales: the code whose total energies a model predicts or a test set is labelled with.
VASP, CP2K = "VASP", "CP2K"


SCALES = (VASP, CP2K)


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


def element_names(elements) -> str:
    return ", ".join(sorted(elements, key=_z))


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
                f"element(s) {element_names(uncovered)} not covered by the energy-alignment fit "
                f"({self.source or 'no source'}: no CP2K-recomputed MPtrj frame without U "
                "contains them)",
                uncovered=uncovered,
            )
        vector = np.array([counts.get(el, 0) for el in self.elements], dtype=float)
        if not self._in_row_space(vector):
            undetermined = [el for el in counts if not self.determined(el)]
            raise AlignmentError(
                f"element(s) {element_names(undetermined)} not determined by the energy-alignment "
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
