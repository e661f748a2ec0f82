"""One model's screen: single points at the DFT geometries and its own relaxations."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from workflow_scripts.screening import model_screen

OPTIMIZER = {"name": "BFGS", "fmax": 0.01, "max_steps": 300}


def _pair(screen_id, initial, final, relax_cell=False):
    for geometry, atoms in (("initial", initial), ("final", final)):
        atoms.info.update(screen_id=screen_id, geometry=geometry, relax_cell=relax_cell)
    return [initial, final]


def test_single_points_relaxations_and_cell_relaxation_of_references():
    host = bulk("Cu", "fcc", a=3.61, cubic=True)
    displaced = host.copy()
    displaced.positions[1] += [0.08, -0.05, 0.0]
    squeezed = bulk("Ni", "fcc", a=3.40)  # EMT's Ni is near a = 3.52 Å
    frames = _pair("defect:Cu/x", displaced, host.copy())
    frames += _pair("reference:Ni", squeezed, bulk("Ni", "fcc", a=3.52), relax_cell=True)
    rows = {r["screen_id"]: r for r in model_screen.screen(frames, EMT(), OPTIMIZER)}
    reference = host.copy()
    reference.calc = EMT()
    cu = rows["defect:Cu/x"]
    assert cu["energy_at_dft_ev"] == pytest.approx(reference.get_potential_energy(), abs=1e-10)
    # the displaced atom relaxes back: the energy of the perfect cell, forces below fmax
    assert cu["energy_relaxed_ev"] == pytest.approx(reference.get_potential_energy(), abs=1e-3)
    assert cu["relax_converged"] and cu["final_fmax_ev_per_a"] < OPTIMIZER["fmax"]
    ni = rows["reference:Ni"]
    assert ni["relax_converged"] and ni["relax_steps"] > 1
    # the cell relaxes too: below the squeezed cell's energy and at EMT's equilibrium volume
    squeezed.calc = EMT()
    assert ni["energy_relaxed_ev"] < squeezed.get_potential_energy() - 0.02
    relaxed, _ = model_screen.relax_atoms(squeezed, EMT(), True, OPTIMIZER)
    assert np.abs(relaxed.get_stress()).max() < 5e-3
    assert relaxed.cell.volume > squeezed.cell.volume * 1.05
