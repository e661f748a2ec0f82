"""One MPtrj frame -> extxyz text with mace-torch's keys (units and signs: :mod:`.mptrj`).

The fast path copies the number text of positions, forces and moments into extxyz lines
(regular expressions, no float round trip) and parses only the energy and the nine stress
numbers; a frame whose text does not have the expected layout falls back to a full JSON parse
of that frame (:func:`frame_parsed`), so the fast path changes speed, not results.
"""

from __future__ import annotations

import json
import math
import re
from itertools import chain, repeat

import numpy as np

from workflow_scripts.cp2k.units import GPA_TO_EV_PER_ANGSTROM3
from workflow_scripts.reference.mptrj_stream import KEY_BEFORE

# MPtrj stress (kBar, VASP sign: positive = compressive) -> eV/Å³, ASE sign.
KBAR_TO_ASE_STRESS = -0.1 * GPA_TO_EV_PER_ANGSTROM3
PROPERTIES = "species:S:1:pos:R:3:REF_forces:R:3"
PROPERTIES_MAGMOM = PROPERTIES + ":REF_magmom:R:1"

_ELEMENT = re.compile(rb'"element":\s*"([A-Z][a-z]?)"')
_XYZ = re.compile(rb'"xyz":\s*\[([^\[\]]*)\]')
_ROWS3 = rb"\[\s*\[([^\[\]]*)\]\s*,\s*\[([^\[\]]*)\]\s*,\s*\[([^\[\]]*)\]\s*\]"
_MATRIX = re.compile(rb'"matrix":\s*' + _ROWS3)
_STRESS = re.compile(rb'"stress":\s*(?:' + _ROWS3 + rb"|(null))")
_FORCE = re.compile(rb'"force":\s*\[((?:\s*\[[^\[\]]*\]\s*,?)*)\s*\]')
_ROW = re.compile(rb"\[([^\[\]]*)\]")
_FORCE_START = re.compile(rb'"force":\s*\[')
_ENERGY = re.compile(rb'"uncorrected_total_energy":\s*(-?[0-9][0-9.eE+-]*|null)')
# the frame's magmom list (site properties' "magmom" are numbers, never a list or null)
_MAGMOM = re.compile(rb'"magmom":\s*(?:\[([^\[\]]*)\]|(null))')
_NUMBER_CHARS = b"0123456789.-+eE,\n\r\t "


class FrameSkipped(ValueError):
    """A frame without usable labels; the message is the reason (counted, not fatal)."""


def _voigt_ase(stress_kbar) -> tuple[float, ...]:
    s = [[float(x) for x in row] for row in stress_kbar]
    k = KBAR_TO_ASE_STRESS
    return (
        s[0][0] * k,
        s[1][1] * k,
        s[2][2] * k,
        0.5 * (s[1][2] + s[2][1]) * k,
        0.5 * (s[0][2] + s[2][0]) * k,
        0.5 * (s[0][1] + s[1][0]) * k,
    )


_HEADER = (
    b'%d\nLattice="%s" Properties=%s REF_energy=%s%s'
    b' mp_id=%s frame_id=%s config_type=%s dataset=%s pbc="T T T"\n'
)
_PROPERTIES = (PROPERTIES.encode(), PROPERTIES_MAGMOM.encode())


def _header(
    natoms, lattice: bytes, energy: bytes, stress, mp_id, frame_id, name, magmom=False
) -> bytes:
    stress_part = b"" if stress is None else b' REF_stress="%r %r %r %r %r %r"' % stress
    ids = (mp_id.encode(), frame_id.encode(), name.encode(), name.encode())
    return _HEADER % (natoms, lattice, _PROPERTIES[magmom], energy, stress_part, *ids)


# JSON number lists -> whitespace-separated numbers on one line; NUL marks extxyz line ends.
_TO_SPACES = bytes.maketrans(b",\n\r\t", b"    ")


def _numbers(text: bytes) -> bytes:
    return text.translate(_TO_SPACES).replace(b"\0", b"\n")


def _search(pattern, buffer: bytes, regions):
    for lo, hi in regions:
        match = pattern.search(buffer, lo, hi)
        if match is not None:
            return match
    return None


def _after_markers(chunk: bytes, marker: bytes, stop: bytes) -> list[bytes]:
    """The text after each ``marker`` up to the next ``stop`` (json.dump's default spacing)."""
    return [part.partition(stop)[0] for part in chunk.split(marker)[1:]]


def _sites(buffer: bytes, lo: int, hi: int) -> tuple[list[bytes], list[bytes]]:
    """Element symbols and cartesian-coordinate texts of the sites in ``buffer[lo:hi]``."""
    chunk = buffer[lo:hi]
    xyz = _after_markers(chunk, b'"xyz": [', b"]")
    if xyz:  # json.dump's ", " and ": " separators: split, faster than regex
        return _after_markers(chunk, b'"element": "', b'"'), xyz
    return _ELEMENT.findall(buffer, lo, hi), _XYZ.findall(buffer, lo, hi)


def _magmom_text(buffer: bytes, regions) -> bytes | None:
    """The text inside the frame's ``magmom`` list, or None when it is null or absent. MPtrj
    writes it near the frame's end: searched backwards with json.dump's spacing first."""
    lo, hi = regions[0]
    at = buffer.rfind(b'"magmom": [', lo, hi)
    if at >= 0:
        return buffer[at + 11 : buffer.find(b"]", at)]
    if buffer.rfind(b'"magmom": null', lo, hi) >= 0:
        return None
    match = _search(_MAGMOM, buffer, regions)  # other spacing or key order
    return None if match is None or match.group(2) is not None else match.group(1)


def _force_rows(buffer: bytes, regions) -> list[bytes] | None:
    """The row texts of the ``force`` list ([[fx, fy, fz], ...])."""
    match = _search(_FORCE_START, buffer, regions)
    if match is None:
        return None
    end = buffer.find(b"]]", match.end())  # json.dump's spacing; checked: no key in between
    if end >= 0 and buffer.find(b'"', match.end(), end) < 0:
        return _ROW.findall(buffer, match.end(), end + 1)
    whole = _FORCE.match(buffer, match.start())
    return None if whole is None else _ROW.findall(whole.group(1))


def frame_fast(
    buffer: bytes,
    start: int,
    end: int,
    mp_id: str,
    frame_id: str,
    name: str,
    structure: tuple[int, int] = (-1, -1),
):
    """(extxyz bytes, element symbols) by copying number text, or None when the layout is
    unusual (then :func:`frame_parsed` converts the frame). ``structure`` is the span of the
    frame's structure object when known: its sites are searched there, the labels after it."""
    s_start, s_end = structure
    key = KEY_BEFORE.search(buffer, max(start, s_start - 32), s_start) if s_start >= 0 else None
    if key is not None and key.group(1) == b"structure":
        sites, labels = (s_start, s_end), [(s_end, end), (start, s_start)]
    else:
        sites, labels = (start, end), [(start, end)]
    elements, xyz = _sites(buffer, *sites)
    natoms = len(xyz)
    if natoms == 0 or len(elements) != natoms:
        return None  # no cartesian coordinates, or a site with several species
    occupied = buffer.count(b'"occu": 1', *sites) + buffer.count(b'"occu":1', *sites)
    if occupied != natoms:
        return None  # partial occupancy (or another layout: the full parse decides)
    matrix = _MATRIX.search(buffer, *sites)
    rows = _force_rows(buffer, labels)
    stress = _search(_STRESS, buffer, labels)
    energy = _search(_ENERGY, buffer, labels)
    if rows is None or matrix is None or stress is None or energy is None or len(rows) != natoms:
        return None
    if energy.group(1) == b"null":
        raise FrameSkipped("no uncorrected_total_energy")
    voigt = None
    if stress.group(4) is None:
        voigt = _voigt_ase([row.split(b",") for row in stress.group(1, 2, 3)])
        if not all(map(math.isfinite, voigt)):
            return None
    text = _magmom_text(buffer, labels)
    moments = None
    if text is not None:
        moments = text.split(b",")
        if len(moments) != natoms or not text.strip() or text.translate(None, _NUMBER_CHARS):
            return None  # not one plain number per site: the full parse decides
    if moments is None:
        columns = zip(elements, repeat(b" "), xyz, repeat(b" "), rows, repeat(b"\0"))
    else:
        columns = zip(
            elements, repeat(b" "), xyz, repeat(b" "), rows, repeat(b" "), moments, repeat(b"\0")
        )
    body = _numbers(b"".join(chain.from_iterable(columns)))
    lattice = _numbers(b" ".join(matrix.group(1, 2, 3)))
    if b"N" in lattice or b"I" in lattice or b"NaN" in body or b"Inf" in body:
        return None
    header = _header(
        natoms, lattice, energy.group(1), voigt, mp_id, frame_id, name, moments is not None
    )
    return header + body, elements


def frame_parsed(frame: dict, mp_id: str, frame_id: str, name: str):
    """The same conversion from a parsed frame dict (the general, slower path)."""
    energy = frame.get("uncorrected_total_energy")
    if energy is None:
        raise FrameSkipped("no uncorrected_total_energy")
    structure = frame["structure"]
    matrix = np.asarray(structure["lattice"]["matrix"], dtype=float)
    sites = structure["sites"]
    elements = []
    positions = []
    for site in sites:
        species = site["species"]
        if len(species) != 1 or abs(float(species[0].get("occu", 1)) - 1) > 1e-8:
            raise FrameSkipped("disordered site")
        elements.append(species[0]["element"])
        xyz = site.get("xyz")
        positions.append(xyz if xyz is not None else np.asarray(site["abc"]) @ matrix)
    forces = np.asarray(frame.get("force") or [], dtype=float)
    positions = np.asarray(positions, dtype=float)
    if forces.shape != positions.shape or not len(sites):
        raise FrameSkipped("forces missing or not one per atom")
    stress = frame.get("stress")
    voigt = None if stress is None else _voigt_ase(stress)
    values = [energy, *matrix.ravel(), *forces.ravel(), *positions.ravel(), *(voigt or ())]
    if not all(math.isfinite(v) for v in values):
        raise FrameSkipped("non-finite value")
    lattice = " ".join(map(repr, matrix.ravel().tolist())).encode()
    moments = _moments(frame.get("magmom"), len(sites))
    lines = [
        _header(
            len(sites),
            lattice,
            repr(float(energy)).encode(),
            voigt,
            mp_id,
            frame_id,
            name,
            moments is not None,
        )
    ]
    extra = [[]] * len(sites) if moments is None else [[repr(m)] for m in moments]
    lines += [
        " ".join([el, *map(repr, pos.tolist()), *map(repr, f.tolist()), *m]).encode() + b"\n"
        for el, pos, f, m in zip(elements, positions, forces, extra, strict=True)
    ]
    return b"".join(lines), [e.encode() for e in elements]


def _moments(magmom, natoms: int) -> list[float] | None:
    """MPtrj's ``magmom`` as floats, or None when null, absent or not one finite number per
    site (the frame is kept, without moments)."""
    if not isinstance(magmom, list) or len(magmom) != natoms:
        return None
    if not all(isinstance(m, (int, float)) and not isinstance(m, bool) for m in magmom):
        return None
    moments = [float(m) for m in magmom]
    return moments if all(map(math.isfinite, moments)) else None


def convert_frame(
    buffer: bytes,
    start: int,
    end: int,
    mp_id: str,
    frame_id: str,
    name: str,
    structure: tuple[int, int] = (-1, -1),
):
    """extxyz bytes and element symbols (bytes) of one frame; raises FrameSkipped for
    unusable frames."""
    converted = frame_fast(buffer, start, end, mp_id, frame_id, name, structure)
    if converted is None:
        converted = frame_parsed(json.loads(buffer[start:end]), mp_id, frame_id, name)
    return converted
