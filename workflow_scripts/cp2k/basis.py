"""Basis set and GTH pseudopotential per element, read from CP2K's own data files.

The study asks for TZVP-MOLOPT with GTH potentials whose valence (``qN``) matches the basis.
CP2K's files spread these over several families; we search them in this order for each basis
tier of ``dft.basis_preference`` (e.g. TZVP, then DZVP, then SZV):

1. ``BASIS_MOLOPT_UZH`` + ``POTENTIAL_UZH``: ``TZVP-MOLOPT-PBE-GTH-qN`` for almost every element
   (the metals' TZVP is only here);
2. ``BASIS_MOLOPT`` + ``GTH_POTENTIALS``: the original MOLOPT sets (SZV/DZVP-MOLOPT-SR for
   metals, TZVP-MOLOPT-GTH for light elements);
3. ``BASIS_MOLOPT_UCL`` + ``GTH_POTENTIALS``: La and the lanthanides (e.g. Nd, q14).

A basis is accepted only when its family's potential file has ``GTH-<XC>-qN`` with the same N.
Where several valences exist (e.g. Au q11/q19) the smallest wins; ``dft.elements.<El>``
overrides any choice. Every choice carries a note that the generated input prints, so a
fallback is visible in each input file.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_ELEMENT = re.compile(r"^[A-Z][a-z]?$")
_VALENCE = re.compile(r"-q(\d+)$")


class BasisError(ValueError):
    """No basis/potential pair for an element, or an inconsistent override."""


class NoBasisError(BasisError):
    """The CP2K data files have no basis of the preferred tiers with a matching potential for
    an element: a physical limit of the settings, not a mistake (a missing data folder or a
    wrong ``dft.elements`` override is a plain :class:`BasisError`). A CP2K job ends as a
    failed job (``failure_kind: no_basis``) instead of stopping the workflow."""


@dataclass(frozen=True)
class Family:
    name: str
    basis_file: str
    potential_file: str
    pattern: str  # regex with {tier} and {xc}

    def matches(self, basis_name: str, tier: str, xc: str) -> bool:
        return re.fullmatch(self.pattern.format(tier=tier, xc=xc), basis_name) is not None


FAMILIES: tuple[Family, ...] = (
    Family("UZH", "BASIS_MOLOPT_UZH", "POTENTIAL_UZH", r"{tier}-MOLOPT-{xc}-GTH-q\d+"),
    Family("MOLOPT", "BASIS_MOLOPT", "GTH_POTENTIALS", r"{tier}-MOLOPT(-SR)?-GTH(-q\d+)?"),
    Family("UCL", "BASIS_MOLOPT_UCL", "GTH_POTENTIALS", r"{tier}-MOLOPT(-SR)?-GTH(-q\d+)?"),
)


@dataclass(frozen=True)
class BasisChoice:
    """What one element gets in the input, and why."""

    element: str
    basis: str
    basis_file: str
    potential: str
    potential_file: str
    valence: int
    note: str
    n_functions: int = 0  # spherical basis functions per atom


@dataclass(frozen=True)
class _Entry:
    names: tuple[str, ...]  # the name and its aliases
    valence: int | None
    n_functions: int = 0  # spherical basis functions (basis sets only)


def find_data_dir(configured: str | None = None, command: str = "cp2k.psmp") -> Path:
    """CP2K's data folder: the configured one, ``$CP2K_DATA_DIR``, or next to the binary."""
    candidates = []
    if configured:
        candidates.append(Path(configured))
    if os.environ.get("CP2K_DATA_DIR"):
        candidates.append(Path(os.environ["CP2K_DATA_DIR"]))
    binary = shutil.which(command)
    if binary:
        prefix = Path(binary).resolve().parent.parent
        candidates += [prefix / "share" / "cp2k" / "data", prefix / "share" / "cp2k"]
    candidates.append(Path("/usr/share/cp2k"))
    for candidate in candidates:
        if (candidate / "BASIS_MOLOPT").is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise BasisError(
        f"CP2K data folder with BASIS_MOLOPT not found (tried {tried}); set dft.data_dir"
    )


def _is_header(tokens: list[str]) -> bool:
    return (
        len(tokens) >= 2
        and _ELEMENT.match(tokens[0]) is not None
        and re.match(r"^[-+\d.]", tokens[1]) is None
    )


def _spherical_functions(lines: list[str], start: int) -> int:
    """Spherical functions of the basis whose header is ``lines[start]`` (0 if unreadable).

    Format: number of sets, then per set ``n lmin lmax nexp nshell(lmin) ... nshell(lmax)``
    followed by ``nexp`` exponent lines."""
    try:
        n_sets = int(lines[start + 1].split()[0])
        count, row = 0, start + 2
        for _ in range(n_sets):
            numbers = [int(t) for t in lines[row].split()]
            lmin, lmax, n_exponents = numbers[1], numbers[2], numbers[3]
            shells = numbers[4 : 4 + lmax - lmin + 1]
            count += sum(n * (2 * (lmin + i) + 1) for i, n in enumerate(shells))
            row += 1 + n_exponents
        return count
    except (ValueError, IndexError):
        return 0


@lru_cache(maxsize=32)
def read_basis_file(path: Path) -> dict[str, tuple[_Entry, ...]]:
    """Element -> basis entries (names, valence from the ``-qN`` suffix, size), in file order."""
    entries: dict[str, list[_Entry]] = {}
    lines = path.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines):
        tokens = line.split("#", 1)[0].split()
        if not _is_header(tokens):
            continue
        valence = None
        for name in tokens[1:]:
            match = _VALENCE.search(name)
            if match:
                valence = int(match.group(1))
        size = _spherical_functions(lines, number)
        entries.setdefault(tokens[0], []).append(_Entry(tuple(tokens[1:]), valence, size))
    return {element: tuple(found) for element, found in entries.items()}


@lru_cache(maxsize=32)
def read_potential_file(path: Path) -> dict[str, tuple[_Entry, ...]]:
    """Element -> potentials, valence = sum of the electron counts on the line after the name."""
    lines = path.read_text(errors="replace").splitlines()
    entries: dict[str, list[_Entry]] = {}
    for number, line in enumerate(lines[:-1]):
        tokens = line.split("#", 1)[0].split()
        if not _is_header(tokens):
            continue
        try:
            valence = sum(int(n) for n in lines[number + 1].split())
        except ValueError:
            continue
        entries.setdefault(tokens[0], []).append(_Entry(tuple(tokens[1:]), valence))
    return {element: tuple(found) for element, found in entries.items()}


def _potential_named(data_dir: Path, potential_file: str, element: str, name: str) -> _Entry:
    for entry in read_potential_file(data_dir / potential_file).get(element, ()):
        if name in entry.names:
            return entry
    raise BasisError(f"{element}: potential {name!r} not found in {data_dir / potential_file}")


def _basis_named(data_dir: Path, basis_file: str, element: str, name: str) -> _Entry:
    for entry in read_basis_file(data_dir / basis_file).get(element, ()):
        if name in entry.names:
            return entry
    raise BasisError(f"{element}: basis set {name!r} not found in {data_dir / basis_file}")


def _candidates(data_dir: Path, family: Family, element: str, tier: str, xc: str):
    """(basis name, valence, potential name) of one family and tier, best first."""
    path = data_dir / family.basis_file
    if not path.is_file():
        return []
    found = []
    for order, entry in enumerate(read_basis_file(path).get(element, ())):
        if entry.valence is None or not family.matches(entry.names[0], tier, xc):
            continue
        potential = f"GTH-{xc}-q{entry.valence}"
        try:
            _potential_named(data_dir, family.potential_file, element, potential)
        except BasisError:
            continue
        short_range_first = 0 if "-SR-" in entry.names[0] else 1
        found.append(((entry.valence, short_range_first, order), entry, potential))
    return [(entry, potential) for _, entry, potential in sorted(found, key=lambda f: f[0])]


def _override_choice(element: str, override: dict, data_dir: Path, xc: str) -> BasisChoice:
    """An element's basis/potential named in ``dft.elements``: checked, valences compared."""
    basis = override["basis"]
    basis_file = override.get("basis_file")
    files = [basis_file] if basis_file else [f.basis_file for f in FAMILIES]
    entry = None
    for name in files:
        try:
            entry = _basis_named(data_dir, name, element, basis)
            basis_file = name
            break
        except BasisError:
            continue
    if entry is None:
        raise BasisError(f"dft.elements.{element}.basis: {basis!r} not found in {files}")
    family = next((f for f in FAMILIES if f.basis_file == basis_file), None)
    potential_file = override.get("potential_file") or (
        family.potential_file if family else "GTH_POTENTIALS"
    )
    potential = override.get("potential") or f"GTH-{xc}-q{entry.valence}"
    pot_entry = _potential_named(data_dir, potential_file, element, potential)
    if entry.valence is not None and entry.valence != pot_entry.valence:
        raise BasisError(
            f"dft.elements.{element}: basis {basis} has q{entry.valence} but potential "
            f"{potential} ({potential_file}) has {pot_entry.valence} electrons"
        )
    return BasisChoice(
        element,
        basis,
        basis_file,
        potential,
        potential_file,
        pot_entry.valence,
        "set in dft.elements (config override)",
        entry.n_functions,
    )


def choose_basis(
    element: str,
    preference: list[str] | tuple[str, ...],
    xc: str = "PBE",
    data_dir: Path | None = None,
    override: dict | None = None,
) -> BasisChoice:
    """The first basis tier of ``preference`` found for ``element``, with its potential."""
    data_dir = data_dir or find_data_dir()
    if override and override.get("basis"):
        return _override_choice(element, override, data_dir, xc)
    for rank, tier in enumerate(preference):
        for family in FAMILIES:
            candidates = _candidates(data_dir, family, element, tier, xc)
            if not candidates:
                continue
            entry, potential = candidates[0]
            basis, valence = entry.names[0], entry.valence
            if rank == 0:
                note = f"{tier} (first preference) from {family.basis_file}"
            else:
                missing = ", ".join(preference[:rank])
                note = (
                    f"FALLBACK: no {missing}-MOLOPT basis with a matching GTH-{xc} potential "
                    f"for {element}; using {tier} from {family.basis_file}"
                )
            others = sorted({e.valence for e, _ in candidates} - {valence})
            if others:
                listed = ", ".join(f"q{q}" for q in others)
                note += f"; smallest valence q{valence} chosen (also available: {listed})"
            return BasisChoice(
                element,
                basis,
                family.basis_file,
                potential,
                family.potential_file,
                valence,
                note,
                entry.n_functions,
            )
    raise NoBasisError(
        f"{element}: no basis of tiers {list(preference)} with a matching GTH-{xc} potential in "
        f"{[f.basis_file for f in FAMILIES]} under {data_dir}; name one in dft.elements.{element}"
    )


def choose_all(elements, settings: dict, data_dir: Path | None = None) -> dict[str, BasisChoice]:
    """:func:`choose_basis` for each element with the settings' preference and overrides."""
    data_dir = data_dir or find_data_dir(settings.get("data_dir"), settings.get("command"))
    overrides = settings.get("elements", {})
    return {
        element: choose_basis(
            element,
            settings["basis_preference"],
            settings.get("xc", "PBE"),
            data_dir,
            overrides.get(element),
        )
        for element in sorted(set(elements))
    }
