"""Farthest point sampling (greedy max-min) of per-structure descriptors: the replay set.

Exact: the picks are those of the plain greedy algorithm (:func:`greedy_maxmin_reference`,
float64, ties to the lowest index) from the same start. Fast on a CPU because most
distances are never computed:

- rows are grouped into compact clusters (a PCA tree), each with a centre and a radius;
- a group is refreshed lazily: its points' distances to the centres picked since its last
  refresh are computed only when its best point could be the next pick, as one float32
  matrix product for all those centres at once (BLAS-3 instead of one pass over the whole
  matrix per pick);
- a centre farther from a group than the group's radius plus its largest remaining distance
  cannot change any of its points (triangle inequality) and is skipped;
- float32 rounding is bounded; where two candidates are closer than that bound they are
  compared again in float64, so the float32 path never changes a pick.

With CUDA, picks are computed on the GPU in float64 (one pass over the matrix per pick).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

UNIT_ROUNDOFF_F32 = 2.0**-24


def greedy_maxmin_reference(points: np.ndarray, n_samples: int, start: int = 0) -> np.ndarray:
    """The textbook algorithm (float64, one full pass per pick), for tests and benchmarks."""
    x = np.asarray(points, dtype=np.float64)
    selected = [start]
    mind = ((x - x[start]) ** 2).sum(axis=1)
    mind[start] = -1.0
    for _ in range(n_samples - 1):
        nxt = int(np.argmax(mind))
        selected.append(nxt)
        mind = np.minimum(mind, ((x - x[nxt]) ** 2).sum(axis=1))
        mind[selected] = -1.0
    return np.asarray(selected, dtype=np.int64)


# --- grouping ------------------------------------------------------------------------------


def _principal_axis(x: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Leading principal direction of the rows of ``x`` (power iteration, fixed start)."""
    centred = x - x.mean(axis=0)
    v = np.ones(x.shape[1]) / np.sqrt(x.shape[1])
    for _ in range(iterations):
        v = centred.T @ (centred @ v)
        norm = np.linalg.norm(v)
        if norm == 0:
            break
        v /= norm
    return v


def pca_tree_groups(x: np.ndarray, max_rows: int, n_components: int = 32) -> list[np.ndarray]:
    """Row indices in compact groups of at most ``max_rows``: the rows are projected on the
    leading principal components (of an evenly spaced sample), then split recursively at the
    median along each part's principal axis. Grouping only affects speed, never the picks."""
    sample = x[:: max(1, len(x) // 50_000)].astype(np.float64)
    sample -= sample.mean(axis=0)
    _, vectors = np.linalg.eigh(sample.T @ sample)
    basis = vectors[:, ::-1][:, : min(n_components, x.shape[1])]
    proj = (x @ basis.astype(x.dtype)).astype(np.float64)
    groups = []
    stack = [np.arange(len(x))]
    while stack:
        rows = stack.pop()
        if len(rows) <= max_rows:
            groups.append(np.sort(rows))
            continue
        part = proj[rows]
        order = np.argsort(part @ _principal_axis(part), kind="stable")
        half = len(rows) // 2
        stack.extend([rows[order[half:]], rows[order[:half]]])
    return groups


# --- exact FPS on a CPU ----------------------------------------------------------------------


class _GroupedFPS:
    def __init__(self, x: np.ndarray, n_samples: int, group_rows: int):
        self.x = x  # original float32 rows (the exact float64 check reads these)
        n, dim = x.shape
        self.kappa = 2.0 * (dim + 4) * UNIT_ROUNDOFF_F32
        groups = pca_tree_groups(x, group_rows)
        self.order = np.concatenate(groups)
        self.bounds = np.cumsum([0] + [len(g) for g in groups])
        self.group_of = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        self.position = np.empty(n, dtype=np.int64)
        self.position[self.order] = np.arange(n)
        self.anchors = np.stack([x[g].astype(np.float64).mean(axis=0) for g in groups])
        # residuals to the group centre: small numbers, so float32 distances stay accurate
        self.res = np.empty_like(x)
        for k, g in enumerate(groups):
            self.res[self.bounds[k] : self.bounds[k + 1]] = x[g] - self.anchors[k]
        self.res_sq = np.einsum("ij,ij->i", self.res, self.res, dtype=np.float64)
        group_max = np.maximum.reduceat(self.res_sq, self.bounds[:-1])
        self.radius = np.sqrt(group_max) * (1 + 1e-6)
        self.res_sq = self.res_sq.astype(np.float32)
        n_groups = len(groups)
        self.mind = np.full(n, np.inf, dtype=np.float32)
        self.upper = np.full(n_groups, np.inf)
        self.done = np.zeros(n_groups, dtype=np.int64)  # centres applied to each group
        self.centres = np.empty((n_samples, dim), dtype=np.float64)
        self.centre_sq = np.empty(n_samples, dtype=np.float64)
        self.centre_rows: list[int] = []
        self.anchor_dist = np.empty((n_groups, n_samples), dtype=np.float64)
        self.refreshes = 0

    def margin(self, upper):
        """Bound on the float32 error of a group's stored distances near ``upper``."""
        return self.kappa * (3.0 * self.radius**2 + 2.0 * np.maximum(upper, 0.0))

    def add_centre(self, row: int) -> None:
        t = len(self.centre_rows)
        self.centre_rows.append(row)
        self.centres[t] = self.x[row]
        self.centre_sq[t] = self.centres[t] @ self.centres[t]
        self.anchor_dist[:, t] = np.linalg.norm(self.anchors - self.centres[t], axis=1)
        pos = self.position[row]
        self.mind[pos] = -1.0
        g = self.group_of[pos]
        if np.isfinite(self.upper[g]):
            self.upper[g] = self.mind[self.bounds[g] : self.bounds[g + 1]].max()

    def refresh(self, g: int) -> None:
        t = len(self.centre_rows)
        first = self.done[g]
        self.done[g] = t
        lower = self.anchor_dist[g, first:t] - self.radius[g]
        reach = (
            self.upper[g] + self.margin(self.upper[g])[g] if np.isfinite(self.upper[g]) else np.inf
        )
        useful = first + np.flatnonzero((lower <= 0) | (lower * lower < reach))
        if len(useful) == 0:
            return
        self.refreshes += 1
        a, b = self.bounds[g], self.bounds[g + 1]
        centres = (self.centres[useful] - self.anchors[g]).astype(np.float32)
        # |r - c|^2 = |r|^2 + min_c (|c|^2 - 2 r.c): one product, one pass, then per row
        part = self.res[a:b] @ (-2.0 * centres).T
        part += np.einsum("ij,ij->i", centres, centres)[None, :]
        closest = part.min(axis=1)
        closest += self.res_sq[a:b]
        np.maximum(closest, 0.0, out=closest)
        block = self.mind[a:b]
        np.minimum(block, closest, out=block)  # picked rows stay at -1
        self.upper[g] = block.max()

    def exact_mind(self, rows: np.ndarray) -> np.ndarray:
        """float64 distance to the nearest picked centre, computed as the reference does:
        a float64 product finds the centres that can be nearest, those are recomputed
        with direct differences."""
        t = len(self.centre_rows)
        x = self.x[rows].astype(np.float64)
        x_sq = np.einsum("ij,ij->i", x, x)
        scale = x_sq[:, None] + self.centre_sq[None, :t]
        approx = scale - 2.0 * (x @ self.centres[:t].T)
        near = approx <= approx.min(axis=1, keepdims=True) + 1e-9 * scale  # >> float64 error
        best = np.empty(len(rows))
        for i in range(len(rows)):
            centres = self.centres[np.flatnonzero(near[i])]
            best[i] = ((x[i] - centres) ** 2).sum(axis=1).min()
        return best

    def next_row(self) -> int:
        """The next pick: refresh stale groups that could hold it, best first, then decide."""
        t = len(self.centre_rows)
        upper = self.upper
        reach = upper + self.margin(upper)
        fresh = self.done == t
        top, floor = -np.inf, -np.inf
        if fresh.any():
            g = np.flatnonzero(fresh)[np.argmax(upper[fresh])]
            top, floor = upper[g], upper[g] - self.margin(upper[g])[g]
        stale = np.flatnonzero(~fresh)
        for g in stale[np.argsort(-reach[stale], kind="stable")]:
            if reach[g] < floor:
                break
            self.refresh(g)
            if upper[g] > top:
                top, floor = upper[g], upper[g] - self.margin(upper[g])[g]
        margins = self.margin(upper)
        rows_pos = []
        for g in np.flatnonzero(upper + margins >= floor):
            block = self.mind[self.bounds[g] : self.bounds[g + 1]]
            hits = np.flatnonzero((block + margins[g] >= floor) & (block >= 0))
            rows_pos.append(self.bounds[g] + hits)
        rows = self.order[np.concatenate(rows_pos)]
        if len(rows) == 1:
            return int(rows[0])
        exact = self.exact_mind(rows)
        return int(rows[exact == exact.max()].min())


def fps_cpu(x: np.ndarray, n_samples: int, start: int = 0, group_rows: int = 2048) -> np.ndarray:
    """Exact greedy max-min picks (indices into ``x``) on a CPU; see the module docstring."""
    from threadpoolctl import threadpool_limits

    x = np.ascontiguousarray(x, dtype=np.float32)
    # the products are small: BLAS threads cost more than they give (and thrash when shared)
    with threadpool_limits(limits=1, user_api="blas"):
        state = _GroupedFPS(x, n_samples, group_rows)
        state.add_centre(start)
        for _ in range(n_samples - 1):
            state.add_centre(state.next_row())
    return np.asarray(state.centre_rows, dtype=np.int64)


def fps_torch(x: np.ndarray, n_samples: int, start: int = 0, device: str = "cuda") -> np.ndarray:
    """The plain algorithm in float64 with torch (for a GPU); no host sync inside the loop."""
    import torch

    pts = torch.as_tensor(np.asarray(x), device=device).to(torch.float64)
    n = pts.shape[0]
    chunk = max(1, (1 << 27) // max(1, pts.shape[1]))  # rows per temporary (1 GiB float64)
    mind = torch.full((n,), float("inf"), dtype=torch.float64, device=device)
    picks = torch.empty(n_samples, dtype=torch.int64, device=device)
    current = torch.full((1,), start, dtype=torch.int64, device=device)
    for t in range(n_samples):
        picks[t : t + 1] = current
        centre = pts.index_select(0, current)
        for lo in range(0, n, chunk):
            d2 = ((pts[lo : lo + chunk] - centre) ** 2).sum(dim=1)
            mind[lo : lo + chunk] = torch.minimum(mind[lo : lo + chunk], d2)
        mind.index_fill_(0, current, -1.0)
        current = torch.argmax(mind).view(1)  # first maximal index, as numpy
    return picks.cpu().numpy()


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def farthest_point_sampling(
    descriptors: np.ndarray,
    n_samples: int,
    start: int = 0,
    exclude: np.ndarray | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """``n_samples`` distinct row indices of ``descriptors`` by greedy max-min from ``start``;
    rows where ``exclude`` is True (isolated atoms) are never picked."""
    descriptors = np.asarray(descriptors)
    candidates = np.arange(len(descriptors))
    if exclude is not None:
        candidates = candidates[~np.asarray(exclude, dtype=bool)]
    if not 0 <= start < len(descriptors) or (exclude is not None and exclude[start]):
        raise ValueError(f"start index {start} is excluded or out of range")
    if not 1 <= n_samples <= len(candidates):
        raise ValueError(f"cannot pick {n_samples} of {len(candidates)} candidate rows")
    sub = descriptors[candidates]
    local_start = int(np.searchsorted(candidates, start))
    device = resolve_device(device)
    if device == "cpu":
        picks = fps_cpu(sub, n_samples, local_start)
    else:
        picks = fps_torch(sub, n_samples, local_start, device)
    return candidates[picks]


# --- CLI: replay selection from the pool ---------------------------------------------------


def select_replay(
    pool: Path,
    descriptors_file: Path,
    out: Path,
    n_samples: int,
    seed: int,
    device: str = "auto",
) -> np.ndarray:
    """FPS over the pool's descriptors (isolated atoms excluded); the picked frames are copied
    to ``out`` in pick order. The start is a seeded random non-excluded frame."""
    from workflow_scripts.reference.extxyz import is_isolated_atom, iter_raw_frames, write_selected

    descriptors = np.load(descriptors_file, mmap_mode="r")
    isolated = np.array([is_isolated_atom(frame) for frame in iter_raw_frames(pool)], dtype=bool)
    if len(isolated) != len(descriptors):
        raise ValueError(
            f"{descriptors_file} has {len(descriptors)} rows but {pool} has {len(isolated)} frames"
        )
    candidates = np.flatnonzero(~isolated)
    start = int(np.random.default_rng(seed).choice(candidates))
    picks = farthest_point_sampling(descriptors, n_samples, start, isolated, device)
    write_selected(pool, out, picks)
    return picks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.reference.fps")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("replay", help="FPS replay set from the pool")
    p.add_argument("--pool", type=Path, required=True, help="pool extxyz")
    p.add_argument("--descriptors", type=Path, required=True, help=".npy, one row per frame")
    p.add_argument("--settings", type=Path, required=True, help="the reference settings (JSON)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default=None, help="cpu | cuda | auto (default: settings)")
    args = parser.parse_args(argv)
    settings = json.loads(args.settings.read_text())
    mptrj, fps = settings["mptrj"], settings["fps"]
    picks = select_replay(
        args.pool,
        args.descriptors,
        args.out,
        n_samples=mptrj["replay_size"],
        seed=mptrj["seed"],
        device=args.device or fps["device"],
    )
    print(f"{len(picks)} replay frames picked by FPS; first picks {picks[:10].tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
