"""Fast, byte-preserving extxyz frame I/O for large files (the MPtrj pool has 1.5 M frames).

Frames are copied as text, so a frame selected from a pool is written exactly as it was
read; only the comment line is parsed (with ASE's own key=value parser) when a selection
needs per-frame information such as ``config_type``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

ISOLATED_ATOM = "IsolatedAtom"


@dataclass(frozen=True)
class RawFrame:
    """One frame as text: ``text`` holds the count line, the comment line and the atoms."""

    index: int
    natoms: int
    comment: str
    text: str

    def info(self) -> dict:
        """The comment line's key=value pairs, parsed as ASE does."""
        from ase.io.extxyz import key_val_str_to_dict

        return key_val_str_to_dict(self.comment)


def iter_raw_frames(path: Path | str) -> Iterator[RawFrame]:
    """Every frame of an extxyz file, in order, without building Atoms objects."""
    with open(path, encoding="utf-8") as handle:
        index = 0
        while True:
            count_line = handle.readline()
            if not count_line:
                return
            if not count_line.strip():
                continue
            natoms = int(count_line)
            comment = handle.readline()
            atom_lines = list(islice(handle, natoms))
            if len(atom_lines) < natoms:
                raise ValueError(f"{path}: frame {index} is truncated")
            if natoms and not atom_lines[-1].endswith("\n"):  # last line of the file
                atom_lines[-1] += "\n"
            yield RawFrame(
                index, natoms, comment.rstrip("\n"), count_line + comment + "".join(atom_lines)
            )
            index += 1


def is_isolated_atom(frame: RawFrame, info: dict | None = None) -> bool:
    """An E0 frame: ``config_type=IsolatedAtom``, or a single atom without periodicity."""
    if info is None:
        if frame.natoms != 1 and ISOLATED_ATOM not in frame.comment:
            return False  # most frames: no need to parse the comment line
        info = frame.info()
    if info.get("config_type") == ISOLATED_ATOM:
        return True
    pbc = info.get("pbc")
    return frame.natoms == 1 and (pbc is None or not any(pbc))


def write_selected(source: Path | str, out: Path | str, indices) -> int:
    """Copy the frames with these indices (order kept as given) from ``source`` to ``out``."""
    wanted = {int(i): rank for rank, i in enumerate(indices)}
    texts: list[str | None] = [None] * len(wanted)
    for frame in iter_raw_frames(source):
        rank = wanted.get(frame.index)
        if rank is not None:
            texts[rank] = frame.text
    missing = [i for i, rank in wanted.items() if texts[rank] is None]
    if missing:
        raise IndexError(f"{source}: no frame(s) {sorted(missing)[:5]} (file too short)")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        handle.writelines(texts)
    return len(texts)
