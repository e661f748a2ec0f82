"""The SLURM profile against a real single-node SLURM cluster (scripts/local_slurm.sh).

A part of the demo DAG with CP2K and MACE jobs runs through ``--profile slurm``, the named
profile exactly as cluster users type it, in a copy of the repository whose
``scripts/install_profiles.sh`` installed it (into a config folder of the test's own).
Partitions and GRES are read from SLURM's own records (``squeue --states=all`` and the
job-completion log), not from the profile. Then: a single-target rerun,
an added substituent (dry-run job counts) and a job cancelled with ``scancel``.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from workflow_scripts.config import REPO_ROOT

CLUSTER_SCRIPT = REPO_ROOT / "scripts" / "local_slurm.sh"
CLUSTER_DIR = Path(os.environ.get("LOCAL_SLURM_DIR", "/var/lib/perovs-local-slurm"))
JOBCOMP_LOG = CLUSTER_DIR / "log" / "jobcomp.log"
SLURM_CONF = Path("/etc/slurm/slurm.conf")
CONF_MARKER = "written by perovs-dopants scripts/local_slurm.sh"
BIN_DIR = Path(sys.executable).parent  # the venv's snakemake and python

# Rules whose jobs share SLURM jobs (profiles/slurm: group-components), and how many per job:
# the profile's default, set explicitly below so a user's environment cannot change it.
GROUPED_RULES = {"isolated_atoms": "cp2k_isolated_atom"}
ATOMS_PER_SLURM_JOB = 6
# The workflow copy gets everything but the developer's results, logs, caches, data and tests.
NOT_COPIED_TOP_LEVEL = [
    ".git",
    ".venv",
    ".venv-sevennet",
    "models",
    ".snakemake",
    "results",
    "logs",
    "data",
    "tests",
    "benchmarks",
    "*.egg-info",
    ".*_cache",
]
SNAKEMAKE_TIMEOUT_S = 900


def _skip_reason():
    if os.geteuid() != 0:
        return "needs root: starts munged, slurmctld and slurmd"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is unavailable to install it"
    if SLURM_CONF.exists() and CONF_MARKER not in SLURM_CONF.read_text():
        return f"{SLURM_CONF} belongs to a real SLURM installation; not replacing it"
    return None


if os.environ.get("PEROVS_REQUIRE_SLURM") == "1" and _skip_reason() is not None:
    # CI sets this: there the SLURM test must run, a skip would hide a broken profile
    raise RuntimeError(f"PEROVS_REQUIRE_SLURM=1 but the SLURM test cannot run: {_skip_reason()}")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]


# --- SLURM's records --------------------------------------------------------------------------


@dataclass
class SlurmJob:
    job_id: str
    run_id: str  # sbatch --job-name: the snakemake run's uuid
    rule: str  # from the comment rule_<rule>[_wildcards_<...>] the executor sets
    partition: str
    state: str
    gres: str  # squeue %b, e.g. "gres:gpu:1" or "N/A"
    cpus: int


def _rule_from_comment(comment):
    """The rule of a SLURM job; a group job's comment is rule_<group>_<its rules>."""
    name = comment.removeprefix("rule_").split("_wildcards_")[0]
    for group, rule in GROUPED_RULES.items():
        if name == f"{group}_{rule}":
            return rule
    return name


def slurm_jobs_per_rule(job_counts):
    """SLURM jobs per rule for Snakemake's job counts: grouped isolated atoms share jobs."""
    expected = dict(job_counts)
    atoms = expected.get("cp2k_isolated_atom", 0)
    if atoms:
        expected["cp2k_isolated_atom"] = -(-atoms // ATOMS_PER_SLURM_JOB)
    return expected


class SlurmRecorder:
    """Polls ``squeue --states=all`` in the background and keeps every job it ever saw (finished
    jobs stay listed for MinJobAge = 300 s, so polling every few seconds misses none)."""

    FORMAT = "%i|%j|%k|%P|%T|%b|%C"

    def __init__(self, interval_s=2.0):
        self.jobs = {}
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.poll()

    def poll(self):
        result = subprocess.run(
            ["squeue", "--states=all", "--noheader", f"--format={self.FORMAT}"],
            capture_output=True,
            text=True,
        )
        for line in result.stdout.splitlines():
            job_id, run_id, comment, partition, state, gres, cpus = line.split("|")
            rule = _rule_from_comment(comment)
            self.jobs[job_id] = SlurmJob(job_id, run_id, rule, partition, state, gres, int(cpus))

    def _loop(self):
        while not self._stop.wait(self._interval_s):
            self.poll()

    def jobs_of(self, run_ids):
        self.poll()
        return [job for job in self.jobs.values() if job.run_id in run_ids]


def jobcomp_partitions():
    """Job id -> partition from SLURM's job-completion log (jobcomp/filetxt)."""
    text = JOBCOMP_LOG.read_text() if JOBCOMP_LOG.exists() else ""
    return dict(re.findall(r"JobId=(\d+) .*?Partition=(\S+)", text))


# --- snakemake ----------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    output: str

    @property
    def run_ids(self):
        return set(re.findall(r"SLURM run ID: (\S+)", self.output))

    @property
    def job_counts(self):
        """Rule -> jobs, from the first "Job stats" table (what was scheduled)."""
        match = re.search(r"Job stats:\njob\s+count\n[- ]+\n(.*?)\ntotal\s+\d+", self.output, re.S)
        if match is None:
            return {}
        counts = (line.split() for line in match.group(1).splitlines())
        return {rule: int(count) for rule, count in counts if rule != "all"}

    @property
    def planned_outputs(self):
        """Rule -> output files of every job a (dry) run listed."""
        planned = {}
        # group jobs (isolated atoms) list their members indented by four spaces
        for _, rule, outputs in re.findall(
            r"^( *)rule (\w+):\n(?:\1    .*\n)*?\1    output: (.*)$", self.output, re.M
        ):
            planned.setdefault(rule, []).extend(outputs.split(", "))
        return planned


class Workflow:
    """A copy of the repository, run through the named profile ``--profile slurm`` (installed by
    the copy's scripts/install_profiles.sh under ``config_home``) with a test config."""

    def __init__(self, root, config_path, config_home):
        self.root = root
        self.config_path = config_path
        self.config_home = config_home
        self.runs = []

    def command(self, *args):
        return [
            str(BIN_DIR / "snakemake"),
            "--profile",
            "slurm",
            *args,
            # last: --configfile takes every value up to the next option
            "--configfile",
            str(self.config_path),
        ]

    def environment(self):
        # Jobs inherit this environment (sbatch --export=ALL): the venv's python first.
        # Snakemake finds a bare profile name under $XDG_CONFIG_HOME/snakemake.
        return {
            **os.environ,
            "PATH": f"{BIN_DIR}:{os.environ['PATH']}",
            "XDG_CONFIG_HOME": str(self.config_home),
            "PEROVS_SLURM_ATOMS_PER_JOB": str(ATOMS_PER_SLURM_JOB),
        }

    def install_profiles(self):
        """The README's setup step for named profiles, run in the copy."""
        result = subprocess.run(
            ["bash", "scripts/install_profiles.sh"],
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        installed = self.config_home / "snakemake" / "slurm"
        assert installed.resolve() == (self.root / "profiles" / "slurm").resolve()

    def start(self, *args):
        """Start snakemake; its output goes to a log file beside the copy (a pipe could fill
        up while the test is busy with SLURM)."""
        log_path = self.root.parent / f"snakemake_{len(self.runs) + 1}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                self.command(*args),
                cwd=self.root,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process.log_path = log_path
        return process

    def finish(self, process, timeout=SNAKEMAKE_TIMEOUT_S):
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.interrupt(process)
            pytest.fail(f"snakemake ran past {timeout} s:\n{process.log_path.read_text()[-5000:]}")
        except BaseException:  # e.g. Ctrl-C of pytest: do not leave snakemake behind
            self.interrupt(process)
            raise
        run = Run(process.returncode, process.log_path.read_text())
        self.runs.append(run)
        return run

    @staticmethod
    def interrupt(process):
        # SIGINT, not SIGTERM: snakemake then cancels the SLURM jobs it submitted.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def run(self, *args, timeout=SNAKEMAKE_TIMEOUT_S):
        return self.finish(self.start(*args), timeout)

    def dry_run(self, *args):
        result = subprocess.run(
            self.command("--dry-run", *args),
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return Run(result.returncode, result.stdout + result.stderr)

    def all_run_ids(self):
        return set().union(*(run.run_ids for run in self.runs))


def file_times(root, pattern):
    return {path: path.stat().st_mtime_ns for path in sorted(root.glob(pattern)) if path.is_file()}


# --- the scenario -------------------------------------------------------------------------------
# One host, one substituent: CP2K jobs (one relaxation, the isolated atoms of its elements) and
# MACE/torch jobs (CHGNet labels of the stand-in MPtrj, the stand-in foundation model, its
# predictions on the Perovs-Dopants test split, which joins both branches).

HOST = "CsPbBr3"
FIRST_DEFECT = "sub_Rb_on_A"
ADDED_DEFECT = "sub_Sn_on_B"  # the substituent added in the change test; Sn is a new element
INITIAL_ELEMENTS = ["Br", "Cs", "Pb", "Rb"]


def scenario_config():
    """demo/config.yaml, cut to one host and one substituent, with smaller stand-ins."""
    config = yaml.safe_load((REPO_ROOT / "demo" / "config.yaml").read_text())
    config["hosts"] = {
        HOST: {"source": "prototype", "substituents": {"A": ["Rb"]}, "vacancies": []}
    }
    mptrj = config["reference"]["mptrj"]
    mptrj["standin"].update(structures=30, frames_per_material=1)
    mptrj.update(test_size=5, replay_size=5, cp2k_subset_size=1)
    config["mace"]["standin_foundation"]["max_num_epochs"] = 2
    # One CP2K MPtrj frame cannot determine the stand-in elements' code offsets, which the
    # demo's aligned E0s need (tests/test_mace_foundation.py covers those).
    config["mace"]["standin_foundation"]["e0s"] = "average"
    config["dft"].setdefault("geo_opt", {})["max_iter"] = 2  # a relaxation of ~3 force calls
    # Without the variant trained on the CP2K MPtrj subset, isolated atoms are planned for the
    # dopant data set's elements only (with it, for every element the subset may hold).
    config["variants"] = {
        name: v for name, v in config["variants"].items() if v.get("data") != "mptrj_cp2k"
    }
    # A few frames per relaxation: a large test share keeps the test split non-empty.
    config.setdefault("dataset", {}).setdefault("split", {})["fractions"] = [0.4, 0.2, 0.4]
    config["baselines"] = ["chgnet"]  # the copy has no .venv-sevennet
    # The screen (its own tests) and its held-out dopant are not this scenario's subject.
    config["screening"]["enabled"] = False
    config["dataset"]["split"]["held_out_substituents"] = []
    return config


def zero_shot_variant(config):
    return next(name for name, v in config["variants"].items() if v["method"] == "zero_shot")


@pytest.fixture(scope="module")
def slurm_cluster():
    """The local cluster, started for this module and stopped after it (even on failure),
    unless it was already running before."""
    already_running = subprocess.run([CLUSTER_SCRIPT, "status"], capture_output=True).returncode
    started_here = already_running != 0
    try:
        subprocess.run([CLUSTER_SCRIPT, "start"], check=True, timeout=900)
        recorder = SlurmRecorder()
        recorder.start()
        try:
            yield recorder
        finally:
            recorder.stop()
    finally:
        if started_here:
            subprocess.run([CLUSTER_SCRIPT, "stop"], timeout=300)


def ignore_when_copying(folder, names):
    patterns = ["__pycache__"] + (NOT_COPIED_TOP_LEVEL if Path(folder) == REPO_ROOT else [])
    return shutil.ignore_patterns(*patterns)(folder, names)


@pytest.fixture(scope="module")
def workflow(slurm_cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("perovs-slurm")
    root = base / "repo"
    shutil.copytree(REPO_ROOT, root, ignore=ignore_when_copying)
    config_path = root / "scenario.yaml"
    config_path.write_text(yaml.safe_dump(scenario_config(), sort_keys=False))
    workflow = Workflow(root, config_path, config_home=base / "config")
    workflow.install_profiles()
    return workflow


def targets(workflow):
    config = yaml.safe_load(workflow.config_path.read_text())
    return [f"results/predictions/{zero_shot_variant(config)}/perovs_dopants.extxyz"]


def dft_files(root, defects, elements):
    """Every file of the named CP2K calculations: summaries, inputs, outputs, restarts."""
    files = {}
    for defect in defects:
        files |= file_times(root, f"results/cp2k/relax/{HOST}/{defect}/**/*")
    for element in elements:
        files |= file_times(root, f"results/cp2k/atoms/{element}/**/*")
    return files


@pytest.fixture(scope="module")
def first_run(workflow):
    run = workflow.run(*targets(workflow))
    assert run.returncode == 0, run.output[-6000:]
    return run


def test_every_job_ran_on_its_partition_by_slurm_records(slurm_cluster, first_run, slurm_routing):
    jobs = slurm_cluster.jobs_of(first_run.run_ids)
    # Every job snakemake scheduled went through SLURM, and finished there; the isolated atoms
    # (one Snakemake job each) in one SLURM job (group isolated_atoms, up to 6 per job).
    submitted = Counter(job.rule for job in jobs)
    assert submitted == slurm_jobs_per_rule(first_run.job_counts)
    assert {job.state for job in jobs} == {"COMPLETED"}
    assert submitted["cp2k_relax"] == 1
    assert first_run.job_counts["cp2k_isolated_atom"] == len(INITIAL_ELEMENTS)
    assert submitted["cp2k_isolated_atom"] == 1
    assert submitted["standin_label"] == 1
    assert submitted["mace_foundation_model"] == 1
    assert submitted["mace_predict"] == 1

    completion_log = jobcomp_partitions()
    for job in jobs:
        assert completion_log[job.job_id] == job.partition, job
        if job.rule in slurm_routing["cp2k_mpi"]:
            # MPI: 2 tasks x 1 CPU, no GPU (grouped atoms too: they run one after the other)
            assert (job.partition, job.gres, job.cpus) == ("cpu", "N/A", 2), job
        elif job.rule in slurm_routing["gpu"]:
            assert job.partition == "gpu", job
            assert job.gres.removeprefix("gres:") == "gpu:1", job
        else:
            assert (job.partition, job.gres) == ("cpu", "N/A"), job


def test_cp2k_ran_as_one_mpi_job_with_two_ranks(workflow, first_run):
    outputs = sorted((workflow.root / "results/cp2k/relax" / HOST / FIRST_DEFECT).rglob("*.out"))
    assert outputs
    ranks = re.findall(r"Total number of message passing processes\s+(\d+)", outputs[0].read_text())
    assert ranks and set(ranks) == {"2"}


def test_added_substituent_schedules_only_new_dft_and_downstream(workflow, first_run):
    assert workflow.dry_run(*targets(workflow)).job_counts == {}

    config = yaml.safe_load(workflow.config_path.read_text())
    config["hosts"][HOST]["substituents"]["B"] = ["Sn"]
    workflow.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    plan = workflow.dry_run(*targets(workflow))

    assert plan.job_counts == {
        "defect_structure": 1,
        "cp2k_relax": 1,
        "cp2k_isolated_atom": 1,
        "cp2k_failures_check": 2,  # the relax and isolated-atom failure checks see a new job
        "trajectory": 1,
        "isolated_atoms_dataset": 1,
        "dataset_splits": 1,
        "mace_predict": 1,
    }
    assert plan.planned_outputs["cp2k_relax"] == [
        f"results/cp2k/relax/{HOST}/{ADDED_DEFECT}/summary.json"
    ]
    assert plan.planned_outputs["cp2k_isolated_atom"] == ["results/cp2k/atoms/Sn/summary.json"]


def test_cancelled_job_fails_and_rerun_recovers_without_redoing_dft(
    slurm_cluster, workflow, first_run, slurm_routing
):
    finished_dft = dft_files(workflow.root, [FIRST_DEFECT], INITIAL_ELEMENTS)
    assert finished_dft
    added_run_dir = workflow.root / "results/cp2k/relax" / HOST / ADDED_DEFECT
    comment = f"rule_cp2k_relax_wildcards_{HOST}_{ADDED_DEFECT}"

    # No automatic retry here: the cancellation must surface as a failed job.
    process = workflow.start("--retries", "0", *targets(workflow))
    cancelled = None
    deadline = time.monotonic() + SNAKEMAKE_TIMEOUT_S
    while cancelled is None and process.poll() is None and time.monotonic() < deadline:
        running = subprocess.run(
            ["squeue", "--noheader", "--states=RUNNING", "--format=%i|%k"],
            capture_output=True,
            text=True,
        ).stdout.split()
        job_ids = [line.split("|")[0] for line in running if line.split("|")[1] == comment]
        # Cancel once CP2K has written output, so there is a partial calculation to keep.
        if job_ids and list(added_run_dir.rglob("*.out")):
            subprocess.run(["scancel", job_ids[0]], check=True)
            cancelled = job_ids[0]
        time.sleep(1)
    run = workflow.finish(process)
    assert cancelled is not None, run.output[-6000:]
    assert run.returncode != 0
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in run.output
    slurm_cluster.poll()
    assert slurm_cluster.jobs[cancelled].state == "CANCELLED"
    assert list(added_run_dir.rglob("*.out")), "the cancelled job's CP2K files were deleted"

    rerun = workflow.run(*targets(workflow))
    assert rerun.returncode == 0, rerun.output[-6000:]
    # The cancelled relaxation and what depends on it; the Sn atom and the isolated-atom set
    # finished in the cancelled run (keep-going), the first relaxation long before.
    assert rerun.job_counts == {
        "cp2k_relax": 1,
        "cp2k_failures_check": 1,  # the relax failure check sees the finished relaxation
        "trajectory": 1,
        "dataset_splits": 1,
        "mace_predict": 1,
    }
    assert rerun.planned_outputs["cp2k_relax"] == [
        f"results/cp2k/relax/{HOST}/{ADDED_DEFECT}/summary.json"
    ]
    assert dft_files(workflow.root, [FIRST_DEFECT], INITIAL_ELEMENTS) == finished_dft
    assert (workflow.root / targets(workflow)[0]).is_file()

    # SLURM's records of every job of every run so far: still each on its partition.
    for job in slurm_cluster.jobs_of(workflow.all_run_ids()):
        expected = "gpu" if job.rule in slurm_routing["gpu"] else "cpu"
        assert job.partition == expected, job


def test_single_target_rerun_recomputes_only_that_target(slurm_cluster, workflow, first_run):
    target = workflow.root / "results/trajectories" / HOST / f"{FIRST_DEFECT}.extxyz"
    before = file_times(workflow.root, "results/**/*")

    run = workflow.run("--force", str(target.relative_to(workflow.root)))

    assert run.returncode == 0, run.output[-6000:]
    assert run.job_counts == {"trajectory": 1}
    jobs = slurm_cluster.jobs_of(run.run_ids)
    assert [(job.rule, job.partition, job.state) for job in jobs] == [
        ("trajectory", "cpu", "COMPLETED")
    ]
    after = file_times(workflow.root, "results/**/*")
    changed = {path for path in before if after.get(path) != before[path]}
    assert changed == {target}
