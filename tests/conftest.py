"""Fixtures shared by several test files: the demo configuration, a Snakemake run of the
workflow in a folder of its own, and the rule routing docs/cluster.md promises.

The repository root is ``workflow_scripts.config.REPO_ROOT`` (the package's own definition);
the session refuses to start when that package is another checkout's (an editable install of
another clone or worktree without ``PYTHONPATH`` set to this one), which would test that code.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow_scripts.config import REPO_ROOT

# docs/cluster.md's table: CP2K as MPI jobs on the CPU partition, the models on the GPU one.
CP2K_MPI_RULES = frozenset(
    {
        "cp2k_host_cell",
        "cp2k_relax",
        "cp2k_isolated_atom",
        "cp2k_mptrj_single_point",
        "cp2k_reference",
    }
)
GPU_RULES = frozenset(
    {
        "mace_foundation_model",
        "mace_train",
        "mace_predict",
        "mace_descriptors",
        "baseline_predict",
        "standin_label",
        "screening_model",
        "mlip_prerelax",
    }
)


def pytest_sessionstart(session):
    here = Path(__file__).resolve().parents[1]
    if REPO_ROOT.resolve() != here:
        raise pytest.UsageError(
            f"workflow_scripts is imported from {REPO_ROOT}, not from this checkout ({here}): "
            f"run with PYTHONPATH={here}"
        )


@pytest.fixture
def demo_config() -> dict:
    """demo/config.yaml as written (no defaults filled in); a fresh copy for each test."""
    return yaml.safe_load((REPO_ROOT / "demo" / "config.yaml").read_text())


def _run_snakemake(workdir: Path, *args: str, config: dict | None = None, timeout: float = 600):
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "config.yaml"
    if config is not None:
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
         "--directory", str(workdir), "--configfile", str(config_file),
         "--replace-workflow-config", "--cores", "1", *args],
        capture_output=True, text=True, check=False, cwd=REPO_ROOT, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def snakemake():
    """``snakemake(workdir, *args, config=None)``: the workflow's Snakemake with
    ``workdir/config.yaml`` as its only config (``config``, a dict, is written there first when
    given) and ``workdir`` as its working folder; returns the CompletedProcess (text output)."""
    return _run_snakemake


@pytest.fixture
def slurm_routing() -> dict[str, frozenset[str]]:
    """Rules the SLURM profile must send to the CPU partition as MPI jobs (``cp2k_mpi``) and to
    the GPU partition (``gpu``), as docs/cluster.md lists them."""
    return {"cp2k_mpi": CP2K_MPI_RULES, "gpu": GPU_RULES}
