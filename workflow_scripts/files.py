"""File helpers written once: content hashes and JSON files (atomic where a job may be killed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

_BLOCK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (model files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str, length: int | None = None) -> str:
    """Hex SHA-256 of a string, optionally its first ``length`` characters (settings hashes)."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    return digest[:length] if length else digest


def write_json(
    path: str | Path,
    payload,
    *,
    indent: int | None = 1,
    sort_keys: bool = False,
    newline: bool = False,
    atomic: bool = False,
) -> None:
    """Write ``payload`` as JSON (``default=str`` for paths and dates), creating the folder.

    ``atomic`` writes a ``.tmp`` sibling and renames it, so a killed job never leaves half a
    file that a rerun would trust. The format keywords keep each file's existing layout.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=indent, sort_keys=sort_keys, default=str)
    if newline:
        text += "\n"
    if atomic:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    else:
        path.write_text(text)
