"""Per-structure mean MACE descriptors from a tiny randomly initialised MACE (no downloads)."""

import ase.io
import mace  # noqa: F401  (sets torch's unpickling mode before e3nn loads its constants)
import numpy as np
import pytest
import torch
from ase import Atoms
from e3nn import o3

from workflow_scripts.reference import descriptors

ELEMENTS = [8, 22, 38]  # O, Ti, Sr


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from mace import modules

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    model = modules.ScaleShiftMACE(
        r_max=4.0,
        num_bessel=4,
        num_polynomial_cutoff=3,
        max_ell=1,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2,
        num_elements=len(ELEMENTS),
        hidden_irreps=o3.Irreps("8x0e+8x1o"),
        MLP_irreps=o3.Irreps("8x0e"),
        atomic_energies=np.zeros(len(ELEMENTS)),
        avg_num_neighbors=8.0,
        atomic_numbers=ELEMENTS,
        correlation=2,
        gate=torch.nn.functional.silu,
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )
    torch.set_default_dtype(previous)
    path = tmp_path_factory.mktemp("model") / "tiny.model"
    torch.save(model, path)
    return path


@pytest.fixture(scope="module")
def frames_file(tmp_path_factory):
    frames = []
    for i in range(7):
        atoms = Atoms(
            "SrTiO3",
            scaled_positions=[
                [0, 0, 0],
                [0.5, 0.5, 0.5],
                [0.5, 0.5, 0],
                [0.5, 0, 0.5],
                [0, 0.5, 0.5],
            ],
            cell=np.eye(3) * 3.9,
            pbc=True,
        ).repeat((1 + i % 3, 1, 1))
        atoms.rattle(0.05, seed=i)
        atoms.info["REF_energy"] = -40.0
        frames.append(atoms)
    path = tmp_path_factory.mktemp("frames") / "frames.extxyz"
    ase.io.write(path, frames, format="extxyz")
    return path


def test_matches_mace_per_structure_descriptors(tiny_model, frames_file):
    from mace.calculators import MACECalculator

    got = descriptors.mean_descriptors(tiny_model, frames_file, batch_size=3, device="cpu")
    assert got.dtype == np.float32 and got.shape == (7, 16)  # 8 invariants x 2 layers
    calculator = MACECalculator(model_paths=str(tiny_model), device="cpu", default_dtype="float64")
    frames = ase.io.read(frames_file, index=":")
    expected = np.stack(
        [calculator.get_descriptors(a, invariants_only=True).mean(axis=0) for a in frames]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(got).max() > 1e-3 and not np.allclose(got[0], got[1])


def test_batch_size_does_not_change_the_result_and_cli(tiny_model, frames_file, tmp_path):
    one = descriptors.mean_descriptors(tiny_model, frames_file, batch_size=1, device="cpu")
    out = tmp_path / "descriptors" / "tiny" / "frames.npy"
    argv = ["--model", str(tiny_model), "--data", str(frames_file), "--out", str(out)]
    assert descriptors.main([*argv, "--batch-size", "4", "--device", "cpu", "--threads", "1"]) == 0
    np.testing.assert_allclose(np.load(out), one, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="head 'nope'"):
        descriptors.mean_descriptors(tiny_model, frames_file, device="cpu", head="nope")
