"""CP2K's geometry files: the input's coordinates and cell (step 0), the ``-pos-1.xyz``
trajectory (steps >= 1, each with the energy that is checked against the ``.out``) and the
``-1.cell`` file of a cell relaxation. Å throughout; a cut-off or malformed file raises
:class:`~workflow_scripts.cp2k.parse.Cp2kParseError` with the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.cp2k.parse import Cp2kParseError, parse_number


@dataclass
class InputGeometry:
    symbols: list[str]
    positions: np.ndarray  # Å
    cell: np.ndarray  # Å, rows = A, B, C


def read_input_geometry(path: Path | str) -> InputGeometry:
    """Cell and coordinates from the ``&CELL``/``&COORD`` sections our generator writes."""
    path = Path(path)
    if not path.is_file():
        raise Cp2kParseError(f"{path}: CP2K input file missing")
    section, cell, symbols, positions = None, {}, [], []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        upper = line.upper()
        if upper in ("&CELL", "&COORD"):
            section = upper[1:]
        elif upper.startswith("&END"):
            section = None
        elif section == "CELL" and line[:2].upper() in ("A ", "B ", "C "):
            cell[line[0].upper()] = [
                parse_number(t, path, f"line {number}") for t in line.split()[1:4]
            ]
        elif section == "COORD" and line:
            tokens = line.split()
            if len(tokens) != 4:
                raise Cp2kParseError(f"{path}: line {number}: malformed coordinate {raw!r}")
            symbols.append(tokens[0].split("_")[0])
            positions.append([parse_number(t, path, f"line {number}") for t in tokens[1:]])
    if set(cell) != {"A", "B", "C"} or not symbols:
        raise Cp2kParseError(f"{path}: no &CELL A/B/C vectors or no &COORD atoms found")
    return InputGeometry(symbols, np.array(positions), np.array([cell[k] for k in "ABC"]))


@dataclass
class TrajectoryFrame:
    step: int  # CP2K's "i ="
    energy: float  # Hartree
    positions: np.ndarray  # Å


def read_positions(path: Path | str, n_atoms: int, allow_incomplete: bool = False):
    """Frames of ``PROJECT-pos-1.xyz`` (``i = step, E = energy``); a cut-off last frame is
    dropped when ``allow_incomplete``, else an error."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    frames, number = [], 0
    while number < len(lines):
        if not lines[number].strip():
            number += 1
            continue
        block = lines[number : number + n_atoms + 2]
        header = re.search(r"i\s*=\s*(\d+),.*E\s*=\s*(\S+)", block[1]) if len(block) > 1 else None
        complete = len(block) == n_atoms + 2 and header is not None
        if complete:
            try:
                positions = np.array([[float(t) for t in row.split()[1:4]] for row in block[2:]])
            except (ValueError, IndexError):
                complete = False
            else:
                complete = positions.shape == (n_atoms, 3)
        if not complete:
            if allow_incomplete and number + len(block) >= len(lines):
                break
            raise Cp2kParseError(f"{path}: line {number + 1}: incomplete or corrupt xyz frame")
        frames.append(
            TrajectoryFrame(
                int(header.group(1)), parse_number(header.group(2), path, "E ="), positions
            )
        )
        number += n_atoms + 2
    return frames


def read_cells(path: Path | str, allow_incomplete: bool = False) -> dict[int, np.ndarray]:
    """Cell of each step from ``PROJECT-1.cell`` (MOTION/PRINT/CELL: ``step time Ax Ay Az Bx
    ... Cz volume``, Å; a cell optimisation writes steps 1, 2, ..., step 0 is the input's).
    A last line without its newline (a cut file) is dropped when ``allow_incomplete``."""
    path = Path(path)
    if not path.is_file():
        return {}
    text = path.read_text(errors="replace")
    lines = text.split("\n")
    if lines[-1] and allow_incomplete:  # no newline after the last line: unfinished
        lines = lines[:-1]
    cells = {}
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) != 12 or not tokens[0].isdigit():
            raise Cp2kParseError(f"{path}: line {number}: not a 12-column cell row: {line!r}")
        values = [parse_number(t, path, f"line {number}") for t in tokens[2:11]]
        cells[int(tokens[0])] = np.array(values, dtype=float).reshape(3, 3)
    return cells
