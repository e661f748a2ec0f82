"""Real (tiny) MACE trainings through the stage's CLIs, checked against mace's own outputs.

A stand-in foundation model is pretrained on EMT-labelled fcc alloys (the "pool"); the
finetuning set has labels scaled by 1.15 and CP2K-style isolated atoms, playing the part of a
data set from another DFT code. About a minute on 2 cores.
"""

import json

import numpy as np
import pytest
from ase.io import read, write

from workflow_scripts.config import validate_schema
from workflow_scripts.mace import errors, evaluate, foundation, readback, train
from workflow_scripts.mace.synthetic import emt_bulk_frames, emt_isolated_atoms

ELEMENTS = ("Cu", "Ni", "Al")


def _sections():
    config = validate_schema(
        {
            "hosts": {"SrTiO3": {"source": "prototype"}},
            "mace": {
                "foundation_model": "stand-in",
                "device": "cpu",
                "hyperparameters": {"lr": 1.0e-5, "max_num_epochs": 2, "batch_size": 4},
                "standin_foundation": {
                    "num_channels": 8,
                    "r_max": 4.0,
                    "max_num_epochs": 8,
                    "lr": 0.02,
                },
            },
            "variants": {
                "zero": {"method": "zero_shot"},
                # a larger rate than the study's so that 2 epochs visibly move the weights
                "ft-standard": {"method": "standard", "data": "perovs_dopants", "lr": 1.0e-3},
                "ft-multihead": {
                    "method": "multihead",
                    "data": "perovs_dopants",
                    "replay": "mptrj_fps",
                },
            },
            "evaluation": {"dtype": "float64", "batch_size": 8},
        }
    )
    return {name: config[name] for name in ("mace", "variants", "evaluation")}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Data, configs, foundation model and two finetuned models, made through the CLIs."""
    root = tmp_path_factory.mktemp("mace_pipeline")
    pool = emt_bulk_frames(60, ELEMENTS, dataset="pool-stand-in", seed=1)
    target = emt_bulk_frames(46, ELEMENTS, label_scale=1.15, dataset="target", seed=2)
    paths = {name: root / f"{name}.extxyz" for name in ("pool", "replay", "train", "valid", "test")}
    write(paths["pool"], pool)
    write(paths["replay"], pool[:20])
    write(paths["train"], emt_isolated_atoms(ELEMENTS, label_scale=1.15) + target[:30])
    write(paths["valid"], target[30:36])
    write(paths["test"], target[36:])
    for name, section in _sections().items():
        (root / f"{name}.json").write_text(json.dumps(section))
    models = root / "models"
    foundation.main(
        ["resolve", "--mace-config", str(root / "mace.json"), "--pool", str(paths["pool"]),
         "--out", str(models / "foundation.model"), "--info", str(models / "foundation.json"),
         "--threads", "2"]
    )  # fmt: skip
    for variant in ("ft-standard", "ft-multihead"):
        train.main(
            ["run", "--variant", variant, "--variants-config", str(root / "variants.json"),
             "--mace-config", str(root / "mace.json"),
             "--foundation", str(models / "foundation.model"),
             "--foundation-info", str(models / "foundation.json"),
             "--perovs-train", str(paths["train"]), "--perovs-valid", str(paths["valid"]),
             "--replay", str(paths["replay"]), "--out", str(models / f"{variant}.model"),
             "--threads", "2"]
        )  # fmt: skip
    return {"root": root, "models": models, **paths}


def _predict(run, model_name, model_file, data="test"):
    out = run["root"] / "predictions" / model_name / f"{data}.extxyz"
    evaluate.main(
        ["mace", "--model", str(model_file), "--model-name", model_name, "--data",
         str(run[data]), "--out", str(out), "--evaluation-config",
         str(run["root"] / "evaluation.json"), "--mace-config", str(run["root"] / "mace.json")]
    )  # fmt: skip
    return read(out, ":")


def test_stand_in_foundation_is_named_and_trained_as_configured(run):
    info = json.loads((run["models"] / "foundation.json").read_text())
    assert info["name"] == "MACE-stand-in-foundation"
    assert info["model"]["heads"] == ["Default"]
    assert info["model"]["hidden_irreps"] == "8x0e"
    assert info["training"]["used"]["lr"] == 0.02
    assert info["training"]["used"]["epochs_completed"] == 8


def test_multihead_run_used_lr_1e5_two_heads_and_the_replay_file(run):
    work = run["models"] / "ft-multihead.work" / "mace"
    outputs = readback.read_training_outputs(work, "ft-multihead", 0)
    # mace's own log and checkpoint, not the command line
    assert outputs["log"]["lr"] == 1e-5
    assert set(outputs["log"]["param_group_lrs"]) == {1e-5}
    assert set(outputs["checkpoint"]["lrs"]) == {1e-5}
    assert outputs["log"]["multihead_finetuning"] is True
    assert outputs["log"]["ema_decay"] is None
    assert outputs["debug"]["training_files"]["pt_head"] == [str(run["replay"])]
    assert outputs["log"]["pretraining_configs"]["train"] + outputs["log"]["pretraining_configs"][
        "valid"
    ] == len(read(run["replay"], ":"))
    assert outputs["model"]["heads"] == ["pt_head", "Default"]
    record = json.loads((run["models"] / "ft-multihead.json").read_text())
    assert record["used"]["heads"] == ["pt_head", "Default"]
    assert record["used"]["lr"] == 1e-5
    assert "--force_mh_ft_lr=True" in record["command"]


def test_standard_run_has_one_head_and_isolated_atom_e0s(run):
    record = json.loads((run["models"] / "ft-standard.json").read_text())
    assert record["used"]["heads"] == ["Default"]
    assert record["used"]["multihead_finetuning"] is False
    assert record["used"]["lr"] == 1e-3
    isolated = {a.get_chemical_symbols()[0]: a.info["REF_energy"] for a in read(run["train"], ":3")}
    e0s = record["model"]["e0s"]["Default"]
    assert e0s["29"] == pytest.approx(isolated["Cu"])
    assert e0s["28"] == pytest.approx(isolated["Ni"])


def test_zero_shot_pipeline_energies_equal_the_mace_calculator(run):
    from mace.calculators import MACECalculator

    predicted = _predict(run, "zero", run["models"] / "foundation.model")
    calculator = MACECalculator(
        model_paths=str(run["models"] / "foundation.model"), device="cpu", default_dtype="float64"
    )
    for atoms in predicted:
        direct = atoms.copy()
        direct.calc = calculator
        assert atoms.info["MACE_energy"] == pytest.approx(
            direct.get_potential_energy(), abs=1e-7
        )  # extxyz keeps 8 decimals
        np.testing.assert_allclose(atoms.arrays["MACE_forces"], direct.get_forces(), atol=1e-7)


def test_finetuned_model_beats_its_foundation_on_the_finetuning_test_split(run):
    before = errors.summary(
        errors.collect(_predict(run, "zero", run["models"] / "foundation.model"))
    )
    after = errors.summary(
        errors.collect(_predict(run, "ft-standard", run["models"] / "ft-standard.model"))
    )
    assert after["n_evaluated"] == before["n_evaluated"] == 10
    assert after["force_mae_ev_per_a"] < 0.9 * before["force_mae_ev_per_a"]
