"""Element facts the DAG is planned from, checked against CP2K's installed data files."""

from workflow_scripts.cp2k.basis import BasisError, choose_basis, find_data_dir
from workflow_scripts.elements import (
    CP2K_WITHOUT_BASIS,
    GROUND_STATE_MULTIPLICITY,
    MPTRJ_ELEMENTS,
    SYMBOLS,
    cp2k_can_compute,
)

STUDY_TIERS = ["TZVP", "DZVP", "SZV"]


def test_mptrj_has_89_elements_up_to_bismuth_and_six_actinides():
    assert len(MPTRJ_ELEMENTS) == len(set(MPTRJ_ELEMENTS)) == 89
    assert MPTRJ_ELEMENTS[0] == "H" and "Bi" in MPTRJ_ELEMENTS and "Po" not in MPTRJ_ELEMENTS
    assert {"Ac", "Th", "Pa", "U", "Np", "Pu"} <= set(MPTRJ_ELEMENTS)


def test_the_no_basis_table_is_what_cp2ks_data_files_say():
    data_dir = find_data_dir()
    without = set()
    for symbol in SYMBOLS[:94]:
        try:
            choose_basis(symbol, STUDY_TIERS, "PBE", data_dir)
        except BasisError:
            without.add(symbol)
    assert without == set(CP2K_WITHOUT_BASIS)
    assert [s for s in SYMBOLS[:94] if not cp2k_can_compute(s)] == sorted(
        without, key=SYMBOLS.index
    )
    assert not cp2k_can_compute("Am") and not cp2k_can_compute("Xx")


def test_every_mptrj_element_cp2k_can_compute_has_a_ground_state_spin():
    computable = [s for s in MPTRJ_ELEMENTS if cp2k_can_compute(s)]
    assert len(computable) == 84  # 89 less Ac, Th, Pa, Np, Pu
    assert all(s in GROUND_STATE_MULTIPLICITY for s in computable)
    # NIST ground terms: U 5L6, Fe 5D4, Cr 7S3, Gd 9D2
    assert [GROUND_STATE_MULTIPLICITY[s] for s in ("U", "Fe", "Cr", "Gd")] == [5, 5, 7, 9]
