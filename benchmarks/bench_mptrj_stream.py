"""MPtrj streaming: frames/s and peak memory of the ingestion (JSON -> test + pool extxyz).

Synthetic MPtrj files in the real layout (``{mp_id: {frame_id: frame}}``, pymatgen structure
dicts, VASP-like number formats, ~7 KB per frame as the real 11.3 GB / 1.58 M-frame file)
of two sizes, >= 1 GB and >= 4 GB (quick: 40 MB and 160 MB), generated under
benchmarks/inputs/ and deleted afterwards. Each run is a fresh process pinned to one core;
peak RSS is that process's maximum resident set size.

Baseline, same run, same file: what a user would write to stream it: ijson (its compiled
yajl2_c backend) ``kvitems`` per material, ``ase.Atoms`` per frame, ``ase.io.write`` extxyz
(measured over the first 30 s of the 1 GB file). Targets: >= 6,000 frames/s on one core and a
flat peak RSS <= 1 GB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from verdict import verdict

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
INPUTS = HERE / "inputs"
ELEMENTS = ["O", "Li", "Fe", "Mn", "Co", "Ni", "Sr", "Ti", "Ba", "Zr", "P", "S", "Cu", "Zn"]


def synthetic_frame(rng: np.random.Generator, mp_id: str) -> dict:
    """One frame with MPtrj's keys and number formats (positions at full double precision,
    forces with 6 decimals, stress with 8, magnetic moments with 3)."""
    n = int(np.clip(rng.lognormal(np.log(18), 0.55), 1, 160))
    lattice = np.diag(rng.uniform(3, 12, 3)) + rng.normal(scale=0.3, size=(3, 3))
    frac = rng.random((n, 3))
    cart = frac @ lattice
    magmoms = np.round(rng.normal(scale=0.5, size=n), 3)
    sites = [
        {
            "species": [{"element": str(rng.choice(ELEMENTS)), "occu": 1}],
            "abc": frac[i].tolist(),
            "xyz": cart[i].tolist(),
            "label": "X",
            "properties": {"magmom": float(magmoms[i])},
        }
        for i in range(n)
    ]
    for entry in sites:
        entry["label"] = entry["species"][0]["element"]
    energy = float(rng.normal(-6, 1) * n)
    return {
        "structure": {
            "@module": "pymatgen.core.structure",
            "@class": "Structure",
            "charge": 0,
            "lattice": {
                "matrix": lattice.tolist(),
                "pbc": [True, True, True],
                "a": float(np.linalg.norm(lattice[0])),
                "b": float(np.linalg.norm(lattice[1])),
                "c": float(np.linalg.norm(lattice[2])),
                "alpha": 90.0,
                "beta": 90.0,
                "gamma": 90.0,
                "volume": float(abs(np.linalg.det(lattice))),
            },
            "properties": {},
            "sites": sites,
        },
        "uncorrected_total_energy": energy,
        "corrected_total_energy": energy - 0.5,
        "energy_per_atom": energy / n,
        "ef_per_atom": -1.0,
        "e_per_atom_relaxed": energy / n,
        "ef_per_atom_relaxed": -1.0,
        "force": np.round(rng.normal(scale=0.5, size=(n, 3)), 6).tolist(),
        "stress": np.round(rng.normal(scale=5, size=(3, 3)), 8).tolist(),
        "magmom": magmoms.tolist(),
        "bandgap": 0.0,
        "mp_id": mp_id,
    }


def generate(path: Path, size_bytes: int, seed: int = 0) -> dict:
    """Write an MPtrj-format file of at least ``size_bytes``: 300 distinct frames re-used
    under new ids (parsing cost is the same as for distinct frames, writing is fast)."""
    rng = np.random.default_rng(seed)
    templates = [json.dumps(synthetic_frame(rng, "mp-0")) for _ in range(300)]
    atoms = sum(t.count('"element"') for t in templates) / len(templates)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = materials = 0
    with open(path, "w") as handle:
        handle.write("{")
        while handle.tell() < size_bytes:
            mp_id = f"mp-{materials + 1}"
            parts = []
            for k in range(int(rng.integers(1, 21))):
                text = templates[frames % len(templates)].replace('"mp-0"', f'"{mp_id}"')
                parts.append(f'"{mp_id}-0-{k}": {text}')
                frames += 1
            handle.write(
                ("" if materials == 0 else ", ") + f'"{mp_id}": {{' + ", ".join(parts) + "}"
            )
            materials += 1
        handle.write("}")
    size = path.stat().st_size
    return {"frames": frames, "materials": materials, "bytes": size, "atoms_per_frame": atoms}


CHILD = """
import json, os, sys, time
from pathlib import Path
os.sched_setaffinity(0, {{{cpu}}})
sys.path.insert(0, {repo!r})
mode, source, out = sys.argv[1:4]
if mode == "ours":
    from workflow_scripts.reference import mptrj
else:
    import ase.io, ijson, numpy as np
    from ase import Atoms
start = time.perf_counter()  # imports done: the clock measures the work only
if mode == "ours":
    stats = mptrj.ingest(Path(source), Path(out) / "test.extxyz", Path(out) / "pool.extxyz",
                         "MPtrj", test_size=2000, seed=0, progress=False)
    frames = stats.frames_read
else:
    frames, limit = 0, float(sys.argv[4])
    with open(source, "rb") as handle, open(Path(out) / "baseline.extxyz", "w") as dest:
        for mp_id, material in ijson.kvitems(handle, "", use_float=True):
            for frame_id, frame in material.items():
                s = frame["structure"]
                atoms = Atoms([x["species"][0]["element"] for x in s["sites"]],
                              positions=[x["xyz"] for x in s["sites"]],
                              cell=s["lattice"]["matrix"], pbc=True)
                voigt = np.asarray(frame["stress"]).ravel()[[0, 4, 8, 5, 2, 1]]
                atoms.info.update(REF_energy=frame["uncorrected_total_energy"],
                                  REF_stress=-0.1 * 0.006241509125883258 * voigt,
                                  mp_id=mp_id, frame_id=frame_id)
                atoms.arrays["REF_forces"] = np.asarray(frame["force"])
                ase.io.write(dest, atoms, format="extxyz")
                frames += 1
            if time.perf_counter() - start > limit:
                break
seconds = time.perf_counter() - start
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork+exec, so a child of a
# big parent (the benchmark runner after FPS) reported the parent's 12 GB peak.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
peak = int(hwm.split()[1]) / 1024
print(json.dumps({{"frames": frames, "seconds": seconds, "peak_rss_mb": peak}}))
"""


def measure(mode: str, source: Path, out: Path, limit_s: float = 30.0) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cpu = sorted(os.sched_getaffinity(0))[-1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    code = CHILD.format(cpu=cpu, repo=str(REPO))
    args = [sys.executable, "-c", code, mode, str(source), str(out), str(limit_s)]
    result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{mode} on {source} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[dict]:
    sizes = (40_000_000, 160_000_000) if quick else (1_000_000_000, 4_000_000_000)
    work = INPUTS / "mptrj_stream"
    rows, results = [], []
    try:
        for size in sizes:
            source = work / f"mptrj_{size // 1_000_000}MB.json"
            info = generate(source, size)
            ours = measure("ours", source, work / "out")
            shutil.rmtree(work / "out")
            results.append((info, ours))
        info, _ = results[0]
        first = work / f"mptrj_{sizes[0] // 1_000_000}MB.json"
        base = measure("baseline", first, work / "base", limit_s=10.0 if quick else 30.0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base_rate = base["frames"] / base["seconds"]
    for info, ours in results:
        rate = ours["frames"] / ours["seconds"]
        gb = info["bytes"] / 1e9
        frame_kb = info["bytes"] / info["frames"] / 1e3
        rows.append(
            {
                "benchmark": f"MPtrj streaming {gb:.2f} GB ({info['frames']:,} frames)",
                "measured": round(rate),
                "baseline": round(base_rate),
                "unit": "frames/s (1 core)",
                "ratio": round(rate / base_rate, 1),
                "target": ">= 6000 frames/s",
                "met": verdict(rate >= 6000, quick),
                "notes": f"{ours['seconds']:.0f} s incl. the test/pool split; "
                f"{frame_kb:.1f} kB and {info['atoms_per_frame']:.1f} atoms per frame; "
                f"{rate * frame_kb / 1e3:.0f} MB/s; "
                f"baseline ijson(yajl2_c)+ase.io.write over {base['frames']:,} frames",
            }
        )
    peaks = [ours["peak_rss_mb"] for _, ours in results]
    rows.append(
        {
            "benchmark": "MPtrj streaming peak RSS (small, 4x larger file)",
            "measured": round(max(peaks)),
            "baseline": round(base["peak_rss_mb"]),
            "unit": "MB",
            "ratio": round(peaks[1] / peaks[0], 2),
            "target": "<= 1000 MB and flat (larger/smaller <= 1.2)",
            "met": verdict(max(peaks) <= 1000 and peaks[1] / peaks[0] <= 1.2, quick),
            "notes": f"peak RSS {peaks[0]:.0f} and {peaks[1]:.0f} MB; baseline column: ijson+ase",
        }
    )
    return rows


if __name__ == "__main__":
    start = time.perf_counter()
    for row in run(quick="--quick" in sys.argv):
        print(row)
    print(f"{time.perf_counter() - start:.0f} s")
