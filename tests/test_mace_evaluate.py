"""Batched predictions: identical to mace's and CHGNet's ASE calculators, heads, coverage."""

import json

import numpy as np
import pytest
from ase.io import read, write

from workflow_scripts.mace import evaluate, settings
from workflow_scripts.mace.synthetic import emt_bulk_frames, random_mace_model


def test_head_choice():
    assert evaluate.choose_head(["Default"], "finetuned") == "Default"
    assert evaluate.choose_head(["Default"], "pretraining") == "Default"
    assert evaluate.choose_head(["pt_head", "Default"], "finetuned") == "Default"
    assert evaluate.choose_head(["pt_head", "Default"], "pretraining") == "pt_head"
    with pytest.raises(ValueError):
        evaluate.choose_head(["a", "b"], "pretraining")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("model") / "tiny.model"
    torch.save(random_mace_model([28, 29], r_max=4.0), path)  # Ni, Cu
    return path


@pytest.fixture(scope="module")
def frames():
    return emt_bulk_frames(5, ("Cu", "Ni"), seed=11) + emt_bulk_frames(1, ("Cu", "Al"), seed=12)


def _calculator_results(model_file, frames, dtype):
    from mace.calculators import MACECalculator

    calculator = MACECalculator(model_paths=str(model_file), device="cpu", default_dtype=dtype)
    results = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calculator
        results.append((atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()))
    return results


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-10), ("float32", 1e-4)])
def test_batched_predictions_equal_the_mace_calculator(model_file, frames, dtype, tolerance):
    predicted = [atoms.copy() for atoms in frames]
    summary = evaluate.predict_mace(
        settings.load_model(model_file),
        predicted,
        head="Default",
        batch_size=2,
        device="cpu",
        dtype=dtype,
        model_name="tiny",
    )
    assert summary == {"evaluated": 5, "skipped": 1, "head": "Default"}
    expected = _calculator_results(model_file, frames[:5], dtype)
    for atoms, (energy, forces, stress) in zip(predicted[:5], expected, strict=True):
        assert atoms.info["MACE_energy"] == pytest.approx(energy, abs=tolerance * len(atoms))
        np.testing.assert_allclose(atoms.arrays["MACE_forces"], forces, atol=tolerance)
        np.testing.assert_allclose(atoms.info["MACE_stress"], stress, atol=tolerance)
    # the Al frame: the model does not know Al, so it gets no prediction
    assert "MACE_energy" not in predicted[5].info
    assert predicted[5].info["MACE_skipped"] == "elements not in model: Al"


def test_cli_writes_labels_predictions_model_and_head(model_file, frames, tmp_path):
    data, out = tmp_path / "test.extxyz", tmp_path / "predictions" / "tiny" / "test.extxyz"
    write(data, frames)
    evaluation = {"batch_size": 4, "dtype": "float64", "multihead_head": "finetuned"}
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    (tmp_path / "mace.json").write_text(json.dumps({"device": "auto"}))
    evaluate.main(
        ["mace", "--model", str(model_file), "--model-name", "tiny", "--data", str(data),
         "--out", str(out), "--evaluation-config", str(tmp_path / "evaluation.json"),
         "--mace-config", str(tmp_path / "mace.json"), "--threads", "1"]
    )  # fmt: skip
    written = read(out, ":")
    assert len(written) == 6
    assert [a.info["model"] for a in written] == ["tiny"] * 6
    assert written[0].info["head"] == "Default"
    assert written[0].info["REF_energy"] == pytest.approx(frames[0].info["REF_energy"])
    np.testing.assert_allclose(written[0].arrays["REF_forces"], frames[0].arrays["REF_forces"])
    assert written[0].arrays["MACE_forces"].shape == (len(frames[0]), 3)
    assert written[0].info["MACE_stress"].shape == (6,)
