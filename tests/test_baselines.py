"""Baselines by config: registered models, any ASE calculator by factory, offline only."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read, write

from workflow_scripts.baselines import predict, registry
from workflow_scripts.config import REPO_ROOT, ConfigError, load_schema, validate_config
from workflow_scripts.mace.synthetic import emt_bulk_frames

SEVENNET_PYTHON = REPO_ROOT / ".venv-sevennet" / "bin" / "python"
EMT_ENTRY = {"factory": "ase.calculators.emt:EMT", "energy_scale": "VASP", "label": "EMT (ASE)"}


def test_schema_lists_exactly_the_registered_models():
    schema = load_schema()["properties"]["baselines"]
    assert sorted(schema["items"]["enum"]) == sorted(registry.REGISTERED)
    model = schema["additionalProperties"]["properties"]["model"]
    assert sorted(m for m in model["enum"] if m) == sorted(registry.REGISTERED)


def test_list_and_mapping_resolve_to_registered_settings():
    from_list = registry.normalise(["chgnet", "sevennet-0"])
    assert from_list["sevennet-0"]["factory"] == "sevenn.calculator:SevenNetCalculator"
    assert from_list["sevennet-0"]["python"] == ".venv-sevennet/bin/python"
    assert from_list["sevennet-0"]["conda"] == "envs/sevennet.yaml"
    assert from_list["chgnet"]["kwargs"] == {"version": "0.3.0"}
    assert from_list["chgnet"]["energy_scale"] == "VASP"
    # an entry overrides the registered keyword arguments, and may rename a registered model
    mapping = registry.normalise(
        {"chgnet-old": {"model": "chgnet", "kwargs": {"version": "0.2.0"}}}
    )
    assert mapping["chgnet-old"]["kwargs"] == {"version": "0.2.0"}
    assert mapping["chgnet-old"]["factory"] == registry.REGISTERED["chgnet"]["factory"]


def test_config_resolves_baselines_and_stays_valid_when_validated_again(demo_config):
    config = validate_config(demo_config | {"baselines": {"emt": EMT_ENTRY}}, REPO_ROOT)
    assert config["baselines"]["emt"]["factory"] == "ase.calculators.emt:EMT"
    assert config["baselines"]["emt"]["python"] == "python"
    assert validate_config(config, REPO_ROOT)["baselines"] == config["baselines"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kwargs": {}}, "'baselines.mine.factory': required"),
        ({"factory": "ase.calculators.emt:EMT"}, "'baselines.mine.energy_scale': required"),
        (
            {"factory": "x:y", "energy_scale": "VASP", "checkpoint": "a.pt"},
            "'baselines.mine.checkpoint_argument': required",
        ),
    ],
)
def test_incomplete_factory_entries_are_refused(entry, message, demo_config):
    with pytest.raises(ConfigError, match=message):
        validate_config(demo_config | {"baselines": {"mine": entry}}, REPO_ROOT)


def test_model_needing_a_download_is_refused_with_what_to_fetch(tmp_path, demo_config):
    with pytest.raises(ConfigError) as error:
        validate_config(demo_config | {"baselines": ["mace-mpa-0"]}, tmp_path)
    text = str(error.value)
    assert "checkpoint models/mace-mpa-0-medium.model not found" in text
    assert "https://github.com/ACEsuit/mace-foundations/releases/download/mace_mpa_0/" in text
    assert "Jobs never download weights" in text
    # once the file is there, the entry is accepted
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mace-mpa-0-medium.model").write_bytes(b"weights")
    config = validate_config(demo_config | {"baselines": ["mace-mpa-0"]}, tmp_path)
    assert config["baselines"]["mace-mpa-0"]["checkpoint_argument"] == "model"


def test_dry_run_stops_before_any_job_naming_the_file_to_fetch(tmp_path, snakemake, demo_config):
    config = demo_config | {"baselines": ["mattersim-v1-5m"]}
    result = snakemake(tmp_path / "work", "-n", "all", config=config)
    assert result.returncode != 0
    assert "checkpoint models/mattersim-v1.0.0-5M.pth not found" in result.stderr
    assert "pretrained_models/mattersim-v1.0.0-5M.pth" in result.stderr
    assert "Job stats" not in result.stdout


def test_factory_entry_adds_a_model_to_the_workflow_without_code(tmp_path, snakemake, demo_config):
    config = demo_config | {"baselines": {"emt": EMT_ENTRY}}
    result = snakemake(tmp_path / "work", "-n", "all", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = [line for line in result.stdout.splitlines() if "results/predictions/emt/" in line]
    for test_set in ("mptrj", "perovs_dopants", "omat24"):
        assert any(f"results/predictions/emt/{test_set}.extxyz" in line for line in planned)
    assert "baseline_predict" in result.stdout


def _run_predict(tmp_path: Path, name: str, spec: dict, frames: list, python=sys.executable):
    data, out = tmp_path / "data.extxyz", tmp_path / name / "perovs_dopants.extxyz"
    write(data, frames)
    (tmp_path / "baseline.json").write_text(json.dumps({name: spec, "run_label": "test"}))
    (tmp_path / "mace.json").write_text(json.dumps({"device": "cpu"}))
    subprocess.run(
        [str(python), "-m", "workflow_scripts.baselines.predict", "--model-name", name,
         "--baseline-config", str(tmp_path / "baseline.json"), "--data", str(data),
         "--out", str(out), "--mace-config", str(tmp_path / "mace.json"), "--threads", "1"],
        check=True, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    return read(out, ":")


def test_factory_predictions_equal_the_calculator_and_keep_labels(tmp_path):
    from ase.calculators.emt import EMT

    frames = emt_bulk_frames(3, ("Cu", "Ni", "Al"), seed=4)
    spec = registry.resolve("emt", dict(EMT_ENTRY))
    predicted = _run_predict(tmp_path, "emt", spec, frames)
    assert len(predicted) == 3
    written = read(tmp_path / "data.extxyz", ":")  # the positions the job read
    for atoms, frame in zip(predicted, written, strict=True):
        reference = frame.copy()
        reference.calc = EMT()
        # the labels are EMT too (before the file rounded the positions)
        assert atoms.info["MACE_energy"] == pytest.approx(reference.get_potential_energy(), 1e-9)
        assert atoms.info["REF_energy"] == pytest.approx(frame.info["REF_energy"], 1e-9)
        assert atoms.info["MACE_energy"] == pytest.approx(frame.info["REF_energy"], abs=1e-6)
        np.testing.assert_allclose(atoms.arrays["MACE_forces"], reference.get_forces(), atol=1e-9)
        np.testing.assert_allclose(atoms.info["MACE_stress"], reference.get_stress(), atol=1e-9)
        assert atoms.info["model"] == "emt"
        assert "head" not in atoms.info


def test_chgnet_predictions_equal_its_calculator():
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    frames = emt_bulk_frames(2, ("Cu", "Ni"), seed=13)
    predicted = [atoms.copy() for atoms in frames]
    calculator = registry.build_calculator(registry.normalise(["chgnet"])["chgnet"], "cpu")
    predict.predict(predicted, calculator, "chgnet")
    reference_calculator = CHGNetCalculator(
        CHGNet.load(model_name="0.3.0", verbose=False), use_device="cpu"
    )
    for atoms, frame in zip(predicted, frames, strict=True):
        reference = frame.copy()
        reference.calc = reference_calculator
        energy = reference.get_potential_energy()
        assert atoms.info["MACE_energy"] == pytest.approx(energy, abs=1e-4)
        assert -5.5 < energy / len(frame) < -3.0  # Cu/Ni alloys: about -4 to -5 eV/atom (PBE)
        np.testing.assert_allclose(atoms.arrays["MACE_forces"], reference.get_forces(), atol=1e-4)
        np.testing.assert_allclose(atoms.info["MACE_stress"], reference.get_stress(), atol=1e-5)


def test_sevennet_runs_offline_in_its_own_environment(tmp_path):
    if not SEVENNET_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SEVENNET_PYTHON} missing: scripts/setup.sh makes it")
        pytest.skip("no .venv-sevennet (bash scripts/setup.sh makes it)")
    from ase.build import bulk

    perfect = bulk("Cu", "fcc", a=3.6, cubic=True)
    displaced = perfect.copy()
    displaced.positions[0] += [0.1, 0.0, 0.0]
    frames = [perfect, displaced]
    for atoms in frames:
        atoms.info["REF_energy"] = 0.0
        atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))
    spec = registry.normalise(["sevennet-0"])["sevennet-0"]
    predicted = _run_predict(tmp_path, "sevennet-0", spec, frames, python=SEVENNET_PYTHON)
    # SevenNet-0 (11Jul2024) on fcc Cu, a = 3.6 Å: -4.0956 eV/atom (MP's PBE Cu: about -4.1);
    # the displaced atom is pushed back (-0.649 eV/Å along x), the perfect cell feels no force.
    assert predicted[0].info["MACE_energy"] == pytest.approx(-16.38255, abs=2e-3)
    assert np.abs(predicted[0].arrays["MACE_forces"]).max() < 1e-5
    assert predicted[1].info["MACE_energy"] == pytest.approx(-16.35031, abs=2e-3)
    assert predicted[1].arrays["MACE_forces"][0, 0] == pytest.approx(-0.6491, abs=2e-3)
    # the main environment cannot hold SevenNet's e3nn: that is why it runs apart
    import e3nn

    assert e3nn.__version__.startswith("0.4.")
