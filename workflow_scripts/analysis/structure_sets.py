"""The structure sets the embedding maps draw: a seeded random sample of the MPtrj pool (frames
copied as text) and the initial structure (ionic step 0) of every Perovs-Dopants relaxation.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from workflow_scripts.reference.extxyz import ISOLATED_ATOM

log = logging.getLogger(__name__)
_ISOLATED_ATOM = re.compile(rb'config_type="?' + ISOLATED_ATOM.encode() + rb"\b")


# --- the MPtrj sample ------------------------------------------------------------------------


def frame_offsets(path: Path) -> list[int]:
    """Byte offset of every frame of an extxyz file except ``IsolatedAtom`` frames.

    Reads only the atom-count and comment lines' text, so a pool of millions of frames is
    indexed without parsing it.
    """
    offsets = []
    with open(path, "rb") as handle:
        while True:
            start = handle.tell()
            count_line = handle.readline()
            if not count_line.strip():
                if not count_line:
                    break
                continue
            n_atoms = int(count_line)
            comment = handle.readline()
            for _ in range(n_atoms):
                handle.readline()
            if not _ISOLATED_ATOM.search(comment):
                offsets.append(start)
    return offsets


def sample_frames(pool: Path, out: Path, size: int, seed: int) -> int:
    """Copy ``size`` frames chosen at random (seeded, pool order kept) into ``out``."""
    offsets = frame_offsets(pool)
    if not offsets:
        raise ValueError(f"{pool}: no frames to sample")
    chosen = np.sort(
        np.random.default_rng(seed).choice(len(offsets), min(size, len(offsets)), replace=False)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(pool, "rb") as source, open(out, "wb") as target:
        for index in chosen:
            source.seek(offsets[index])
            n_atoms = int(source.readline())
            target.write(f"{n_atoms}\n".encode())
            for _ in range(n_atoms + 1):
                target.write(source.readline())
    log.info("sampled %d of %d frames of %s", len(chosen), len(offsets), pool)
    return len(chosen)


# --- the initial structures of the Perovs-Dopants relaxations ------------------------------


def initial_frames(trajectories: list[Path], out: Path) -> int:
    """Copy the initial structure (``step`` 0, SCF converged) of every trajectory into
    ``out``, as text, in sorted path order; trajectories without one are logged and left out.
    """
    from workflow_scripts.reference.extxyz import iter_raw_frames

    texts, missing = [], []
    for path in sorted(map(str, trajectories)):
        for frame in iter_raw_frames(path):
            info = frame.info()
            if int(info.get("step", -1)) == 0 and info.get("scf_converged") is not False:
                texts.append(frame.text)
                break
        else:
            missing.append(path)
    if missing:
        log.warning("no converged step-0 frame in %d trajectories: %s", len(missing), missing)
    if not texts:
        raise ValueError(f"none of {len(trajectories)} trajectories has a step-0 frame")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(texts), encoding="utf-8")
    log.info("initial structures of %d of %d trajectories", len(texts), len(trajectories))
    return len(texts)
