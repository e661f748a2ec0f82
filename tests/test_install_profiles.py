"""The Snakemake profiles: scripts/install_profiles.sh installs them as named profiles
(``--profile slurm``) where Snakemake looks for them, as links to this repository's profiles,
never replacing a user's own profile; and the SLURM profile routes the workflow's rules (CP2K as
MPI jobs on the CPU partition, MACE and the other models on the GPU partition)."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
import yte

from workflow_scripts.config import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "install_profiles.sh"
BIN_DIR = Path(sys.executable).parent
PROFILES = sorted(path.parent.name for path in (REPO_ROOT / "profiles").glob("*/config.yaml"))


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
        assert link.resolve() == (REPO_ROOT / "profiles" / name).resolve()
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
    assert (tmp_path / "snakemake" / "local").resolve() == (REPO_ROOT / "profiles/local").resolve()

    # Ours under the documented other name, the user's untouched.
    prefixed = install(tmp_path, prefix="perovs-")
    assert prefixed.returncode == 0, prefixed.stderr
    assert (tmp_path / "snakemake" / "perovs-slurm").resolve() == (
        REPO_ROOT / "profiles/slurm"
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
    assert (profiles / "local").resolve() == (REPO_ROOT / "profiles/local").resolve()
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
        cwd=REPO_ROOT,
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
    mpi_rules = {
        name for name, body in workflow_rules().items() if re.search(r"^\s+mpi=", body, re.M)
    }
    profile = (REPO_ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    listed = set(re.findall(r'"(\w+)"', re.search(r"CP2K_RULES = \[(.*?)\]", profile).group(1)))
    assert {"cp2k_host_cell", "cp2k_relax", "cp2k_isolated_atom"} <= mpi_rules
    assert mpi_rules <= listed, f"rules with mpi= missing from CP2K_RULES: {mpi_rules - listed}"


# --- routing: which partition each rule's jobs go to ------------------------------------------

# A rule, checkpoint or `use rule ... as NAME` definition, at any indentation (some rules are
# defined inside `if` blocks); its body runs to the next definition.
RULE_START = re.compile(
    r"^[ \t]*(?:(?:rule|checkpoint)[ \t]+(\w+)[ \t]*:|use[ \t]+rule[ \t]+.*?[ \t]+as[ \t]+(\w+))",
    re.M,
)
# Profile keys whose entries are keyed by rule name.
RULE_KEYED = ("set-resources", "set-threads")
# The heavy rules, known by the tool their shell command runs: CP2K runs as MPI jobs on the CPU
# partition; a model (MACE training, prediction, descriptors, other MLIPs) gets a GPU.
CP2K_MODULES = ("workflow_scripts.cp2k.run", "workflow_scripts.cp2k.batch")
MODEL_MODULES = (
    "workflow_scripts.mace.train",
    "workflow_scripts.mace.foundation",
    "workflow_scripts.mace.evaluate",
    "workflow_scripts.reference.descriptors",
    "workflow_scripts.baselines.predict",
    "workflow_scripts.screening.model_screen",
    "workflow_scripts.screening.prerelax",
)
# workflow_scripts.reference.standins also builds stand-ins on the CPU; its `label` command runs
# CHGNet, so the rule is named instead.
MODEL_RULES_BY_NAME = {"standin_label"}


def workflow_rules() -> dict[str, str]:
    """Rule name -> its text, for every rule of rules/*.smk and the Snakefile."""
    rules = {}
    for path in [*sorted((REPO_ROOT / "rules").glob("*.smk")), REPO_ROOT / "Snakefile"]:
        text = path.read_text()
        starts = list(RULE_START.finditer(text))
        ends = [start.start() for start in starts[1:]] + [len(text)]
        for start, end in zip(starts, ends[: len(starts)], strict=True):
            rules[start.group(1) or start.group(2)] = text[start.start() : end]
    for name, body in rules.items():  # use rule ... with: runs its base's shell command
        base = re.match(r"\s*use\s+rule\s+(\w+)\s+as", body)
        if base:
            rules[name] = body + rules[base.group(1)]
    return rules


def groups_in_rules() -> set[str]:
    """Group names the rules declare (`group: "name"`, on the same or the next line)."""
    text = "".join(path.read_text() for path in sorted((REPO_ROOT / "rules").glob("*.smk")))
    return set(re.findall(r"^\s*group:\s*\n?\s*[\"'](\w+)[\"']", text, re.M))


def rendered_profile(name: str, monkeypatch, **environment: str) -> dict:
    """A profile's settings as Snakemake reads them: YTE templates rendered (the SLURM profile
    reads its site settings from PEROVS_* variables, set here and only here)."""
    for variable in [v for v in os.environ if v.startswith("PEROVS_")]:
        monkeypatch.delenv(variable)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    path = REPO_ROOT / "profiles" / name / "config.yaml"
    with path.open() as handle:
        if yaml.safe_load(path.read_text()).get("__use_yte__"):
            return yte.process_yaml(handle, require_use_yte=True)
        return yaml.safe_load(handle)


def resource_value(value):
    """A profile's resource as Snakemake takes it: strings are Python expressions."""
    return ast.literal_eval(value) if isinstance(value, str) else value


def runs_a_module(body: str, modules) -> bool:
    return any(re.search(rf"-m {re.escape(module)}\b", body) for module in modules)


def test_rule_parser_finds_plain_indented_and_derived_rules():
    text = (
        'rule a:\n  shell: "x"\nif True:\n    rule b:\n        shell: "y"\nuse rule a as c with:\n'
    )
    names = [m.group(1) or m.group(2) for m in RULE_START.finditer(text)]
    assert names == ["a", "b", "c"]
    rules = workflow_rules()
    assert {"all", "cp2k_relax", "fetch_mptrj", "mace_train"} <= set(rules)


def test_the_profiles_are_found():
    assert {"slurm", "local", "demo"} <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_rule_a_profile_names_exists(profile, monkeypatch):
    settings = rendered_profile(profile, monkeypatch)
    rules = workflow_rules()
    for key in RULE_KEYED:
        unknown = sorted(set(settings.get(key) or {}) - set(rules))
        assert not unknown, f"profiles/{profile}: {key} names rules that do not exist: {unknown}"
    groups = set(settings.get("group-components") or {})
    assert groups <= groups_in_rules(), f"profiles/{profile}: unknown groups {groups}"


def test_slurm_profile_routes_cp2k_to_cpu_mpi_jobs_and_models_to_gpus(monkeypatch, slurm_routing):
    settings = rendered_profile("slurm", monkeypatch)
    routed = {
        rule: {key: resource_value(value) for key, value in resources.items()}
        for rule, resources in settings["set-resources"].items()
    }
    rules = workflow_rules()
    cp2k_rules = {name for name, body in rules.items() if runs_a_module(body, CP2K_MODULES)}
    model_rules = MODEL_RULES_BY_NAME | {
        name for name, body in rules.items() if runs_a_module(body, MODEL_MODULES)
    }
    assert cp2k_rules >= slurm_routing["cp2k_mpi"]
    assert model_rules >= slurm_routing["gpu"]
    for rule in sorted(cp2k_rules):
        assert rule in routed, f"CP2K rule {rule} is not routed by profiles/slurm"
        assert routed[rule]["slurm_partition"] == "cpu", rule
        assert routed[rule]["mpi"] == "srun" and routed[rule]["tasks"] >= 2, rule
        assert (
            settings["set-threads"][rule] == routed[rule]["tasks"] * routed[rule]["cpus_per_task"]
        )
    for rule in sorted(model_rules):
        assert rule in routed, f"model rule {rule} is not routed by profiles/slurm"
        assert routed[rule]["slurm_partition"] == "gpu", rule
        assert routed[rule]["gres"] == "gpu:1", rule
    # every other job: the CPU partition, the rule's threads as CPUs
    assert resource_value(settings["default-resources"]["slurm_partition"]) == "cpu"
    assert settings["default-resources"]["cpus_per_task"] == "threads"


def test_slurm_profile_takes_partitions_and_ranks_from_the_environment(monkeypatch):
    settings = rendered_profile(
        "slurm",
        monkeypatch,
        PEROVS_SLURM_CPU_PARTITION="compute",
        PEROVS_SLURM_GPU_PARTITION="gpu-a100",
        PEROVS_SLURM_GPU_GRES="gpu:a100:1",
        PEROVS_CP2K_MPI_RANKS="4",
    )
    routed = settings["set-resources"]
    assert resource_value(routed["cp2k_relax"]["slurm_partition"]) == "compute"
    assert routed["cp2k_relax"]["tasks"] == 4
    assert settings["set-threads"]["cp2k_relax"] == 4
    assert resource_value(routed["mace_train"]["slurm_partition"]) == "gpu-a100"
    assert resource_value(routed["mace_train"]["gres"]) == "gpu:a100:1"
    assert resource_value(settings["default-resources"]["slurm_partition"]) == "compute"
