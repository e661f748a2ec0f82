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
import sys
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workflow_scripts.reference.mptrj_frames import FrameSkipped, convert_frame
from workflow_scripts.reference.mptrj_stream import iter_materials
from workflow_scripts.reference.mptrj_subset import select_cp2k_subset_report

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


# --- CLI -------------------------------------------------------------------------------------


def _settings(path: Path) -> dict:
    return json.loads(Path(path).read_text())["mptrj"]


def parse_args(argv=None) -> argparse.Namespace:
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
    return parser.parse_args(argv)


def run_ingest(args: argparse.Namespace, settings: dict) -> None:
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


def run_cp2k_subset(args: argparse.Namespace, settings: dict) -> None:
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


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = _settings(args.settings)
    if args.command == "ingest":
        run_ingest(args, settings)
    else:
        run_cp2k_subset(args, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
