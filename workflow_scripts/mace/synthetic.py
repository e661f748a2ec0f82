"""Small labelled data sets for tests and benchmarks, made offline with ASE's EMT potential.

EMT covers Al, Cu, Ag, Au, Ni, Pd, Pt (and H, C, N, O); it is cheap and gives energies,
forces and stress, which is all a tiny MACE needs to be trained and evaluated end to end.
``label_scale`` multiplies every label: a data set with a different scale plays the part
of a data set computed with another DFT code (the finetuning target).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _label(atoms, label_scale: float, with_stress: bool) -> None:
    from ase.calculators.emt import EMT

    atoms.calc = EMT()
    energy = atoms.get_potential_energy() * label_scale
    forces = atoms.get_forces() * label_scale
    stress = atoms.get_stress() * label_scale if with_stress else None
    atoms.calc = None
    atoms.info["REF_energy"] = float(energy)
    atoms.arrays["REF_forces"] = forces
    if stress is not None:
        atoms.info["REF_stress"] = stress


def emt_bulk_frames(
    count: int,
    elements: Sequence[str] = ("Cu", "Ni", "Al"),
    *,
    repeat: tuple[int, int, int] = (2, 1, 1),
    rattle: float = 0.08,
    label_scale: float = 1.0,
    dataset: str = "synthetic",
    seed: int = 0,
) -> list:
    """Rattled, strained fcc cells with random occupation, labelled by EMT (REF_* keys)."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        lattice = 3.6 * rng.uniform(0.97, 1.03)
        atoms = bulk("Cu", "fcc", a=lattice, cubic=True).repeat(repeat)
        atoms.set_chemical_symbols(list(rng.choice(list(elements), size=len(atoms))))
        atoms.rattle(rattle, seed=int(rng.integers(2**31)))
        _label(atoms, label_scale, with_stress=True)
        atoms.info["config_type"] = dataset
        atoms.info["dataset"] = dataset
        atoms.info["frame_id"] = index
        frames.append(atoms)
    return frames


def emt_isolated_atoms(
    elements: Sequence[str], *, label_scale: float = 1.0, box: float = 12.0
) -> list:
    """One IsolatedAtom frame per element (non-periodic box), as mace expects for E0s."""
    from ase import Atoms

    frames = []
    for element in elements:
        atoms = Atoms(element, positions=[[box / 2] * 3], cell=[box] * 3, pbc=False)
        _label(atoms, label_scale, with_stress=False)
        atoms.info["config_type"] = "IsolatedAtom"
        frames.append(atoms)
    return frames


def random_mace_model(
    atomic_numbers: Sequence[int],
    *,
    num_channels: int = 8,
    max_L: int = 0,
    r_max: float = 4.5,
    num_interactions: int = 2,
    correlation: int = 2,
    seed: int = 0,
):
    """An untrained ScaleShiftMACE (float64) of the given size: MACE-MP medium is 128/1/6.0.

    Enough for evaluation tests and throughput benchmarks, which need a model, not a good one.
    """
    from workflow_scripts.mace.settings import import_mace

    import_mace()
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        interaction = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        hidden = (num_channels * o3.Irreps.spherical_harmonics(max_L)).sort().irreps.simplify()
        model = modules.ScaleShiftMACE(
            r_max=r_max,
            num_bessel=8,
            num_polynomial_cutoff=5,
            max_ell=3,
            interaction_cls=interaction,
            interaction_cls_first=interaction,
            num_interactions=num_interactions,
            num_elements=len(atomic_numbers),
            hidden_irreps=o3.Irreps(hidden),
            MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.linspace(-3.0, -1.0, len(atomic_numbers)),
            avg_num_neighbors=20.0,
            atomic_numbers=list(atomic_numbers),
            correlation=correlation,
            gate=torch.nn.functional.silu,
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
        )
    finally:
        torch.set_default_dtype(previous)
    return model
