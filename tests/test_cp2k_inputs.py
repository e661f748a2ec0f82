"""CP2K inputs: basis/potential choice, spin, SCF strategy, and the study inputs through CP2K."""

import shutil

import numpy as np
import pytest
from ase import Atoms
from ase.build import make_supercell

from workflow_scripts.config import REPO_ROOT, load_config
from workflow_scripts.cp2k import units
from workflow_scripts.cp2k.atoms import ground_state_multiplicity
from workflow_scripts.cp2k.basis import BasisError, choose_basis
from workflow_scripts.cp2k.input_check import check_elements
from workflow_scripts.cp2k.input_file import render_input
from workflow_scripts.cp2k.inputs import (
    InputError,
    dft_settings,
    kpoint_mesh,
    prepare,
    prepare_isolated_atom,
    settings_hash,
)
from workflow_scripts.cp2k.scf import MAX_LEVEL, ScfLadderExhausted, base_strategy, strategy

HAS_CP2K = shutil.which("cp2k.psmp") is not None
STUDY = dft_settings()


def perovskite(a=3.905, symbols=("Sr", "Ti", "O", "O", "O"), repeat=(1, 1, 1)):
    cell = Atoms(
        symbols,
        scaled_positions=[[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=[a] * 3,
        pbc=True,
    )
    return make_supercell(cell, np.diag(repeat))


def block(text, name):
    """Lines of the first ``&name`` section of an input."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"&{name}"))
    end_tag = f"&END {name.split()[0]}"
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == end_tag)
    return [line.strip() for line in lines[start : end + 1]]


def test_units_are_ase_codata_2014():
    assert units.CODATA_VERSION == "2014"
    assert abs(units.HARTREE_TO_EV - 27.211386024367243) < 1e-12
    assert abs(units.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM - 51.42206709048) < 1e-9


def test_tzvp_with_matching_valence_and_stated_fallbacks():
    ti = choose_basis("Ti", ["TZVP", "DZVP", "SZV"])
    assert (ti.basis, ti.basis_file) == ("TZVP-MOLOPT-PBE-GTH-q12", "BASIS_MOLOPT_UZH")
    assert (ti.potential, ti.potential_file, ti.valence) == ("GTH-PBE-q12", "POTENTIAL_UZH", 12)
    assert ti.n_functions == 35  # CP2K prints 35 spherical functions for this basis
    pb = choose_basis("Pb", ["TZVP"])
    assert pb.potential == "GTH-PBE-q4" and pb.valence == 4
    nd = choose_basis("Nd", ["TZVP"])  # no UZH basis: the UCL lanthanide file
    assert (nd.basis_file, nd.potential, nd.valence) == ("BASIS_MOLOPT_UCL", "GTH-PBE-q14", 14)
    au = choose_basis("Au", ["TZVP"])
    assert au.valence == 11 and "also available: q19" in au.note
    sr = choose_basis("Sr", ["SZV", "DZVP"])
    assert (sr.basis, sr.basis_file) == ("SZV-MOLOPT-SR-GTH", "BASIS_MOLOPT")
    assert choose_basis("Sr", ["DZVP"]).basis == "DZVP-MOLOPT-PBE-GTH-q10"
    nd_szv = choose_basis("Nd", ["TZVP", "SZV"])
    assert nd_szv.basis.startswith("TZVP")
    with pytest.raises(BasisError, match="Es: no basis of tiers"):
        choose_basis("Es", ["TZVP", "DZVP", "SZV"])


def test_fallback_note_when_the_first_tier_is_missing():
    la = choose_basis("La", ["SZV", "DZVP"])  # no SZV for La anywhere
    assert la.basis == "DZVP-MOLOPT-SR-GTH" and la.note.startswith("FALLBACK: no SZV-MOLOPT")


def test_overrides_are_checked_for_valence():
    ok = choose_basis("Ti", ["TZVP"], override={"basis": "DZVP-MOLOPT-SR-GTH"})
    assert (ok.basis_file, ok.potential, ok.potential_file) == (
        "BASIS_MOLOPT",
        "GTH-PBE-q12",
        "GTH_POTENTIALS",
    )
    with pytest.raises(BasisError, match="has q12 but potential GTH-PBE-q4"):
        choose_basis(
            "Ti", ["TZVP"], override={"basis": "TZVP-MOLOPT-PBE-GTH-q12", "potential": "GTH-PBE-q4"}
        )
    with pytest.raises(BasisError, match="not found"):
        choose_basis("Ti", ["TZVP"], override={"basis": "NO-SUCH-BASIS"})


def test_spin_from_electron_count_and_initial_moments():
    pristine = prepare("relax", perovskite(repeat=(2, 2, 2)), STUDY)
    assert not pristine.spin.polarized and pristine.spin.n_electrons == 8 * (10 + 12 + 18)
    k_on_sr = perovskite(symbols=("K", "Ti", "O", "O", "O"))  # 39 electrons
    odd = prepare("relax", k_on_sr, STUDY)
    assert odd.spin.polarized and odd.spin.multiplicity == 2
    fe = perovskite(symbols=("Sr", "Fe", "O", "O", "O"))
    fe.set_initial_magnetic_moments([0, 4, 0, 0, 0])
    magnetic = prepare("relax", fe, STUDY)
    assert magnetic.spin.polarized and magnetic.spin.multiplicity == 5
    text = render_input(magnetic, STUDY)
    assert "UKS" in block(text, "DFT") and "MULTIPLICITY 5" in block(text, "DFT")
    quenched = prepare("relax", fe, dft_settings({"elements": {"Fe": {"magmom": 0}}}))
    assert not quenched.spin.polarized
    with pytest.raises(InputError, match="'never'"):
        prepare("relax", k_on_sr, dft_settings({"spin_polarized": "never"}))


def test_study_relaxation_input():
    calc = prepare("relax", perovskite(repeat=(2, 2, 2)), STUDY)
    text = render_input(calc, STUDY)
    assert block(text, "MGRID")[1:4] == ["NGRIDS 5", "CUTOFF 500.0", "REL_CUTOFF 80.0"]
    geo = block(text, "GEO_OPT")
    assert "OPTIMIZER BFGS" in geo
    assert "MAX_FORCE 0.0003889381" in geo  # 0.02 eV/Å / 51.42206709 (eV/Å)/(Ha/bohr)
    assert "RMS_FORCE 0.0003889381" in geo
    scf = block(text, "SCF")
    assert "&OT ON" in scf and "&OUTER_SCF ON" in scf and "&KPOINTS" not in text
    assert "XC_FUNCTIONAL PBE" in " ".join(block(text, "XC"))
    for name in ("TRAJECTORY", "FORCES", "CELL", "STRESS"):
        assert block(text, "PRINT")  # MOTION/PRINT has each of them every step
        assert f"&{name}" in text
    assert "STRESS_TENSOR ANALYTICAL" in text and "NDIGITS 12" in text
    kind = block(text, "KIND Ti")
    assert "BASIS_SET TZVP-MOLOPT-PBE-GTH-q12" in kind
    assert "POTENTIAL_FILE_NAME POTENTIAL_UZH" in kind


def test_kpoints_use_diagonalisation_not_ot():
    settings = dft_settings({"kpoints": [1, 2, 2], "basis_preference": ["SZV"]})
    text = render_input(prepare("relax", perovskite(repeat=(2, 1, 1)), settings), settings)
    scf = block(text, "SCF")
    assert "&OT ON" not in scf and "&DIAGONALIZATION ON" in scf
    assert "METHOD BROYDEN_MIXING" in scf and "SMEAR ON" in " ".join(scf)
    assert "SCHEME MONKHORST-PACK 1 2 2" in block(text, "KPOINTS")
    fe = perovskite(symbols=("Sr", "Fe", "O", "O", "O"), repeat=(2, 1, 1))
    fe.set_initial_magnetic_moments([0, 4, 0, 0, 0] * 2)
    magnetic = render_input(prepare("relax", fe, settings), settings)
    assert "MULTIPLICITY 9" in magnetic and "FIXED_MAGNETIC_MOMENT" not in magnetic  # aborts
    with pytest.raises(ValueError, match="not allowed with k-points"):
        base_strategy({**settings["scf"], "method": "ot"}, uses_kpoints=True)


def test_kpoint_mesh_from_spacing():
    assert kpoint_mesh(np.eye(3) * 4.0, 0.25) == (7, 7, 7)  # 2π/4/0.25 = 6.3
    assert kpoint_mesh(np.diag([20.0, 4.0, 4.0]), 0.5) == (1, 4, 4)
    assert kpoint_mesh(np.eye(3) * 20.0, 0.5) is None
    assert kpoint_mesh(np.eye(3) * 4.0, None) is None


def test_scf_ladder_climbs_then_gives_up():
    ot = base_strategy(STUDY["scf"], uses_kpoints=False)
    rungs = [strategy(ot, level) for level in range(MAX_LEVEL + 1)]
    assert [r.method for r in rungs] == ["ot", "ot", "diagonalization", "diagonalization"]
    assert rungs[1].minimizer == "CG" and rungs[1].max_scf == 150
    assert rungs[2].smearing_temperature == 300 and rungs[3].mixing_alpha == 0.05
    with pytest.raises(ScfLadderExhausted):
        strategy(ot, MAX_LEVEL + 1)


def test_isolated_atoms_smear_only_with_an_empty_orbital():
    demo = dft_settings({"basis_preference": ["SZV"], "isolated_atoms": {"box": 8.0}})
    ti = prepare_isolated_atom("Ti", demo)
    assert ti.spin.multiplicity == ground_state_multiplicity("Ti") == 3
    text = render_input(ti, demo)
    assert "FIXED_MAGNETIC_MOMENT 2.0" in block(text, "SMEAR") and "A 8.0000000000" in text
    oxygen = render_input(prepare_isolated_atom("O", demo), demo)  # SZV: 4 functions, 4 alpha
    assert "&OT ON" in block(oxygen, "SCF") and "&SMEAR" not in oxygen
    strontium = prepare_isolated_atom("Sr", demo)
    assert not strontium.spin.polarized
    assert ground_state_multiplicity("Fe", {"elements": {"Fe": {"multiplicity": 3}}}) == 3


def test_settings_hash_is_about_physics_only():
    assert settings_hash(STUDY) == settings_hash(
        dft_settings(
            {"command": "/opt/cp2k", "mpi_launcher": "srun", "custodian": {"max_errors": 9}}
        )
    )
    assert settings_hash(STUDY) != settings_hash(dft_settings({"cutoff": 400}))


def test_config_files_validate_with_the_dft_section():
    study = load_config(REPO_ROOT / "config.yaml")["dft"]
    assert (study["cutoff"], study["rel_cutoff"], study["ngrids"]) == (500, 80, 5)
    assert study["basis_preference"][0] == "TZVP" and study["kpoints"] is None
    assert study["geo_opt"]["max_force"] == 0.02
    demo = load_config(REPO_ROOT / "demo" / "config.yaml")["dft"]
    assert demo["kpoints"] is not None and demo["basis_preference"][0] == "SZV"


def study_elements():
    config = load_config(REPO_ROOT / "config.yaml")
    elements = {
        "Sr",
        "Ti",
        "Ba",
        "K",
        "Nb",
        "Ta",
        "Zr",
        "Cs",
        "Pb",
        "I",
        "Br",
        "Sn",
        "Ca",
        "O",
        "N",
    }
    for substituents in config["defects"]["substituents"].values():
        elements |= set(substituents)
    for substituents in config["defects"]["anion_substituents"].values():
        elements |= set(substituents)
    return sorted(elements)


@pytest.mark.skipif(not HAS_CP2K, reason="cp2k.psmp not installed")
def test_every_study_element_passes_cp2k_check(tmp_path):
    elements = study_elements()
    assert {"Fe", "Pt", "La", "Nd", "N", "I"} <= set(elements) and len(elements) > 30
    results = check_elements(elements, STUDY, tmp_path)
    failures = [f"{r.element}: {r.message}" for r in results if not r.ok]
    assert not failures, "\n".join(failures)
    assert all((tmp_path / f"{element}.inp").is_file() for element in elements)


def test_launcher_and_threads_from_settings():
    from workflow_scripts.cp2k.attempts import cp2k_command, cp2k_environment

    assert cp2k_command(STUDY) == ["cp2k.psmp"]
    srun = dft_settings({"mpi_launcher": "srun", "mpi_ranks": 4})
    assert cp2k_command(srun) == ["srun", "-n", "4", "cp2k.psmp"]
    mpirun = dft_settings({"mpi_launcher": "mpirun", "mpi_ranks": 2, "command": "/opt/cp2k.psmp"})
    assert cp2k_command(mpirun) == ["mpirun", "-n", "2", "/opt/cp2k.psmp"]
    assert cp2k_environment(mpirun, threads=8)["OMP_NUM_THREADS"] == "4"
    assert cp2k_environment(srun, threads=1)["OMP_NUM_THREADS"] == "1"
