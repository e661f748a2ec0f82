"""Which figures a config draws, and which models fill the embedding maps."""

import copy

import pytest

from workflow_scripts.analysis import plan
from workflow_scripts.analysis.common import load_settings
from workflow_scripts.config import REPO_ROOT, ConfigError, load_config


@pytest.fixture(scope="module")
def study():
    return load_config(REPO_ROOT / "config.yaml")


def test_study_config_draws_every_figure_with_the_papers_models(study):
    assert plan.analysis_models(study) == {
        "pretrained": "MACE-MP-0b3",
        "standard": "ft-dopants-standard",  # not the lr-5e-4 variant listed later
        "multihead": "ft-dopants-multihead",  # not the OMat24 multihead variant
    }
    assert plan.figure_names(study) == [
        "element_distribution",
        "force_shift_density",
        "force_shift_periodic_table",
        "dataset_coverage_tsne",
        "embedding_maps",
        "per_substituent_errors",
    ]
    files = plan.analysis_targets(study, ["table1"])
    assert "results/figures/embedding_maps.csv" in files
    assert "results/figures/force_shift_density_summary.csv" in files
    assert files[-1] == "results/report/table1.html"
    assert plan.map_descriptor_files(study)[0] == (
        "results/descriptors/MACE-MP-0b3/mptrj_embedding_sample.npy"
    )
    assert len(plan.map_descriptor_files(study)) == 9
    assert plan.map_prediction_files(study) == [
        "results/predictions/ft-dopants-standard/perovs_dopants_initial.extxyz",
        "results/predictions/ft-dopants-multihead/perovs_dopants_initial.extxyz",
    ]
    assert plan.map_descriptor_files(study)[2] == (
        "results/descriptors/MACE-MP-0b3/perovs_dopants_initial.npy"
    )
    assert plan.initial_structures_file("Perovs-Dopants") == (
        "results/analysis/Perovs-Dopants/initial_structures.extxyz"
    )


def test_findings_are_a_target_with_the_files_they_check(study):
    files = plan.analysis_targets(study, ["tableA1"])
    assert "results/metrics/findings.csv" in files and "results/metrics/findings.md" in files
    descriptors = plan.findings_descriptor_files(study)
    assert descriptors[:2] == [
        "results/descriptors/MACE-MP-0b3/mptrj_embedding_sample.npy",
        "results/descriptors/MACE-MP-0b3/perovs_dopants_initial.npy",
    ]
    assert sorted(descriptors) == sorted(plan.map_descriptor_files(study))
    assert plan.findings_force_shift_files(study) == [
        "results/figures/force_shift_density_summary.csv"
    ]
    config = copy.deepcopy(study)
    config["variants"] = {"zero": {"method": "zero_shot"}}
    config["reference"]["mptrj"]["cp2k_subset_size"] = 0
    assert plan.findings_descriptor_files(config) == [
        "results/descriptors/zero/mptrj_embedding_sample.npy",
        "results/descriptors/zero/perovs_dopants_initial.npy",
    ]
    assert plan.findings_force_shift_files(config) == []
    config["variants"] = {}
    assert plan.findings_descriptor_files(config) == []
    assert "results/metrics/findings.csv" in plan.analysis_targets(config)


def test_configured_models_win_and_unknown_ones_are_named(study):
    config = copy.deepcopy(study)
    config["analysis"]["models"]["standard"] = "ft-dopants-standard-lr5e-4"
    assert plan.analysis_models(config)["standard"] == "ft-dopants-standard-lr5e-4"
    config["analysis"]["models"]["multihead"] = "no-such-model"
    with pytest.raises(ConfigError, match="analysis.models.multihead.*'no-such-model'"):
        plan.analysis_models(config)


def test_figures_without_their_inputs_are_left_out(study):
    config = copy.deepcopy(study)
    config["variants"] = {"scratch": {"method": "scratch", "data": "perovs_dopants"}}
    config["evaluation"]["test_sets"] = ["mptrj"]
    assert plan.figure_names(config) == ["element_distribution"]
    with pytest.raises(ConfigError, match="analysis.models.pretrained"):
        plan.required_model(config, "pretrained")


def test_dataset_flags_are_quoted_for_the_shell(study):
    config = copy.deepcopy(study)
    config["reference"]["mptrj"]["name"] = "MPtrj-stand-in"
    flags = plan.dataset_flags(config, plan.COVERAGE_DATASETS)
    assert flags == (
        "--dataset 'mptrj_embedding_sample=MPtrj-stand-in (random sample)' "
        "--dataset perovs_dopants=Perovs-Dopants"
    )


def test_settings_file_gets_schema_defaults(tmp_path):
    path = tmp_path / "analysis.json"
    path.write_text('{"run_label": "demo", "tsne": {"perplexity": 5}}')
    settings = load_settings(path)
    assert settings["run_label"] == "demo"
    assert settings["tsne"] == {"perplexity": 5, "max_iter": 1000, "pca_components": 50}
    assert settings["force_shift"] == {"bins": 200, "range_quantile": 0.999}
    path.write_text('{"tsne": {"perplexity": -1}}')
    with pytest.raises(ConfigError, match="tsne.perplexity"):
        load_settings(path)
