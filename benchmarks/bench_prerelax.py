"""MLIP-first DFT (``dft.prerelax``): CP2K force evaluations with and without a pre-relaxation.

Needs a completed demo (``snakemake --profile profiles/demo all``): its defect structures,
dft settings file and its CP2K relaxations (found through ``workflow_scripts.paths``), which are
the baseline (force evaluations are counts, not timings, so the demo's own runs at the same
settings hash are the same-run baseline). For each demo defect the structure is relaxed with
CHGNet (the registered baseline, weights in its wheel; BFGS to ``screening.optimizer.fmax``) and
CP2K then relaxes it with the demo's settings. Rows: total CP2K force evaluations to convergence
with / without, and the largest difference of the final energies (meV per cell; both runs must
converge).

    python benchmarks/bench_prerelax.py            # every demo defect
    python benchmarks/bench_prerelax.py --quick    # one defect
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from workflow_scripts import paths

REPO = Path(__file__).resolve().parents[1]
MODEL = "chgnet"


def settings_file(section: str) -> str:
    """The demo run's settings file of one config section."""
    return str(REPO / paths.fill(paths.SECTION_SETTINGS, section=section))


def demo_defects() -> list[tuple[str, str]]:
    """(host, defect) of every demo relaxation that converged (the baseline must converge)."""
    found = []
    pattern = paths.fill(paths.CP2K_RELAX, host="*", defect="*")
    for summary in sorted(REPO.glob(pattern)):
        host, defect = summary.parent.parent.name, summary.parent.name
        if defect != "pristine" and json.loads(summary.read_text())["status"] == "converged":
            found.append((host, defect))
    return found


def run_cp2k(structure: Path, workdir: Path) -> dict:
    summary = workdir / "summary.json"
    subprocess.run(
        [sys.executable, "-m", "workflow_scripts.cp2k.run", "relax", "--structure",
         str(structure), "--settings", settings_file("dft"),
         "--runtime-settings", str(REPO / paths.DFT_RUNTIME_SETTINGS),
         "--workdir", str(workdir), "--summary", str(summary), "--threads", "2",
         "--mpi-launcher", "none", "--mpi-ranks", "1"],
        check=True, cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(summary.read_text())


def prerelax(structure: Path, out: Path) -> dict:
    subprocess.run(
        [sys.executable, "-m", "workflow_scripts.screening.prerelax", "--structure",
         str(structure), "--model-name", MODEL, "--baseline-config",
         str(REPO / paths.fill(paths.BASELINE_SETTINGS, model=MODEL)), "--screening-config",
         settings_file("screening"), "--mace-config", settings_file("mace"),
         "--evaluation-config", settings_file("evaluation"), "--out", str(out),
         "--threads", "2"],
        check=True, cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.read_text())["properties"]["prerelaxed"]


def run(quick: bool) -> list[dict]:
    if not (REPO / paths.fill(paths.BASELINE_SETTINGS, model=MODEL)).is_file():
        raise SystemExit("bench_prerelax needs a completed demo run with the chgnet baseline")
    defects = demo_defects()[:1] if quick else demo_defects()
    without = with_ = 0
    energy_gap, steps, notes = 0.0, [], []
    with tempfile.TemporaryDirectory() as tmp:
        for host, defect in defects:
            baseline = json.loads(
                (REPO / paths.fill(paths.CP2K_RELAX, host=host, defect=defect)).read_text()
            )
            start = Path(tmp) / f"{host}_{defect}.json"
            structure = REPO / paths.fill(paths.DEFECT, host=host, defect=defect)
            info = prerelax(structure, start)
            result = run_cp2k(start, Path(tmp) / f"{host}_{defect}")
            if result["status"] != "converged":
                notes.append(f"{host}/{defect}: with pre-relaxation CP2K ended {result['status']}")
            without += baseline["n_force_evaluations"]
            with_ += result["n_force_evaluations"]
            gap = abs(result["final_energy_eV"] - baseline["final_energy_eV"]) * 1000
            energy_gap = max(energy_gap, gap)
            steps.append(
                f"{defect} {baseline['n_force_evaluations']}->{result['n_force_evaluations']} "
                f"({info['steps']} {MODEL} steps, dE {gap:.1f} meV)"
            )
    size = f"{len(defects)} demo defect(s)"
    return [
        {
            "benchmark": f"CP2K force evaluations to convergence, {MODEL}-pre-relaxed ({size})",
            "measured": with_,
            "baseline": without,
            "unit": "force evaluations",
            "ratio": round(with_ / without, 2) if without else None,
            "target": "report",
            "met": False if notes else None,  # a pre-relaxed run that did not converge: no
            "notes": "; ".join(steps + notes),
        },
        {
            "benchmark": f"final energy, pre-relaxed vs not ({size})",
            "measured": round(energy_gap, 2),
            "baseline": None,
            "unit": "meV per cell, largest",
            "ratio": None,
            "target": "report",
            "met": None,
            "notes": "the same minimum within CP2K's force tolerance gives differences of a "
            "few meV",
        },
    ]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
