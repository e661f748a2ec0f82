"""MLIP-first DFT: the pre-relaxation keeps everything but the positions; config checks."""

import numpy as np
import pytest

from workflow_scripts.baselines import registry
from workflow_scripts.config import REPO_ROOT, ConfigError, validate_config
from workflow_scripts.screening import prerelax

OPTIMIZER = {"name": "BFGS", "fmax": 0.01, "max_steps": 200}


def test_prerelaxation_moves_positions_only_and_records_the_model():
    from ase.calculators.emt import EMT
    from pymatgen.core import Lattice, Structure

    structure = Structure(
        Lattice.cubic(3.61),
        ["Cu", "Cu", "Cu", "Ni"],
        [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0.03, 0.52, 0.47]],
        site_properties={"magmom": [0.0, 0.0, 0.0, 0.6], "role": ["A", "A", "A", "A_sub"]},
        properties={"host": "Cu", "defect": "sub_Ni_on_A"},
    )
    out = prerelax.prerelax_structure(structure.as_dict(), EMT(), OPTIMIZER, "emt")
    moved = Structure.from_dict(out)
    assert moved.lattice == structure.lattice
    assert [s.specie.symbol for s in moved] == ["Cu", "Cu", "Cu", "Ni"]
    assert moved.site_properties["magmom"] == [0.0, 0.0, 0.0, 0.6]
    assert moved.site_properties["role"] == ["A", "A", "A", "A_sub"]
    assert moved.properties["defect"] == "sub_Ni_on_A"
    record = moved.properties["prerelaxed"]
    assert record["model"] == "emt" and record["converged"] and record["steps"] > 0
    # EMT pushes the displaced Ni back to its fcc site: forces below fmax afterwards
    atoms = moved.to_ase_atoms()
    atoms.calc = EMT()
    assert np.abs(atoms.get_forces()).max() < OPTIMIZER["fmax"]
    assert np.linalg.norm(moved[3].coords - structure[3].coords) > 0.05


def test_prerelax_model_must_not_be_trained_on_this_runs_dft(demo_config):
    config = demo_config
    config["dft"]["prerelax"] = "ft-dopants-standard"
    with pytest.raises(ConfigError, match="'dft.prerelax': 'ft-dopants-standard' must be a"):
        validate_config(config, REPO_ROOT)
    config["dft"]["prerelax"] = "chgnet"
    assert validate_config(config, REPO_ROOT)["dft"]["prerelax"] == "chgnet"
    assert "chgnet" in registry.REGISTERED
