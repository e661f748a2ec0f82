"""Parse-time helpers of the MACE rules: inputs per variant, wildcard patterns, config checks."""

import re

from workflow_scripts.config import REPO_ROOT, load_config
from workflow_scripts.mace import plan


def study():
    return load_config(REPO_ROOT / "config.yaml")


def test_training_inputs_follow_the_data_contract():
    config = study()
    inputs = plan.training_inputs(config, "ft-dopants-multihead", "MPtrj", "OMat24")
    assert inputs == {
        "perovs_train": "results/dataset/train.extxyz",
        "perovs_valid": "results/dataset/valid.extxyz",
        "replay": "results/reference/MPtrj/replay_fps.extxyz",
        "foundation": "results/models/foundation.model",
        "foundation_info": "results/models/foundation.json",
    }
    cp2k = plan.training_inputs(config, "ft-mptrj-cp2k-standard", "MPtrj", "OMat24")
    assert cp2k["mptrj_cp2k"] == "results/reference/MPtrj/cp2k_subset.extxyz"
    assert cp2k["isolated_atoms"] == "results/dataset/isolated_atoms.extxyz"
    omat = plan.training_inputs(config, "ft-omat24-multihead", "MPtrj", "OMat24")
    assert omat["omat24_train"] == "results/reference/OMat24/train.extxyz"
    assert "isolated_atoms" not in omat  # VASP data keep the foundation's E0s
    scratch = plan.training_inputs(config, "scratch-dopants", "MPtrj", "OMat24")
    assert "foundation" not in scratch and "replay" not in scratch


def test_cli_flags_are_quoted_and_in_order():
    named = {"replay": "a b.extxyz", "foundation": "f.model", "other": "x"}
    assert plan.cli_flags(named, ["foundation", "replay", "missing"]) == (
        "--foundation f.model --replay 'a b.extxyz'"
    )


def test_name_pattern_matches_exactly_the_names():
    pattern = plan.name_pattern(["ft-a", "b.c+1"])
    assert re.fullmatch(pattern, "b.c+1")
    assert not re.fullmatch(pattern, "bxc+1")
    assert not re.fullmatch(plan.name_pattern([]), "anything")


def test_trainable_variants_and_targets():
    config = study()
    trainable = plan.trainable_variants(config)
    assert "MACE-MP-0b3" not in trainable
    assert len(trainable) == 6
    assert "results/models/scratch-dopants.json" in plan.model_files(config)
    assert "results/metrics/table1_force_mae.md" in plan.metric_files()


def test_study_and_demo_configs_pass_and_bad_variants_are_named():
    assert plan.config_problems(study()) == []
    assert plan.config_problems(load_config(REPO_ROOT / "demo" / "config.yaml")) == []
    config = study()
    config["variants"]["bad-mh"] = {"method": "multihead", "data": "omat24", "e0s": "average"}
    config["variants"]["bad-std"] = {"method": "standard", "data": "omat24", "e0s": "estimated"}
    problems = plan.config_problems(config)
    assert "config key 'variants.bad-mh.replay': required for method multihead (mptrj_fps)" in (
        problems
    )
    assert any(p.startswith("config key 'variants.bad-std.e0s'") for p in problems)
    assert len(problems) == 3
