"""Elemental reference phases and the plan of their CP2K jobs."""

import numpy as np
import pytest

from workflow_scripts.config import REPO_ROOT
from workflow_scripts.screening import references


def test_molecules_solids_and_magnetism():
    oxygen = references.reference("O", 10.0)
    assert oxygen.kind == "molecule"
    assert oxygen.atoms.get_chemical_symbols() == ["O", "O"]
    assert oxygen.atoms.get_distance(0, 1) == pytest.approx(1.208)
    assert oxygen.atoms.get_initial_magnetic_moments().sum() == pytest.approx(2.0)  # triplet
    assert np.allclose(oxygen.atoms.cell.lengths(), 10.0)
    bromine = references.reference("Br", 10.0)
    assert bromine.kind == "molecule"
    assert bromine.atoms.get_initial_magnetic_moments().sum() == 0.0  # singlet
    strontium = references.reference("Sr", 10.0)
    assert (strontium.kind, len(strontium.atoms)) == ("solid", 1)  # fcc, primitive
    titanium = references.reference("Ti", 10.0)
    assert len(titanium.atoms) == 2  # hcp
    iron = references.reference("Fe", 10.0)
    assert iron.atoms.get_initial_magnetic_moments().tolist() == [2.3]


def test_unknown_or_unbuildable_elements_are_refused_by_name():
    with pytest.raises(references.ReferenceError, match="unknown element 'Xx'"):
        references.reference("Xx", 10.0)
    problems = references.plan_problems(["Sr", "Mn", "Ga"], 10.0)
    assert len(problems) == 2
    assert "element Mn" in problems[0] and "screening.references.structures.Mn" in problems[0]
    assert "element Ga" in problems[1]
    # a structure file replaces the built-in choice (alpha-Mn, shipped for the study)
    fixed = references.plan_problems(
        ["Mn"], 10.0, {"Mn": str(REPO_ROOT / "resources/references/Mn_alpha.cif")}
    )
    assert fixed == []
    mn = references.reference(
        "Mn", 10.0, {"Mn": str(REPO_ROOT / "resources/references/Mn_alpha.cif")}
    )
    assert len(mn.atoms) == 29  # the primitive cell of the 58-atom I-43m cell


def test_kpoint_mesh_for_solids_gamma_for_molecules():
    assert references.kpoints("O", 8.0, 0.5) is None
    # fcc Sr (a = 6.08 Å): |b| = 2 pi sqrt(3) / 6.08 = 1.79 Å^-1 -> 4 points at 0.5 Å^-1
    assert references.kpoints("Sr", 8.0, 0.5) == [4, 4, 4]


def test_positions_fixed_by_symmetry_only_without_free_coordinates():
    for element in ("Sr", "Ti", "Sn", "Cs"):  # fcc, hcp, diamond, bcc
        assert references.positions_fixed_by_symmetry(references.reference(element, 8.0).atoms)
    # rhombohedral Bi (A7: the z of 2c is free) and alpha-Mn (x of 24g, x,z of 8c) relax
    assert not references.positions_fixed_by_symmetry(references.reference("Bi", 8.0).atoms)
    alpha_mn = {"Mn": str(REPO_ROOT / "resources/references/Mn_alpha.cif")}
    mn = references.reference("Mn", 8.0, alpha_mn).atoms
    assert not references.positions_fixed_by_symmetry(mn)
    # a displaced atom in hcp Ti breaks the symmetry that held it
    titanium = references.reference("Ti", 8.0).atoms
    titanium.positions[0, 2] += 0.2
    assert not references.positions_fixed_by_symmetry(titanium)


@pytest.fixture
def screening_demo_config(demo_config) -> dict:
    """The demo config: the screen on, Pb held out on both SrTiO3 sites."""
    config = demo_config
    assert config["screening"]["enabled"]
    assert config["hosts"]["SrTiO3"]["substituents"] == {"A": ["Ba", "Pb"], "B": ["Zr", "Pb"]}
    assert config["dataset"]["split"]["held_out_substituents"] == ["Pb"]
    return config


def test_workflow_plans_one_reference_job_per_element(tmp_path, snakemake, screening_demo_config):
    result = snakemake(
        tmp_path / "work",
        "-n",
        "-p",
        "results/screening/model_comparison.md",
        config=screening_demo_config,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    planned = sorted(
        line.split("results/cp2k/reference/")[1].split("/")[0]
        for line in result.stdout.splitlines()
        if line.strip().startswith("output: results/cp2k/reference/")
    )
    assert planned == ["Ba", "Br", "Cs", "O", "Pb", "Rb", "Sn", "Sr", "Ti", "Zr"]
    # the demo keeps ASE's lattices (screening.references.relax_cell: false): fcc Sr and hcp
    # Ti have no free coordinate, so a single point; the O2 bond relaxes
    assert "single-point --kpoints 4 4 4 --structure results/screening/references/Sr" in (
        result.stdout
    )
    assert "single-point --kpoints 5 5 3 --structure results/screening/references/Ti" in (
        result.stdout
    )
    assert "relax --kpoints 1 1 1 --structure results/screening/references/O.extxyz" in (
        result.stdout
    )
    # every host gets its pristine supercell, relaxed like a defect; every model is screened
    for host in ("SrTiO3", "CsPbBr3"):
        assert f"results/cp2k/relax/{host}/pristine/summary.json" in result.stdout
    for model in ("chgnet", "sevennet-0", "ft-dopants-standard", "MACE-stand-in-foundation"):
        assert f"results/screening/models/{model}.csv" in result.stdout
    assert "--held-out Pb" in result.stdout


def test_workflow_refuses_an_element_without_reference_before_any_job(
    tmp_path, snakemake, screening_demo_config
):
    config = screening_demo_config
    config["hosts"]["SrTiO3"]["substituents"]["B"] = ["Zr", "Ga"]
    result = snakemake(tmp_path / "work", "-n", "-p", config=config)
    assert result.returncode != 0
    assert "no elemental reference: element Ga" in result.stderr
    assert "Job stats" not in result.stdout
