"""The pool frames CP2K recomputes: a seeded subset, stratified so that the energy offset of
every element of the dopant data set is determined where the pool allows (the energy
alignment's fit, docs/energy_alignment.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def _composition(frame) -> tuple[tuple[str, int], ...]:
    """Sorted (element, count) pairs of a raw extxyz frame."""
    counts = Counter(line.split(maxsplit=1)[0] for line in frame.text.splitlines()[2:])
    return tuple(sorted(counts.items()))


@dataclass
class SubsetReport:
    """How the stratified CP2K subset covers the requested elements."""

    chosen: list[int]
    determined: list[str] = field(default_factory=list)  # offset separable from the others
    not_determined: list[str] = field(default_factory=list)  # in the pool; size too small
    not_in_pool: list[str] = field(default_factory=list)  # no eligible U-free pool frame
    stratified: int = 0  # frames picked for coverage (the rest: seeded random)

    def text(self) -> str:
        parts = [f"{len(self.chosen)} pool frames ({self.stratified} picked for coverage)"]
        if self.determined:
            parts.append(f"determined: {' '.join(self.determined)}")
        if self.not_determined:
            parts.append(
                f"not determined (cp2k_subset_size too small): {' '.join(self.not_determined)}"
            )
        if self.not_in_pool:
            parts.append(f"in no eligible U-free pool frame: {' '.join(self.not_in_pool)}")
        return "; ".join(parts)


class _CompositionSpan:
    """The span of the picked frames' compositions (unit vectors over the elements): an
    element's energy offset is determined when its unit vector lies in the span."""

    def __init__(self, compositions: list[tuple]):
        self.columns = sorted({el for comp in compositions for el, _ in comp})
        self.column = {el: k for k, el in enumerate(self.columns)}
        self.basis: list[np.ndarray] = []

    def vector(self, comp) -> np.ndarray:
        v = np.zeros(len(self.columns))
        for el, n in comp:
            v[self.column[el]] = n
        return v / np.linalg.norm(v)

    def outside(self, v: np.ndarray) -> np.ndarray:
        for b in self.basis:
            v = v - (b @ v) * b
        return v

    def determined(self, el: str) -> bool:
        unit = np.zeros(len(self.columns))
        unit[self.column[el]] = 1.0
        return float(np.linalg.norm(self.outside(unit))) < 1e-8

    def add(self, comp) -> bool:
        """Add ``comp`` when it has a new direction; whether it had one."""
        rest = self.outside(self.vector(comp))
        norm = float(np.linalg.norm(rest))
        if norm > 1e-8:
            self.basis.append(rest / norm)
        return norm > 1e-8


def _first_frames_by_element(compositions, order, candidates) -> dict[str, list[tuple]]:
    """Per element: (rank, position, composition id) of the first frame (in ``order``) of each
    of its U-free compositions, by rank."""
    rank_of = np.empty(len(order), dtype=np.int64)
    rank_of[order] = np.arange(len(order))
    by_element: dict[str, list[tuple[int, int, int]]] = {}
    for comp_id, frames in candidates.items():
        first = min(frames, key=rank_of.__getitem__)
        for el, _ in compositions[comp_id]:
            by_element.setdefault(el, []).append((int(rank_of[first]), first, comp_id))
    for entries in by_element.values():
        entries.sort()
    return by_element


def _coverage_picks(
    compositions: list[tuple],
    order: np.ndarray,
    candidates: dict[int, list[int]],
    cover,
    size: int,
) -> tuple[list[int], set[str]]:
    """Greedy, deterministic: for each element of ``cover`` (rarest first) whose energy offset
    the picks so far do not determine, add the first frame in ``order`` that contains it and
    adds a new direction to the picks' compositions (rank + 1); repeat until all are
    determined, nothing helps, or ``size`` frames are picked. ``candidates``: composition id
    -> positions of the eligible frames with it. Returns the picked positions and the
    elements whose offsets they determine."""
    span = _CompositionSpan(compositions)
    by_element = _first_frames_by_element(compositions, order, candidates)
    targets = sorted(
        (el for el in cover if el in by_element), key=lambda el: (len(by_element[el]), el)
    )
    picks: list[int] = []
    picked_compositions: list[tuple] = []
    useless: set[int] = set()  # compositions already in the span stay there
    progress = True
    while progress and len(picks) < size:
        progress = False
        for el in targets:
            if len(picks) >= size:
                break
            if span.determined(el):
                continue
            # its own frames first, then those of the elements it was picked with (FeS picked
            # for Fe leaves Fe and S confounded: a frame with S and no Fe separates them)
            partners = sorted(
                {other for c in picked_compositions if el in dict(c) for other, _ in c} - {el}
            )
            search = [e for part in [el, *partners] for e in by_element.get(part, [])]
            for _, position, comp_id in search:
                if comp_id in useless:
                    continue
                useless.add(comp_id)
                if span.add(compositions[comp_id]):
                    picks.append(position)
                    picked_compositions.append(compositions[comp_id])
                    progress = True
                    break
    return picks, {el for el in targets if span.determined(el)}


def select_cp2k_subset(
    pool: Path,
    out: Path,
    size: int,
    seed: int,
    max_atoms: int | None = None,
    elements: list[str] | None = None,
    cover_elements: list[str] | None = None,
) -> list[int]:
    """A seeded subset of pool frames (labels kept, pool order) for CP2K single points.

    Stratified when ``cover_elements`` is given (the elements of the Perovs-Dopants data set):
    first, frames are picked so that every such element that occurs in an eligible pool frame
    without a Hubbard U (MP rule; those frames are left out of the energy-alignment fit) gets an
    energy offset the subset can determine (see :func:`_coverage_picks`); the remaining places
    are filled with frames in the seeded random order. Same pool, settings and seed: same
    subset. Returns the chosen pool indices (sorted); :func:`select_cp2k_subset_report` also
    says what is covered."""
    return select_cp2k_subset_report(
        pool, out, size, seed, max_atoms, elements, cover_elements
    ).chosen


def select_cp2k_subset_report(
    pool: Path,
    out: Path,
    size: int,
    seed: int,
    max_atoms: int | None = None,
    elements: list[str] | None = None,
    cover_elements: list[str] | None = None,
) -> SubsetReport:
    from workflow_scripts.analysis.periodic_table import elements_with_u
    from workflow_scripts.reference.extxyz import iter_raw_frames, write_selected

    allowed = set(elements) if elements else None
    eligible: list[int] = []
    composition_ids: list[int] = []
    compositions: list[tuple] = []
    known: dict[tuple, int] = {}
    for frame in iter_raw_frames(pool):
        if max_atoms is not None and frame.natoms > max_atoms:
            continue
        if allowed is None and not cover_elements:
            eligible.append(frame.index)
            continue
        comp = _composition(frame)
        if allowed is not None and not {el for el, _ in comp} <= allowed:
            continue
        eligible.append(frame.index)
        composition_ids.append(known.setdefault(comp, len(known)))
        if len(known) > len(compositions):
            compositions.append(comp)
    if size > len(eligible):
        raise ValueError(
            f"cp2k_subset_size {size} > {len(eligible)} eligible pool frames "
            f"(max_atoms={max_atoms}, elements={elements})"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(eligible))
    report = SubsetReport(chosen=[])
    picks: list[int] = []
    if cover_elements and size:
        candidates: dict[int, list[int]] = {}
        for position, comp_id in enumerate(composition_ids):
            if not elements_with_u(el for el, _ in compositions[comp_id]):
                candidates.setdefault(comp_id, []).append(position)
        picks, determined = _coverage_picks(compositions, order, candidates, cover_elements, size)
        present = {el for comp_id in candidates for el, _ in compositions[comp_id]}
        cover = sorted(set(cover_elements))
        report.determined = [el for el in cover if el in determined]
        report.not_determined = [el for el in cover if el in present and el not in determined]
        report.not_in_pool = [el for el in cover if el not in present]
        report.stratified = len(picks)
    taken = set(picks)
    fill = [int(p) for p in order if int(p) not in taken][: size - len(picks)]
    chosen = sorted(eligible[p] for p in picks + fill)
    if size:
        write_selected(pool, out, chosen)
    else:
        Path(out).write_text("")
    report.chosen = chosen
    return report
