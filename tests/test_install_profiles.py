"""scripts/install_profiles.sh: named profiles (``--profile slurm``) where Snakemake looks for
them, as links to this repository's profiles, never replacing a user's own profile."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install_profiles.sh"
BIN_DIR = Path(sys.executable).parent


def install(config_home, *names, prefix=None):
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    env.pop("PEROVS_PROFILE_PREFIX", None)
    if prefix is not None:
        env["PEROVS_PROFILE_PREFIX"] = prefix
    return subprocess.run(
        ["bash", str(SCRIPT), *names], env=env, capture_output=True, text=True, timeout=60
    )


def test_installs_slurm_and_local_as_links_to_the_repository(tmp_path):
    result = install(tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("slurm", "local"):
        link = tmp_path / "snakemake" / name
        assert link.is_symlink()
        assert link.resolve() == (REPO / "profiles" / name).resolve()
    # Idempotent: a second run changes nothing and says so.
    again = install(tmp_path)
    assert again.returncode == 0
    assert "already is" in again.stdout


def test_a_users_own_profile_is_never_overwritten(tmp_path):
    own = tmp_path / "snakemake" / "slurm"
    own.mkdir(parents=True)
    (own / "config.yaml").write_text("executor: slurm\njobs: 7\n")

    result = install(tmp_path)

    assert result.returncode == 3
    assert not own.is_symlink()
    assert sorted(path.name for path in own.iterdir()) == ["config.yaml"]
    assert (own / "config.yaml").read_text() == "executor: slurm\njobs: 7\n"
    assert f"a profile 'slurm' already exists at {own}" in result.stderr
    assert "PEROVS_PROFILE_PREFIX=perovs-" in result.stderr
    # The other profile is still installed.
    assert (tmp_path / "snakemake" / "local").resolve() == (REPO / "profiles/local").resolve()

    # Ours under the documented other name, the user's untouched.
    prefixed = install(tmp_path, prefix="perovs-")
    assert prefixed.returncode == 0, prefixed.stderr
    assert (tmp_path / "snakemake" / "perovs-slurm").resolve() == (
        REPO / "profiles/slurm"
    ).resolve()
    assert (own / "config.yaml").read_text() == "executor: slurm\njobs: 7\n"


def test_a_link_elsewhere_is_kept_and_a_broken_link_is_replaced(tmp_path):
    profiles = tmp_path / "snakemake"
    profiles.mkdir()
    elsewhere = tmp_path / "another_clone" / "profiles" / "slurm"
    elsewhere.mkdir(parents=True)
    (profiles / "slurm").symlink_to(elsewhere)
    (profiles / "local").symlink_to(tmp_path / "moved_clone" / "profiles" / "local")

    result = install(tmp_path)

    assert result.returncode == 3
    assert (profiles / "slurm").resolve() == elsewhere.resolve()
    assert (profiles / "local").resolve() == (REPO / "profiles/local").resolve()
    assert "replacing broken link" in result.stdout


def test_unknown_profile_name_is_an_error(tmp_path):
    result = install(tmp_path, "nonesuch")
    assert result.returncode == 2
    assert "no profile 'nonesuch'" in result.stderr
    assert not (tmp_path / "snakemake" / "nonesuch").exists()


def test_bare_profile_name_plans_the_study_with_the_slurm_executor(tmp_path):
    assert install(tmp_path, "slurm").returncode == 0
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path),
        "PATH": f"{BIN_DIR}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        [str(BIN_DIR / "snakemake"), "--profile", "slurm", "all", "-n"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Using profile slurm for setting default command line arguments." in output
    # Resources only the SLURM profile sets: CP2K as MPI jobs on the cpu partition.
    assert "slurm_partition=cpu" in output
    assert "mpi=srun, tasks=2" in output
    assert "rule cp2k_relax:" in output


def test_every_rule_with_an_mpi_resource_gets_mpi_ranks_from_the_slurm_profile():
    """The SLURM executor refuses a job with an `mpi` resource and one task ("For MPI jobs,
    'tasks' must be greater than 1"): every rule declaring `mpi=` must be among the profile's
    CP2K_RULES, which set srun and the ranks (seen when cp2k_host_cell was added without)."""
    import re

    mpi_rules = set()
    for module in sorted((REPO / "rules").glob("*.smk")):
        for name, body in re.findall(
            r"^rule (\w+):\n(.*?)(?=^rule |^use rule |\Z)", module.read_text(), re.M | re.S
        ):
            if re.search(r"^\s+mpi=", body, re.M):
                mpi_rules.add(name)
    for module in sorted((REPO / "rules").glob("*.smk")):  # use rule: the base's resources
        for base, name in re.findall(r"^use rule (\w+) as (\w+) with:", module.read_text(), re.M):
            if base in mpi_rules:
                mpi_rules.add(name)
    profile = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    listed = set(re.findall(r'"(\w+)"', re.search(r"CP2K_RULES = \[(.*?)\]", profile).group(1)))
    assert {"cp2k_host_cell", "cp2k_relax", "cp2k_isolated_atom"} <= mpi_rules
    assert mpi_rules <= listed, f"rules with mpi= missing from CP2K_RULES: {mpi_rules - listed}"
