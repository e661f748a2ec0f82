"""DAG scale: Snakemake bookkeeping at study scale and beyond.

A generated config with >= 1,000 defect structures (18 hosts x the study's substituents) and
2,000 MPtrj single points: the dry-run time from nothing, and the time of a no-op run after
every output exists (outputs marked complete with `snakemake --touch`). Baseline: a plain
Snakefile with one rule and the same number of jobs, i.e. Snakemake's own cost.
Targets: dry run <= 10 s, no-op rerun <= 15 s.

The study itself (config.yaml as shipped: 550 defects, 84 isolated atoms, 2,000 MPtrj single
points in batches of dft.batch.single_points): its dry-run time against the same one-rule
floor with as many jobs; target <= 1.3x the floor (Snakemake's own cost for the job count).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from verdict import verdict

from workflow_scripts import paths

REPO = Path(__file__).resolve().parent.parent
A_ELEMENTS = ["Sr", "Ba", "Ca"]
B_ELEMENTS = ["Ti", "Zr", "Hf", "Sn", "Ce", "Mo"]


def big_config(n_single_points: int, quick: bool) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    hosts = {f"{a}{b}O3": {"source": "prototype", "lattice_constant": 4.0}
             for a in A_ELEMENTS for b in B_ELEMENTS}  # fmt: skip
    if quick:
        hosts = dict(list(hosts.items())[:2])
    config["hosts"] = hosts
    config["reference"]["mptrj"]["cp2k_subset_size"] = n_single_points
    return config


def snakemake(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile") -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile),
         "--directory", str(workdir), "--cores", "1", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed, result.stdout + result.stderr


def job_count(output: str) -> int:
    match = re.search(r"^total\s+(\d+)$", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def mark_complete(workdir: Path, common: tuple[str, ...]) -> None:
    """Make every output exist and up to date without running a job. `--touch` alone only
    updates files that already exist, so each output from `--summary` is created empty first;
    a dry run must then find nothing to do (else the timed run would start real CP2K jobs)."""
    _, summary = snakemake(workdir, "--summary", *common)
    for line in summary.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) < 5 or not fields[0].startswith((f"{paths.RESULTS}/", "data/")):
            continue
        path = workdir / fields[0]
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    snakemake(workdir, "--touch", *common)
    _, planned = snakemake(workdir, "-n", *common)
    if "Nothing to be done" not in planned:
        raise RuntimeError(f"outputs still missing after marking complete:\n{planned[-3000:]}")


def baseline_snakefile(workdir: Path, n_jobs: int) -> Path:
    path = workdir / "Baseline.smk"
    path.write_text(
        f"rule all:\n    input: expand('out/{{i}}.txt', i=range({n_jobs}))\n\n"
        "rule one:\n    output: 'out/{i}.txt'\n    shell: 'touch {output}'\n"
    )
    return path


def study_dry_run(tmp: Path, quick: bool) -> dict:
    """config.yaml's dry run against a one-rule Snakefile with as many jobs."""
    ours, base = tmp / "study", tmp / "study_floor"
    ours.mkdir()
    base.mkdir()
    config_file = ours / "config.yaml"
    config_file.write_text((REPO / "config.yaml").read_text())
    common = ("-n", "--quiet", "rules", "--configfile", str(config_file))
    common += ("--replace-workflow-config",)
    snakemake(ours, *common)  # warm the defect-plan cache
    dry, output = snakemake(ours, *common)
    n_jobs = job_count(output)
    n_batches = re.search(r"^cp2k_mptrj_single_point\s+(\d+)$", output, re.MULTILINE)
    snakefile = baseline_snakefile(base, n_jobs)
    floor, _ = snakemake(base, "-n", "--quiet", "rules", snakefile=snakefile)
    ratio = dry / floor
    batches = int(n_batches.group(1)) if n_batches else 0
    return {"benchmark": "dag_study_dry_run", "measured": dry, "baseline": floor, "unit": "s",
            "ratio": ratio, "target": "<= 1.3x floor", "met": verdict(ratio <= 1.3, quick),
            "notes": f"config.yaml: {n_jobs} jobs ({batches} MPtrj single-point batch jobs); "
            f"baseline: one-rule Snakefile with {n_jobs} jobs"}  # fmt: skip


def run(quick: bool) -> list[dict]:
    n_single_points = 50 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="bench_dag_") as tmp:
        ours, base = Path(tmp) / "ours", Path(tmp) / "baseline"
        ours.mkdir()
        base.mkdir()
        config = big_config(n_single_points, quick)
        config_file = ours / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        # `--touch` builds the whole DAG, which needs the reference data to exist; the
        # benchmark never reads them, so empty stand-ins at the configured paths do.
        (ours / config["reference"]["mptrj"]["path"]).parent.mkdir(parents=True)
        (ours / config["reference"]["mptrj"]["path"]).touch()
        (ours / config["reference"]["omat24"]["path"]).mkdir(parents=True)
        common = ("--configfile", str(config_file), "--replace-workflow-config")
        snakemake(ours, "-n", "--quiet", "rules", *common)  # warm the defect-plan cache
        dry, output = snakemake(ours, "-n", "--quiet", "rules", *common)
        n_jobs = job_count(output)
        n_defects = int(re.search(r"^defect_structure\s+(\d+)$", output, re.MULTILINE).group(1))
        mark_complete(ours, common)
        noop, output = snakemake(ours, *common)
        assert "Nothing to be done" in output, output[-2000:]
        snakefile = baseline_snakefile(base, n_jobs)
        base_dry, _ = snakemake(base, "-n", "--quiet", "rules", snakefile=snakefile)
        (base / "out").mkdir()
        for i in range(n_jobs):
            (base / "out" / f"{i}.txt").touch()
        snakemake(base, "--touch", snakefile=snakefile)
        base_noop, output = snakemake(base, snakefile=snakefile)
        assert "Nothing to be done" in output, output[-2000:]
        study = study_dry_run(Path(tmp), quick)
    size = (
        f"{n_jobs} jobs, {n_defects} defect structures, {n_single_points} MPtrj single points"
        f" in batches of {config['dft']['batch']['single_points']}"
    )
    return [
        {"benchmark": "dag_dry_run", "measured": dry, "baseline": base_dry, "unit": "s",
         "ratio": dry / base_dry, "target": "<= 10 s", "met": verdict(dry <= 10.0, quick),
         "notes": f"{size}; baseline: one-rule Snakefile with as many jobs"},
        {"benchmark": "dag_noop_rerun", "measured": noop, "baseline": base_noop, "unit": "s",
         "ratio": noop / base_noop, "target": "<= 15 s", "met": verdict(noop <= 15.0, quick),
         "notes": size},
        study,
    ]  # fmt: skip
