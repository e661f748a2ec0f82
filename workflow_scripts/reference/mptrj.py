"""MPtrj (``MPtrj_2022.9_full.json``, 11 GB, 1.58 M frames) -> extxyz with mace-torch's keys.

The file is one JSON object ``{mp_id: {frame_id: frame}}``; it is streamed, never loaded
whole. Labels written (units of the extxyz contract, docs/architecture.md):

- ``REF_energy`` = ``uncorrected_total_energy`` (eV, whole cell): the raw VASP energy that is
  consistent with the forces. MACE-MP-0 was trained on it (the MPtrj->extxyz conversion of
  its training set, matbench-discovery ``models/mace/json*extxyz.py`` by Y. Chiang, keeps
  ``uncorrected_total_energy`` as the energy); ``corrected_total_energy`` adds the MP2020
  per-element corrections (what CHGNet's ``energy_per_atom`` label uses) and is not used.
- ``REF_forces`` = ``force`` (eV/Å, as written by VASP/pymatgen; no conversion).
- ``REF_stress`` = ``stress`` converted: MPtrj keeps VASP's stress in kBar with VASP's sign
  (positive = compressive). ASE's sign is the opposite (positive = tensile), so
  ``REF_stress = -0.1 * GPa * stress_kBar`` in eV/Å³ (the conversion ASE's own vasprun
  reader and CHGNet's MPtrj loader apply), Voigt order xx yy zz yz xz xy.
- ``REF_magmom`` (per atom, μB) = ``magmom``, VASP's converged site moments, when the frame
  has them (a list of one finite number per site); a frame whose ``magmom`` is null, absent
  or unusable has no such column. The CP2K single points of the subset start from these
  moments (docs/mptrj.md; :mod:`workflow_scripts.cp2k.magnetism`).

Speed (``benchmarks/bench_mptrj_stream.py``): the file is cut into material objects by a
vectorised brace scan (numpy) and each frame is converted by copying the number text of
positions, forces and moments into extxyz lines (regular expressions, no float round trip);
only the energy and the nine stress numbers are parsed. A frame whose text does not have the
expected layout (missing ``xyz``, disordered sites, NaN, repeated keys) falls back to a full
JSON parse of that frame, so the fast path changes speed, not results. ijson (yajl2_c) parses
about 5,000 frames/s on one core here before any conversion, below the 6,000 frames/s target.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path

import numpy as np

# ase.units.GPa (CODATA 2014, ASE's default): 1 GPa in eV/Å³.
GPA_IN_EV_PER_A3 = 1.0 / 160.21766208
# MPtrj stress (kBar, VASP sign: positive = compressive) -> eV/Å³, ASE sign.
KBAR_TO_ASE_STRESS = -0.1 * GPA_IN_EV_PER_A3
BLOCK_BYTES = 1 << 24
PROPERTIES = "species:S:1:pos:R:3:REF_forces:R:3"
PROPERTIES_MAGMOM = PROPERTIES + ":REF_magmom:R:1"

_KEY_BEFORE = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*$')
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


# --- streaming: the top-level object cut into materials and frames ---------------------------


@dataclass
class MaterialBlock:
    """One material's frames as byte spans of ``buffer`` (no copy, no parse)."""

    mp_id: str
    buffer: bytes
    # (frame_id, start, end, object_start, object_end): buffer[start:end] is the frame and
    # buffer[object_start:object_end] its first object value (the structure), or -1, -1
    frames: list[tuple[str, int, int, int, int]]


def _drop_escaped_quotes(arr: np.ndarray, pos: np.ndarray, is_quote: np.ndarray) -> np.ndarray:
    """``is_quote`` without the quotes escaped by an odd run of backslashes (rare in MPtrj)."""
    keep = is_quote.copy()
    for k in np.flatnonzero(is_quote):
        run, p = 0, pos[k] - 1
        while p >= 0 and arr[p] == 0x5C:
            run, p = run + 1, p - 1
        keep[k] = run % 2 == 0
    return keep


def _brace_events(buffer: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``{``/``}`` outside strings: positions, steps (+1/-1) and depth after each event
    (0 = inside the top-level object, between materials)."""
    arr = np.frombuffer(buffer, dtype=np.uint8)
    pos = np.flatnonzero((arr == 0x22) | (arr == 0x7B) | (arr == 0x7D))
    chars = arr[pos]
    is_quote = chars == 0x22
    if b"\\" in buffer:
        is_quote = _drop_escaped_quotes(arr, pos, is_quote)
    # an even number of quotes before a brace: it is not inside a string
    outside = (np.cumsum(is_quote, dtype=np.int32) & 1) == 0
    braces = outside & ~is_quote
    steps = np.where(chars[braces] == 0x7B, 1, -1).astype(np.int32)
    return pos[braces], steps, np.cumsum(steps, dtype=np.int32)


def _key_before(buffer: bytes, start: int, end: int) -> str:
    match = _KEY_BEFORE.search(buffer, start, end)
    if match is None:
        raise ValueError(
            f"MPtrj JSON: expected a quoted key before {buffer[max(start, end - 40) : end]!r}"
        )
    key = match.group(1)
    return json.loads(b'"' + key + b'"') if b"\\" in key else key.decode()


def _materials_in(buffer: bytes) -> tuple[list[MaterialBlock], int, bool]:
    """Complete materials of ``buffer`` (which starts between materials), the number of bytes
    they span, and whether the top-level object ends in ``buffer``."""
    positions, steps, depths = _brace_events(buffer)
    opens = positions[(steps == 1) & (depths == 1)]
    closes = positions[(steps == -1) & (depths == 0)]
    frame_opens = positions[(steps == 1) & (depths == 2)]
    frame_closes = positions[(steps == -1) & (depths == 1)]
    object_opens = positions[(steps == 1) & (depths == 3)]
    object_closes = positions[(steps == -1) & (depths == 2)]
    top_end = positions[(steps == -1) & (depths == -1)]
    n = len(closes)  # complete materials
    if n == 0:
        return [], 0, len(top_end) > 0
    n_frames = int(np.searchsorted(frame_opens, closes[-1]))  # frames of complete materials
    frame_opens, frame_closes = frame_opens[:n_frames], frame_closes[:n_frames]
    n_objects = int(np.searchsorted(object_opens, closes[-1]))
    object_opens, object_closes = object_opens[:n_objects], object_closes[:n_objects]
    # the first object inside each frame (its structure), if any
    k = np.minimum(np.searchsorted(object_opens, frame_opens), max(n_objects - 1, 0))
    if n_objects:
        has = object_opens[k] < frame_closes
        inner_start = np.where(has, object_opens[k], -1).tolist()
        inner_end = np.where(has, object_closes[k] + 1, -1).tolist()
    else:
        inner_start = inner_end = [-1] * n_frames
    bounds = np.searchsorted(frame_opens, opens[:n]).tolist() + [n_frames]
    f_starts, f_ends = frame_opens.tolist(), (frame_closes + 1).tolist()
    materials = []
    done = 0
    for m, (start, end) in enumerate(zip(opens[:n].tolist(), closes.tolist(), strict=True)):
        mp_id = _key_before(buffer, done, start)
        frames = []
        previous = start + 1
        for f in range(bounds[m], bounds[m + 1]):
            frame_id = _key_before(buffer, previous, f_starts[f])
            frames.append((frame_id, f_starts[f], f_ends[f], inner_start[f], inner_end[f]))
            previous = f_ends[f]
        materials.append(MaterialBlock(mp_id, buffer, frames))
        done = end + 1
    return materials, done, len(top_end) > 0


def iter_materials(
    path: Path | str,
    block_bytes: int = BLOCK_BYTES,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[MaterialBlock]:
    """Stream ``{mp_id: {frame_id: frame}}`` one material at a time (memory: a few blocks)."""
    with open(path, "rb") as handle:
        buffer = handle.read(block_bytes).lstrip()
        if not buffer.startswith(b"{"):
            raise ValueError(f"{path}: not an MPtrj JSON object (starts with {buffer[:20]!r})")
        buffer = buffer[1:]
        at_eof = False
        while True:
            if not at_eof and len(buffer) < block_bytes:
                more = handle.read(block_bytes)
                at_eof = not more
                buffer += more
            materials, done, finished = _materials_in(buffer)
            yield from materials
            if on_bytes:
                on_bytes(done)
            if finished:
                return
            if at_eof:
                raise ValueError(f"{path}: the JSON object does not end (truncated file?)")
            buffer = buffer[done:]
            if done == 0:  # a material larger than the buffer: read on
                more = handle.read(block_bytes)
                at_eof = not more
                buffer += more


# --- one frame -> extxyz text ----------------------------------------------------------------


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
    key = _KEY_BEFORE.search(buffer, max(start, s_start - 32), s_start) if s_start >= 0 else None
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


# --- ingestion: all frames -> test subset (random frames) + pool (other materials) ----------


@dataclass
class IngestStats:
    frames_read: int = 0
    frames_kept: int = 0
    materials: int = 0
    skipped: Counter = field(default_factory=Counter)
    test_frames: int = 0
    test_materials: int = 0
    pool_frames: int = 0

    def report(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.most_common()) or "none"
        return (
            f"read {self.frames_read} frames of {self.materials} materials; kept "
            f"{self.frames_kept}; skipped: {skipped}; test: {self.test_frames} frames of "
            f"{self.test_materials} materials; pool: {self.pool_frames} frames (the test "
            "materials' other frames are in neither)"
        )


def _progress(path: Path, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc=f"reading {path.name}",
        disable=not enabled,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
    )


def convert_all(
    source: Path,
    out: Path,
    name: str,
    elements: set[str] | None = None,
    progress: bool = True,
) -> tuple[IngestStats, array, array]:
    """Every usable frame to ``out``; returns stats, byte offsets and material index per frame."""
    stats = IngestStats()
    allowed = None if elements is None else {e.encode() for e in elements}
    offsets = array("q", [0])
    material_of = array("l")
    with open(out, "wb") as handle, _progress(source, progress) as bar:
        position = 0
        for material in iter_materials(source, on_bytes=bar.update):
            kept_here = 0
            for frame_id, start, end, s_start, s_end in material.frames:
                stats.frames_read += 1
                try:
                    text, symbols = convert_frame(
                        material.buffer,
                        start,
                        end,
                        material.mp_id,
                        frame_id,
                        name,
                        (s_start, s_end),
                    )
                except FrameSkipped as reason:
                    stats.skipped[str(reason)] += 1
                    continue
                if allowed is not None and not allowed.issuperset(symbols):
                    stats.skipped["element filter"] += 1
                    continue
                handle.write(text)
                position += len(text)
                offsets.append(position)
                material_of.append(stats.materials)
                kept_here += 1
            stats.materials += 1
            stats.frames_kept += kept_here
    return stats, offsets, material_of


def _copy_range(src, dst, start: int, stop: int, chunk: int = 1 << 24) -> None:
    src.seek(start)
    remaining = stop - start
    while remaining > 0:
        data = src.read(min(chunk, remaining))
        dst.write(data)
        remaining -= len(data)


def split_test_pool(
    all_frames: Path,
    offsets: array,
    material_of: array,
    test_size: int,
    seed: int,
    test_out: Path,
    pool_out: Path,
) -> tuple[int, int, int]:
    """Test = ``test_size`` frames drawn uniformly (seeded); pool = frames of every other
    material. Returns (test frames, test materials, pool frames)."""
    n_frames = len(material_of)
    if test_size > n_frames:
        raise ValueError(f"test_size {test_size} > {n_frames} usable MPtrj frames")
    rng = np.random.default_rng(seed)
    test = np.sort(rng.choice(n_frames, size=test_size, replace=False))
    materials = np.frombuffer(material_of, dtype=np.int64) if n_frames else np.zeros(0, int)
    in_test_material = np.isin(materials, np.unique(materials[test]))
    with open(all_frames, "rb") as src:
        with open(test_out, "wb") as dst:
            for i in test:
                _copy_range(src, dst, offsets[i], offsets[i + 1])
        with open(pool_out, "wb") as dst:
            pool = np.flatnonzero(~in_test_material)
            if len(pool):  # contiguous runs of pool frames are copied in one piece
                breaks = np.flatnonzero(np.diff(pool) != 1)
                run_starts = np.concatenate([[pool[0]], pool[breaks + 1]])
                run_ends = np.concatenate([pool[breaks], [pool[-1]]])
                for first, last in zip(run_starts, run_ends, strict=True):
                    _copy_range(src, dst, offsets[first], offsets[last + 1])
    return len(test), len(np.unique(materials[test])), int((~in_test_material).sum())


def ingest(
    source: Path,
    test_out: Path,
    pool_out: Path,
    name: str,
    test_size: int,
    seed: int,
    elements: list[str] | None = None,
    progress: bool = True,
) -> IngestStats:
    """MPtrj JSON -> ``test_out`` (random frames) and ``pool_out`` (the other materials)."""
    pool_out.parent.mkdir(parents=True, exist_ok=True)
    test_out.parent.mkdir(parents=True, exist_ok=True)
    scratch = pool_out.with_name(f".{pool_out.name}.all-frames.tmp")
    try:
        stats, offsets, material_of = convert_all(
            source, scratch, name, set(elements) if elements else None, progress
        )
        stats.test_frames, stats.test_materials, stats.pool_frames = split_test_pool(
            scratch, offsets, material_of, test_size, seed, test_out, pool_out
        )
    finally:
        scratch.unlink(missing_ok=True)
    return stats


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
    columns = sorted({el for comp in compositions for el, _ in comp})
    column = {el: k for k, el in enumerate(columns)}
    rank_of = np.empty(len(order), dtype=np.int64)
    rank_of[order] = np.arange(len(order))

    def vector(comp) -> np.ndarray:
        v = np.zeros(len(columns))
        for el, n in comp:
            v[column[el]] = n
        return v / np.linalg.norm(v)

    basis: list[np.ndarray] = []

    def outside(v: np.ndarray) -> np.ndarray:
        for b in basis:
            v = v - (b @ v) * b
        return v

    def determined(el: str) -> bool:
        unit = np.zeros(len(columns))
        unit[column[el]] = 1.0
        return float(np.linalg.norm(outside(unit))) < 1e-8

    # per element: its U-free compositions, first frame of each in permutation order
    by_element: dict[str, list[tuple[int, int, int]]] = {}
    for comp_id, frames in candidates.items():
        first = min(frames, key=rank_of.__getitem__)
        for el, _ in compositions[comp_id]:
            by_element.setdefault(el, []).append((int(rank_of[first]), first, comp_id))
    for entries in by_element.values():
        entries.sort()
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
            if determined(el):
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
                rest = outside(vector(compositions[comp_id]))
                norm = float(np.linalg.norm(rest))
                useless.add(comp_id)
                if norm > 1e-8:
                    basis.append(rest / norm)
                    picks.append(position)
                    picked_compositions.append(compositions[comp_id])
                    progress = True
                    break
    return picks, {el for el in targets if determined(el)}


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


# --- CLI -------------------------------------------------------------------------------------


def _settings(path: Path) -> dict:
    return json.loads(Path(path).read_text())["mptrj"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.reference.mptrj")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="MPtrj JSON -> test.extxyz + pool.extxyz")
    p.add_argument("--source", type=Path, required=True, help="MPtrj JSON file")
    p.add_argument("--settings", type=Path, required=True, help="the reference settings (JSON)")
    p.add_argument("--test", type=Path, required=True, help="output: test frames")
    p.add_argument("--pool", type=Path, required=True, help="output: pool (other materials)")
    p.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("cp2k-subset", help="seeded pool subset for CP2K single points")
    c.add_argument("--pool", type=Path, required=True)
    c.add_argument("--settings", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument(
        "--cover-elements",
        nargs="*",
        default=[],
        help="elements (of the Perovs-Dopants data set) whose CP2K/VASP energy offsets the "
        "subset must determine where the pool allows (stratified selection)",
    )
    c.add_argument(
        "--allowed-elements",
        nargs="*",
        default=None,
        help="only pool frames made of these elements (those CP2K can compute and that have an "
        "isolated atom); default: the settings' cp2k_subset_elements",
    )
    args = parser.parse_args(argv)
    settings = _settings(args.settings)
    if args.command == "ingest":
        stats = ingest(
            args.source,
            args.test,
            args.pool,
            name=settings["name"],
            test_size=settings["test_size"],
            seed=settings["seed"],
            elements=settings.get("elements"),
            progress=not args.no_progress,
        )
        print(stats.report())
    else:
        allowed = args.allowed_elements
        if allowed is None:
            allowed = settings.get("cp2k_subset_elements")
        report = select_cp2k_subset_report(
            args.pool,
            args.out,
            size=settings["cp2k_subset_size"],
            seed=settings["seed"],
            max_atoms=settings.get("cp2k_subset_max_atoms"),
            elements=allowed,
            cover_elements=args.cover_elements,
        )
        if args.allowed_elements is not None:
            print(
                f"CP2K subset restricted to {len(allowed)} elements CP2K can compute (a MOLOPT "
                f"basis with a GTH potential, and an isolated atom): {' '.join(allowed)}"
            )
        print(f"CP2K single points: {report.text()}; pool frames {report.chosen[:20]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
