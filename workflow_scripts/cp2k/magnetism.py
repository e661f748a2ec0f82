"""Initial magnetic moments -> CP2K kinds, MAGNETIZATION and the spin multiplicity.

A structure's per-site initial moments (μB; the relaxations' defect moments, or MPtrj's
VASP-converged moments ``REF_magmom`` for the single points) become:

- **effective moments**: a site moment with ``|m| < MOMENT_THRESHOLD`` (0.5 μB) counts as 0.
  VASP prints small induced moments on nearly every site of a spin-polarised cell (O next to
  Fe, numerical noise on closed-shell ions); they are not local moments worth a kind of their
  own, and a cell whose moments are all that small is computed closed shell (RKS) unless its
  electron count is odd.
- **kinds**: atoms of one element whose effective moments, rounded to the nearest integer,
  differ get separate CP2K kinds with the element's basis and potential: ``Fe`` (moment 0),
  ``Fe_up4`` (+4 μB), ``Fe_dn4`` (-4 μB), each ``ELEMENT Fe`` with ``MAGNETIZATION`` = the
  rounded moment. An antiferromagnet thus starts from opposite atomic spin densities even
  though its multiplicity is 1 (UKS, never RKS).
- **multiplicity**: 1 + the number of unpaired electrons nearest to ``|Σ m|`` (effective
  moments, not rounded) that has the parity of the valence-electron count; a tie goes to
  the larger number.

What CP2K rejects (CP2K 2023.1, ``init_atom_electronic_state`` in ``qs_kind_types.F``): the
atomic guess puts ``MAGNETIZATION m`` as ``±m/2`` electrons into one valence shell of the
kind's pseudopotential configuration: the first shell (s, then p, d, f) that is partly
filled and has more than ``|m|/2`` electrons *and* more than ``|m|/2`` holes. When no shell
qualifies it aborts with "Magnetization value cannot be imposed for this atom type". So the
largest accepted ``|m|`` is just below ``2 * max(min(electrons, holes))`` over the partly
filled valence shells: Pt q18 (5s2 5p6 5d9 6s1): below 2; Ni q18 (3d8): below 4; Fe q16
(3d6): below 8; closed-shell configurations (Sr q10, Zn q12, Ba) accept no magnetisation at
all. :func:`magnetization_limit` reproduces that rule from the potential's electron
configuration; a moment at or above the limit is clamped to ``limit - 1`` (an odd integer,
still a spin-polarised guess), and where the limit is 0 (or the configuration cannot be read)
MAGNETIZATION is left out. Either way the input says so in a comment on the kind, and the
multiplicity still comes from the unclamped moments: MAGNETIZATION only biases the atomic
guess, MULTIPLICITY (and, at Γ with smearing, FIXED_MAGNETIC_MOMENT) sets the spin.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MOMENT_THRESHOLD = 0.5  # μB: smaller site moments count as 0
_HEADER = re.compile(r"^([A-Z][a-z]?)\s+(\S.*)$")

# Core shells of CP2K 2023.1's set_pseudo_state, by number of core electrons:
# angular momentum l -> occupations of the core shells of that l (lowest first).
_S, _P, _D = 2, 6, 10
_CORES: dict[int, dict[int, list[int]]] = {
    0: {},
    2: {0: [_S]},
    10: {0: [_S] * 2, 1: [_P]},
    18: {0: [_S] * 3, 1: [_P] * 2},
    28: {0: [_S] * 3, 1: [_P] * 2, 2: [_D]},
    36: {0: [_S] * 4, 1: [_P] * 3, 2: [_D]},
    46: {0: [_S] * 4, 1: [_P] * 3, 2: [_D] * 2},
    47: {0: [_S] * 4, 1: [_P] * 3, 2: [_D] * 2, 3: [1]},
    54: {0: [_S] * 5, 1: [_P] * 4, 2: [_D] * 2},
    60: {0: [_S] * 4, 1: [_P] * 3, 2: [_D] * 2, 3: [14]},
    68: {0: [_S] * 5, 1: [_P] * 4, 2: [_D] * 2, 3: [14]},
    78: {0: [_S] * 5, 1: [_P] * 4, 2: [_D] * 3, 3: [14]},
}


def effective_moments(moments, threshold: float = MOMENT_THRESHOLD) -> np.ndarray:
    """The moments with every ``|m| < threshold`` set to 0."""
    moments = np.asarray(moments, dtype=float).copy()
    moments[np.abs(moments) < threshold] = 0.0
    return moments


def unpaired_electrons(total_moment: float, n_electrons: int) -> int:
    """The number of unpaired electrons nearest to ``|total_moment|`` with the parity of
    ``n_electrons`` (a tie goes to the larger)."""
    target = abs(float(total_moment))
    parity = n_electrons % 2
    lower = math.floor(target)
    if lower % 2 != parity:
        lower -= 1
    upper = lower + 2
    if lower < 0 or target - lower >= upper - target:
        return upper
    return lower


def rounded_moment(moment: float) -> int:
    """The site moment rounded half away from zero (0.5 -> 1)."""
    return int(math.copysign(math.floor(abs(moment) + 0.5), moment))


def kind_name(element: str, moment: int) -> str:
    """``Fe`` for moment 0, ``Fe_up4`` / ``Fe_dn4`` for +4 / -4 (parse.read_input_geometry
    takes the element as the part before ``_``)."""
    if moment == 0:
        return element
    return f"{element}_{'up' if moment > 0 else 'dn'}{abs(moment)}"


@lru_cache(maxsize=32)
def _potential_configurations(path: Path) -> dict[tuple[str, str], tuple[int, ...] | None]:
    """(element, potential name) -> valence electrons per l (s, p, d, f) from a CP2K potential
    file; None where the line after the name is not a list of integers."""
    lines = path.read_text(errors="replace").splitlines()
    found: dict[tuple[str, str], tuple[int, ...] | None] = {}
    for number, line in enumerate(lines[:-1]):
        match = _HEADER.match(line.split("#", 1)[0].strip())
        if match is None:
            continue
        try:
            config = tuple(int(n) for n in lines[number + 1].split())
        except ValueError:
            config = None
        for name in match.group(2).split():
            found.setdefault((match.group(1), name), config)
    return found


def potential_configuration(
    data_dir: Path, potential_file: str, element: str, potential: str
) -> tuple[int, ...] | None:
    """Valence electrons per l of ``potential`` (GTH header line), or None if not found."""
    path = Path(data_dir) / potential_file
    if not path.is_file():
        return None
    return _potential_configurations(path).get((element, potential))


def valence_shells(element_z: int, configuration) -> dict[int, list[int]] | None:
    """l -> electrons in each valence shell of that l, as CP2K 2023.1 sets up the atomic
    guess of a pseudopotential (``set_pseudo_state``); None if CP2K knows no such core."""
    config = list(configuration)[:4] + [0] * (4 - len(list(configuration)[:4]))
    if any(n < 0 for n in config):
        return None
    core = _CORES.get(element_z - sum(config))
    if core is None:
        return None
    shells = {}
    for l_value, valence in enumerate(config):
        capacity = 2 * (2 * l_value + 1)
        core_l = core.get(l_value, [])
        remaining = sum(core_l) + valence
        total = []
        while True:
            total.append(min(remaining, capacity))
            if remaining <= capacity:
                break
            remaining -= capacity
        padded = core_l + [0] * max(0, len(total) - len(core_l))
        shells[l_value] = [t - c for t, c in zip(total, padded, strict=False)]
    return shells


def magnetization_limit(element_z: int, configuration) -> int | None:
    """CP2K accepts ``MAGNETIZATION m`` for this kind iff ``|m| < limit`` (0: never);
    None if the configuration is unknown."""
    if configuration is None:
        return None
    shells = valence_shells(element_z, configuration)
    if shells is None:
        return None
    limit = 0
    for l_value, occupations in shells.items():
        capacity = 2 * (2 * l_value + 1)
        for electrons in occupations:
            if 0 < electrons < capacity:
                limit = max(limit, 2 * min(electrons, capacity - electrons))
    return limit


@dataclass(frozen=True)
class Kind:
    """One CP2K kind: an element with one (rounded) initial moment."""

    name: str
    element: str
    moment: int  # μB, rounded site moment (0: the plain element kind)
    magnetization: float | None  # MAGNETIZATION written in &KIND (None: not written)
    note: str = ""  # why MAGNETIZATION differs from the moment, if it does


def assign_kinds(
    symbols, moments, basis: dict, data_dir: Path, atomic_numbers: dict[str, int]
) -> tuple[tuple[str, ...], tuple[Kind, ...]]:
    """Per-atom kind names and the kinds (in order of first appearance) for the effective
    ``moments``; MAGNETIZATION clamped or left out where CP2K could not place it."""
    names, kinds = [], {}
    for symbol, moment in zip(symbols, moments, strict=True):
        rounded = rounded_moment(moment) if abs(moment) >= MOMENT_THRESHOLD else 0
        name = kind_name(symbol, rounded)
        names.append(name)
        if name in kinds:
            continue
        magnetization, note = None, ""
        if rounded:
            choice = basis[symbol]
            config = potential_configuration(
                data_dir, choice.potential_file, symbol, choice.potential
            )
            limit = magnetization_limit(atomic_numbers[symbol], config)
            if limit is None:
                note = (
                    f"no MAGNETIZATION: the electron configuration of {choice.potential} "
                    f"({choice.potential_file}) could not be read"
                )
            elif abs(rounded) < limit:
                magnetization = float(rounded)
            elif limit >= 2:
                magnetization = float(math.copysign(limit - 1, rounded))
                note = (
                    f"MAGNETIZATION {magnetization:+.0f} instead of {rounded:+d}: CP2K's atomic "
                    f"guess places at most |m| < {limit} in {choice.potential}'s valence shells"
                )
            else:
                note = (
                    f"no MAGNETIZATION ({rounded:+d} wanted): {choice.potential} has no "
                    "partly filled valence shell, CP2K's atomic guess cannot place a moment"
                )
            if note:
                logger.warning("kind %s: %s", name, note)
        kinds[name] = Kind(name, symbol, rounded, magnetization, note)
    return tuple(names), tuple(kinds.values())
