"""Config validation: schema defaults, clear errors naming key and value, dry-run job counts."""

import copy
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from workflow_scripts.config import REPO_ROOT, ConfigError, load_config, validate_config
from workflow_scripts.defects import plan_defects
from workflow_scripts.elements import CP2K_WITHOUT_BASIS, MPTRJ_ELEMENTS, cp2k_can_compute

MINIMAL = {
    "hosts": {"SrTiO3": {"source": "prototype"}},
    "defects": {"supercell": [2, 1, 1], "substituents": {"A": ["Ba"], "B": ["Zr"]}},
}


def test_defaults_are_filled():
    config = validate_config(copy.deepcopy(MINIMAL), REPO_ROOT)
    assert config["defects"]["vacancies"] == ["A", "B"]
    assert config["dft"]["cutoff"] > 0
    assert config["mace"]["hyperparameters"]["lr"] == pytest.approx(1e-5)


def test_study_and_demo_configs_are_valid():
    study = load_config(REPO_ROOT / "config.yaml")
    assert study["mace"]["hyperparameters"]["lr"] == pytest.approx(1e-5)
    assert study["mace"]["hyperparameters"]["max_num_epochs"] == 20
    assert {"Fe", "N", "Nd"} <= set(study["defects"]["substituents"]["A"]) | {"N"}
    load_config(REPO_ROOT / "demo/config.yaml")


def mutated(path, value):
    config = copy.deepcopy(MINIMAL)
    *parents, last = path
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("defects", "substituents", "A"), ["Xx"], r"substituents\.A.*unknown element 'Xx'"),
        (("defects", "substituents", "B"), ["Th"],
         r"substituents\.B.*no MOLOPT basis with a GTH potential for 'Th'.*dft\.elements\.Th"),
        (("defects", "supercell"), [2, 0, 2], r"defects\.supercell\.1.*less than the minimum of 1"),
        (("defects", "supercell"), [2, -1, 2], r"defects\.supercell\.1"),
        (("mace", "hyperparameters", "lr"), 0, r"mace\.hyperparameters\.lr.*0"),
        (("mace", "hyperparameters", "lr"), -1e-5, r"mace\.hyperparameters\.lr"),
        (("defects", "substituent"), {"A": ["Fe"]}, r"'defects'.*unknown key.*'substituent'.*typo"),
        (("dft", "cutof"), 400, r"'dft'.*unknown key.*'cutof'"),
        (("hosts", "SrTiO3", "source"), "protoype", r"hosts\.SrTiO3\.source.*'protoype'"),
        (("hosts", "CaTiO3"), {"source": "file", "path": "nope/CaTiO3.cif"},
         r"hosts\.CaTiO3\.path.*'nope/CaTiO3\.cif' not found"),
        (("defects", "anion_substituents"), {"O": ["O"]},
         r"defects\.anion_substituents\.O.*'O' equals the atom it replaces"),
        (("hosts", "SrTiO3", "site_roles"), {"A": "Qq"}, r"hosts\.SrTiO3\.site_roles\.A.*'Qq'"),
    ],
)  # fmt: skip
def test_malformed_config_is_rejected_naming_the_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        config = validate_config(mutated(path, value), REPO_ROOT)
        plan_defects(config, REPO_ROOT)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ({"source": "prototype", "site_roles": {"A": "Ba"}},
         r"hosts\.SrTiO3\.site_roles\.A.*'Ba' is not in host SrTiO3"),
        ({"source": "prototype", "substituents": {"B": ["Ti"]}},
         r"hosts\.SrTiO3\.substituents\.B.*'Ti' equals the atom it replaces"),
    ],
)  # fmt: skip
def test_host_dependent_errors_name_the_key(host, message):
    config = validate_config(mutated(("hosts", "SrTiO3"), host), REPO_ROOT)
    with pytest.raises(ConfigError, match=message):
        plan_defects(config, REPO_ROOT)


def succeeded(result) -> str:
    """The output of a Snakemake run that must succeed."""
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    return result.stdout + result.stderr


def rule_counts(output: str) -> dict[str, int]:
    """Job counts per rule from `snakemake -n --quiet rules` output."""
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", output, re.MULTILINE)}


def dry_run(snakemake, config: dict, workdir: Path) -> dict[str, int]:
    """Job counts per rule of `snakemake -n` for a config, run in its own directory."""
    return rule_counts(succeeded(snakemake(workdir, "-n", "--quiet", "rules", config=config)))


def test_adding_a_substituent_adds_exactly_its_jobs(tmp_path, snakemake):
    before = copy.deepcopy(MINIMAL)
    after = copy.deepcopy(MINIMAL)
    after["defects"]["substituents"]["B"] = ["Zr", "Hf"]
    counts_before = dry_run(snakemake, before, tmp_path / "before")
    counts_after = dry_run(snakemake, after, tmp_path / "after")
    assert counts_before["defect_structure"] == 4  # Ba on A, Zr on B, vac A, vac B
    # Hf on B: one structure, one relaxation, one trajectory, and Hf's isolated atom.
    added = {"defect_structure": 1, "cp2k_relax": 1, "trajectory": 1, "cp2k_isolated_atom": 1}
    for rule, count in counts_after.items():
        if rule != "total":
            assert count == counts_before.get(rule, 0) + added.get(rule, 0), rule
    assert counts_after["total"] == counts_before["total"] + sum(added.values())


def test_snakemake_stops_before_scheduling_on_a_bad_config(tmp_path, snakemake):
    result = snakemake(tmp_path, "-n", config=mutated(("defects", "supercell"), [0, 1, 1]))
    assert result.returncode != 0
    assert "config key 'defects.supercell.0'" in result.stderr + result.stdout
    assert not (tmp_path / "results" / "structures").exists()


def test_how_cp2k_runs_is_kept_apart_from_what_it_computes(tmp_path, snakemake):
    """A new wall time, launcher or custodian setting must not touch results/config/dft.json
    (an input of every CP2K job: a change would rerun all DFT and retrain every model)."""
    before = copy.deepcopy(MINIMAL)
    dry_run(snakemake, before, tmp_path / "run")
    physics = tmp_path / "run" / "results" / "config" / "dft.json"
    runtime = tmp_path / "run" / "results" / "config" / "dft_runtime.json"
    physics_text, physics_mtime = physics.read_text(), physics.stat().st_mtime_ns
    assert "custodian" not in json.loads(physics_text)
    assert json.loads(physics_text)["cutoff"] == 500  # the schema default
    after = copy.deepcopy(before)
    after["dft"] = {
        "custodian": {"max_errors": 7},
        "resources": {"relax_runtime_min": 999},
        "mpi_launcher": "srun",
    }
    succeeded(snakemake(tmp_path / "run", "-n", "--quiet", "rules", config=after))
    assert physics.stat().st_mtime_ns == physics_mtime and physics.read_text() == physics_text
    written = json.loads(runtime.read_text())
    assert written["custodian"]["max_errors"] == 7 and written["mpi_launcher"] == "srun"


def test_adding_a_variant_retrains_only_that_variant(tmp_path, snakemake, demo_config):
    """On a completed demo workflow (every output created and touched, nothing run), a new
    variant plans its own training, its predictions and the tables, and no other model."""
    config = demo_config
    workdir = tmp_path / "demo"
    summary = succeeded(snakemake(workdir, "--summary", config=config))
    for line in summary.splitlines():
        fields = line.split("\t")
        if len(fields) >= 5 and fields[0].startswith("results/"):
            (workdir / fields[0]).parent.mkdir(parents=True, exist_ok=True)
            (workdir / fields[0]).touch()
    succeeded(snakemake(workdir, "--touch"))
    assert "Nothing to be done" in succeeded(snakemake(workdir, "-n"))
    config["variants"]["ft-dopants-standard-lr1e-4"] = {
        "method": "standard",
        "data": "perovs_dopants",
        "lr": 1.0e-4,
    }
    counts = rule_counts(succeeded(snakemake(workdir, "-n", "--quiet", "rules", config=config)))
    assert counts["mace_train"] == 1
    assert counts["mace_predict"] == len(config["evaluation"]["test_sets"])
    assert not {r for r in counts if r.startswith(("cp2k_", "chgnet", "mace_descriptors"))}
    assert "dataset_splits" not in counts and "mace_foundation_model" not in counts


def test_both_studies_validate_with_their_own_foundation_and_rows():
    """config.yaml (MACE-MP-0b3) and config.mace-mp-0.yaml (the earlier MACE-MP-0 large study)."""
    later = load_config(REPO_ROOT / "config.yaml")
    earlier = load_config(REPO_ROOT / "config.mace-mp-0.yaml")
    assert later["mace"]["foundation_model"] == "medium-0b3"
    assert earlier["mace"]["foundation_model"].endswith(
        "/mace_mp_0/2024-01-07-mace-128-L2_epoch-199.model"
    )
    assert earlier["run_label"] != later["run_label"]
    methods = {name: (v["method"], v["lr"]) for name, v in earlier["variants"].items()}
    assert sorted(methods.values(), key=str) == sorted(
        [("zero_shot", None), ("standard", None), ("standard", 5e-4), ("scratch", 5e-3)], key=str
    )
    assert earlier["mace"]["hyperparameters"]["lr"] == pytest.approx(1e-5)
    assert earlier["evaluation"]["test_sets"] == ["mptrj", "perovs_dopants"]
    # everything up to the models is the same study, written out the same (not just by default)
    raw_later, raw_earlier = (
        yaml.safe_load((REPO_ROOT / name).read_text())
        for name in ("config.yaml", "config.mace-mp-0.yaml")
    )
    for section in ("hosts", "host_folders", "materials_project", "defects", "dft", "dataset"):
        assert raw_earlier.get(section) == raw_later.get(section), section
    assert raw_earlier["reference"] == raw_later["reference"]


def test_earlier_study_overlay_plans_a_dry_run(tmp_path, snakemake):
    """`snakemake -n --configfile config.mace-mp-0.yaml --replace-workflow-config all`."""
    workdir = tmp_path / "mace-mp-0"
    workdir.mkdir()
    (workdir / "config.yaml").write_text((REPO_ROOT / "config.mace-mp-0.yaml").read_text())
    counts = rule_counts(succeeded(snakemake(workdir, "-n", "--quiet", "rules", "all")))
    assert counts["mace_foundation_model"] == 1
    assert counts["mace_train"] == 3  # standard 1e-5, standard 5e-4, scratch
    assert counts["host_manifest"] == 1
    assert counts["defect_structure"] > 400
    assert not any("omat24" in rule for rule in counts)


def test_study_plans_an_isolated_atom_for_every_element_cp2k_can_compute_and_no_other(
    tmp_path, snakemake
):
    """The CP2K MPtrj variant trains with isolated-atom E0s: every element its subset can hold
    (MPtrj's 89 less those without a CP2K basis) gets one isolated-atom job; the subset is
    restricted to the same elements."""
    workdir = tmp_path / "study"
    workdir.mkdir()
    (workdir / "config.yaml").write_text((REPO_ROOT / "config.yaml").read_text())
    output = succeeded(
        snakemake(workdir, "-n", "--forceall", "cp2k_check_inputs", "isolated_atoms_dataset")
    )
    atoms = set(re.findall(r"results/cp2k/atoms/(\w+)/summary\.json", output))
    expected = {el for el in MPTRJ_ELEMENTS if cp2k_can_compute(el)}
    assert atoms == expected
    assert len(atoms) == 84
    assert not atoms & CP2K_WITHOUT_BASIS
    assert {"Ac", "Th", "Pa", "Np", "Pu"} == set(MPTRJ_ELEMENTS) - atoms


def test_study_runs_its_mptrj_single_points_in_batches(tmp_path, snakemake):
    """2,000 single points at dft.batch.single_points = 20: 100 batch jobs; the isolated
    atoms stay one job per element (grouped into SLURM jobs by the profile only)."""
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    counts = rule_counts(
        succeeded(snakemake(tmp_path / "study", "-n", "--quiet", "rules", config=config))
    )
    size = config["reference"]["mptrj"]["cp2k_subset_size"]
    per_job = config["dft"]["batch"]["single_points"]
    assert (size, per_job) == (2000, 20)
    assert counts["cp2k_mptrj_single_point"] == math.ceil(size / per_job) == 100
    assert counts["cp2k_isolated_atom"] == 84
    assert counts["mptrj_cp2k_labels"] == 1
