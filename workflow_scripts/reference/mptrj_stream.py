"""MPtrj's one top-level JSON object cut into materials and their frames, streamed: a
vectorised brace scan (numpy) finds each material's object and its frames' byte spans, with no
copy and no parse (:mod:`.mptrj_frames` converts a frame, :mod:`.mptrj` runs the ingestion).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCK_BYTES = 1 << 24
KEY_BEFORE = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*$')


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
    match = KEY_BEFORE.search(buffer, start, end)
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
