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

Speed (``benchmarks/bench_mptrj_stream.py``): the file is cut into material objects by a
vectorised brace scan (numpy) and each frame is converted by copying the number text of
positions and forces into extxyz lines (regular expressions, no float round trip); only the
energy and the nine stress numbers are parsed. A frame whose text does not have the expected
layout (missing ``xyz``, disordered sites, NaN, repeated keys) falls back to a full JSON parse
of that frame, so the fast path changes speed, not results. ijson (yajl2_c backend) parses
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
    b'%d\nLattice="%s" Properties=' + PROPERTIES.encode() + b" REF_energy=%s%s"
    b' mp_id=%s frame_id=%s config_type=%s dataset=%s pbc="T T T"\n'
)


def _header(natoms, lattice: bytes, energy: bytes, stress, mp_id, frame_id, name) -> bytes:
    stress_part = b"" if stress is None else b' REF_stress="%r %r %r %r %r %r"' % stress
    ids = (mp_id.encode(), frame_id.encode(), name.encode(), name.encode())
    return _HEADER % (natoms, lattice, energy, stress_part, *ids)


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
    body = _numbers(
        b"".join(
            chain.from_iterable(zip(elements, repeat(b" "), xyz, repeat(b" "), rows, repeat(b"\0")))
        )
    )
    lattice = _numbers(b" ".join(matrix.group(1, 2, 3)))
    if b"N" in lattice or b"I" in lattice or b"NaN" in body or b"Inf" in body:
        return None
    header = _header(natoms, lattice, energy.group(1), voigt, mp_id, frame_id, name)
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
    lines = [
        _header(len(sites), lattice, repr(float(energy)).encode(), voigt, mp_id, frame_id, name)
    ]
    lines += [
        " ".join([el, *map(repr, pos.tolist()), *map(repr, f.tolist())]).encode() + b"\n"
        for el, pos, f in zip(elements, positions, forces, strict=True)
    ]
    return b"".join(lines), [e.encode() for e in elements]


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


def select_cp2k_subset(
    pool: Path,
    out: Path,
    size: int,
    seed: int,
    max_atoms: int | None = None,
    elements: list[str] | None = None,
) -> list[int]:
    """A seeded random subset of pool frames (labels kept) for CP2K single points."""
    from workflow_scripts.reference.extxyz import iter_raw_frames, write_selected

    allowed = set(elements) if elements else None
    eligible = []
    for frame in iter_raw_frames(pool):
        if max_atoms is not None and frame.natoms > max_atoms:
            continue
        if allowed is not None:
            symbols = {line.split(maxsplit=1)[0] for line in frame.text.splitlines()[2:]}
            if not symbols <= allowed:
                continue
        eligible.append(frame.index)
    if size > len(eligible):
        raise ValueError(
            f"cp2k_subset_size {size} > {len(eligible)} eligible pool frames "
            f"(max_atoms={max_atoms}, elements={elements})"
        )
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(eligible, size=size, replace=False).tolist()) if size else []
    if size:
        write_selected(pool, out, chosen)
    else:
        Path(out).write_text("")
    return chosen


# --- CLI -------------------------------------------------------------------------------------


def _settings(path: Path) -> dict:
    return json.loads(Path(path).read_text())["mptrj"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.reference.mptrj")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="MPtrj JSON -> test.extxyz + pool.extxyz")
    p.add_argument("--source", type=Path, required=True, help="MPtrj JSON file")
    p.add_argument("--settings", type=Path, required=True, help="results/config/reference.json")
    p.add_argument("--test", type=Path, required=True, help="output: test frames")
    p.add_argument("--pool", type=Path, required=True, help="output: pool (other materials)")
    p.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("cp2k-subset", help="seeded pool subset for CP2K single points")
    c.add_argument("--pool", type=Path, required=True)
    c.add_argument("--settings", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
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
        chosen = select_cp2k_subset(
            args.pool,
            args.out,
            size=settings["cp2k_subset_size"],
            seed=settings["seed"],
            max_atoms=settings.get("cp2k_subset_max_atoms"),
            elements=settings.get("cp2k_subset_elements"),
        )
        print(f"{len(chosen)} pool frames for CP2K single points: {chosen[:20]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
