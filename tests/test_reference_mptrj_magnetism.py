"""MPtrj magnetism reaches CP2K: ``magmom`` -> ``REF_magmom`` in the extxyz -> the subset the
single points read -> UKS, the implied multiplicity and one kind per element and moment with
MAGNETIZATION; what CP2K's atomic guess cannot place is clamped or left out."""

import json
import shutil
import subprocess

import ase.io
import numpy as np
import pytest
from ase import Atoms

from workflow_scripts.cp2k.input_check import _syntax_check
from workflow_scripts.cp2k.input_file import render_input
from workflow_scripts.cp2k.inputs import (
    dft_settings,
    load_structure,
    omp_environment,
    prepare,
)
from workflow_scripts.cp2k.magnetism import (
    MOMENT_THRESHOLD,
    effective_moments,
    kind_name,
    magnetization_limit,
    unpaired_electrons,
)
from workflow_scripts.reference import mptrj, mptrj_frames, mptrj_subset

HAS_CP2K = shutil.which("cp2k.psmp") is not None
# cheap settings: SZV (Ni q18, O q6, Sr q10, Ti q12), Γ-point, small grid
CHEAP = dft_settings(
    {
        "basis_preference": ["SZV"],
        "cutoff": 100,
        "rel_cutoff": 20,
        "ngrids": 2,
        "print_stress": False,
        "single_point": {"kpoint_spacing": None},
    }
)
A = 4.17  # NiO rock salt; two formula units, layers of Ni along c
NIO_CELL = [[A / 2**0.5, 0, 0], [0, A / 2**0.5, 0], [0, 0, A]]
NIO = (["Ni", "O", "Ni", "O"], [[0, 0, 0], [0.5, 0.5, 0.25], [0.5, 0.5, 0.5], [0, 0, 0.75]])
SRTIO3 = (
    ["Sr", "Ti", "O", "O", "O"],
    [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
)
FM = [1.712, 0.031, 1.688, 0.029]  # total 3.46 -> 4 unpaired electrons (48, even)
AFM = [1.701, 0.002, -1.699, -0.004]  # total 0 -> multiplicity 1, still UKS


def mptrj_frame(mp_id, elements, fracs, lattice, magmom="absent"):
    """One frame in MPtrj's layout (pymatgen structure dict, then the labels)."""
    lattice = np.asarray(lattice, dtype=float)
    usable = isinstance(magmom, list) and len(magmom) == len(elements)
    site_moments = magmom if usable else [0.0] * len(elements)
    sites = [
        {
            "species": [{"element": el, "occu": 1}],
            "abc": list(f),
            "xyz": (np.asarray(f) @ lattice).tolist(),
            "label": el,
            "properties": {"magmom": site_moments[i]},
        }
        for i, (el, f) in enumerate(zip(elements, fracs, strict=True))
    ]
    n = len(elements)
    frame = {
        "structure": {
            "@module": "pymatgen.core.structure",
            "@class": "Structure",
            "charge": 0,
            "lattice": {"matrix": lattice.tolist(), "pbc": [True, True, True]},
            "properties": {},
            "sites": sites,
        },
        "uncorrected_total_energy": -5.0 * n,
        "corrected_total_energy": -5.0 * n,
        "energy_per_atom": -5.0,
        "ef_per_atom": -1.0,
        "e_per_atom_relaxed": -5.0,
        "ef_per_atom_relaxed": -1.0,
        "force": [[0.01 * i, 0.0, -0.01 * i] for i in range(n)],
        "stress": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        "magmom": magmom,
        "bandgap": 0.5,
        "mp_id": mp_id,
    }
    if magmom == "absent":
        del frame["magmom"]
    return frame


def document():
    return {
        "mp-19009": {
            "mp-19009-fm": mptrj_frame("mp-19009", *NIO, NIO_CELL, FM),
            "mp-19009-afm": mptrj_frame("mp-19009", *NIO, NIO_CELL, AFM),
            "mp-19009-null": mptrj_frame("mp-19009", *NIO, NIO_CELL, None),
        },
        "mp-5229": {
            "mp-5229-0": mptrj_frame("mp-5229", *SRTIO3, np.eye(3) * 3.905, [0.0, 0.01, 0, 0, 0]),
            "mp-5229-1": mptrj_frame("mp-5229", *SRTIO3, np.eye(3) * 3.905),  # no magmom key
        },
    }


@pytest.fixture
def subset(tmp_path):
    """MPtrj JSON -> extxyz (the streaming path) -> the CP2K subset structures file."""
    source = tmp_path / "mptrj.json"
    source.write_text(json.dumps(document()))
    pool = tmp_path / "pool.extxyz"
    stats, _, _ = mptrj.convert_all(source, pool, "MPtrj", progress=False)
    assert stats.frames_kept == 5 and not stats.skipped
    out = tmp_path / "cp2k_subset_structures.extxyz"
    chosen = mptrj_subset.select_cp2k_subset(pool, out, size=5, seed=0)
    assert chosen == [0, 1, 2, 3, 4]
    return out


def test_magmom_reaches_the_subset_extxyz(subset):
    frames = {f.info["frame_id"]: f for f in ase.io.read(subset, index=":")}
    np.testing.assert_array_equal(frames["mp-19009-fm"].arrays["REF_magmom"], FM)
    np.testing.assert_array_equal(frames["mp-19009-afm"].arrays["REF_magmom"], AFM)
    np.testing.assert_array_equal(frames["mp-5229-0"].arrays["REF_magmom"], [0, 0.01, 0, 0, 0])
    for name in ("mp-19009-null", "mp-5229-1"):  # null or absent: no column, as before
        assert "REF_magmom" not in frames[name].arrays
        header = next(x for x in subset.read_text().splitlines() if f"frame_id={name} " in x)
        assert "Properties=species:S:1:pos:R:3:REF_forces:R:3 " in header
    # the labels are unchanged by the extra column
    np.testing.assert_allclose(frames["mp-19009-fm"].arrays["REF_forces"][3], [0.03, 0, -0.03])


def test_fast_path_and_full_parse_agree_on_moments(tmp_path):
    for frame_id, frame in document()["mp-19009"].items():
        text = json.dumps(frame).encode()
        fast = mptrj_frames.frame_fast(text, 0, len(text), "mp-19009", frame_id, "MPtrj")
        parsed, _ = mptrj_frames.frame_parsed(frame, "mp-19009", frame_id, "MPtrj")
        (tmp_path / "a.extxyz").write_bytes(fast[0])
        (tmp_path / "b.extxyz").write_bytes(parsed)
        a, b = ase.io.read(tmp_path / "a.extxyz"), ase.io.read(tmp_path / "b.extxyz")
        assert set(a.arrays) == set(b.arrays)
        if "REF_magmom" in a.arrays:
            np.testing.assert_array_equal(a.arrays["REF_magmom"], b.arrays["REF_magmom"])
    # unusable moments (wrong count, NaN, null entries): the frame is kept, without moments
    for bad in ([1.0, 2.0], [1.0, float("nan"), 0.0, 0.0], [1.0, None, 0.0, 0.0], []):
        frame = mptrj_frame("mp-1", *NIO, NIO_CELL, bad)
        text = json.dumps(frame).encode()
        converted, _ = mptrj_frames.convert_frame(text, 0, len(text), "mp-1", "x", "MPtrj")
        (tmp_path / "c.extxyz").write_bytes(converted)
        assert "REF_magmom" not in ase.io.read(tmp_path / "c.extxyz").arrays


def single_point(subset, index, settings=CHEAP):
    atoms, _ = load_structure(subset, index)
    calc = prepare("single_point", atoms, settings)
    return calc, render_input(calc, settings)


def kind_block(text, name):
    lines = text.splitlines()
    start = lines.index(f"    &KIND {name}")
    end = lines.index("    &END KIND", start)
    return [line.strip() for line in lines[start : end + 1]]


def test_ferromagnetic_frame_is_uks_with_the_implied_multiplicity(subset):
    calc, text = single_point(subset, 0)
    assert calc.spin.polarized and calc.spin.n_electrons == 48
    assert calc.spin.multiplicity == 5  # |1.712 + 1.688| = 3.4 -> 4 unpaired (even count)
    assert "UKS" in text and "MULTIPLICITY 5" in text
    assert calc.atom_kinds == ("Ni_up2", "O", "Ni_up2", "O")  # O's 0.03 μB: below threshold
    ni = kind_block(text, "Ni_up2")
    assert "ELEMENT Ni" in ni and "MAGNETIZATION 2.0" in ni
    assert "MAGNETIZATION" not in " ".join(kind_block(text, "O"))
    assert "Ni_up2 0.0000000000 0.0000000000 0.0000000000" in text  # the COORD kind


def test_antiferromagnetic_frame_is_uks_with_opposite_kinds(subset):
    calc, text = single_point(subset, 1)
    assert calc.spin.polarized and calc.spin.multiplicity == 1
    assert "UKS" in text and "MULTIPLICITY 1" in text
    assert calc.atom_kinds == ("Ni_up2", "O", "Ni_dn2", "O")
    assert "MAGNETIZATION 2.0" in kind_block(text, "Ni_up2")
    assert "MAGNETIZATION -2.0" in kind_block(text, "Ni_dn2")
    for name in ("Ni_up2", "Ni_dn2"):  # the same basis and potential as plain Ni
        block = kind_block(text, name)
        assert "BASIS_SET SZV-MOLOPT-SR-GTH" in block and "POTENTIAL GTH-PBE-q18" in block


def test_frames_without_moments_stay_closed_shell(subset):
    for index in (2, 3, 4):  # magmom null; all below threshold; no magmom key
        calc, text = single_point(subset, index)
        assert not calc.spin.polarized and calc.atom_kinds == ()
        assert "UKS" not in text and "MAGNETIZATION" not in text and "ELEMENT" not in text
    _, text = single_point(subset, 2)
    assert "&KIND Ni" in text and "&KIND O" in text


def test_multiplicity_threshold_and_rounding_rules():
    # nearest count of unpaired electrons with the electron count's parity; ties go up
    assert unpaired_electrons(0.0, 48) == 0 and unpaired_electrons(0.0, 47) == 1
    assert unpaired_electrons(3.4, 48) == 4 and unpaired_electrons(2.6, 48) == 2
    assert unpaired_electrons(1.6, 47) == 1 and unpaired_electrons(2.4, 47) == 3
    assert unpaired_electrons(2.0, 47) == 3 and unpaired_electrons(-4.0, 44) == 4
    assert MOMENT_THRESHOLD == 0.5
    np.testing.assert_array_equal(effective_moments([0.49, -0.49, 0.5, -3.2]), [0, 0, 0.5, -3.2])
    assert kind_name("Fe", 0) == "Fe" and kind_name("Fe", -4) == "Fe_dn4"
    # a cell whose moments are all below the threshold: RKS (even count), none of them kinds
    fe = Atoms("SrFeO3", scaled_positions=SRTIO3[1], cell=np.eye(3) * 3.85, pbc=True)
    fe.set_initial_magnetic_moments([0, 0.45, 0.3, 0.3, 0.3])
    calc = prepare("relax", fe, CHEAP)
    assert not calc.spin.polarized and calc.atom_kinds == ()


def test_what_cp2k_cannot_place_is_clamped_or_left_out():
    # CP2K 2023.1: |m| < 2 max(min(electrons, holes)) over the partly filled valence shells
    assert magnetization_limit(78, (3, 6, 9, 0)) == 2  # Pt q18: 6s1, 5d9
    assert magnetization_limit(28, (4, 6, 8, 0)) == 4  # Ni q18: 3d8
    assert magnetization_limit(26, (4, 6, 6, 0)) == 8  # Fe q16: 3d6
    assert magnetization_limit(38, (4, 6, 0, 0)) == 0  # Sr q10: closed shells
    assert magnetization_limit(26, None) is None
    # Pt on Ti with 4 μB (the relaxations' d6 guess): MAGNETIZATION 1, multiplicity from 4
    pt = Atoms("SrPtO3", scaled_positions=SRTIO3[1], cell=np.eye(3) * 3.95, pbc=True)
    pt.set_initial_magnetic_moments([0, 4, 0, 0, 0])
    calc = prepare("relax", pt, CHEAP)
    text = render_input(calc, CHEAP)
    assert calc.spin.multiplicity == 5 and "MAGNETIZATION 1.0" in kind_block(text, "Pt_up4")
    assert "instead of +4" in text
    # a moment on Sr: no MAGNETIZATION (CP2K would abort), said in the input; still UKS
    sr = Atoms("SrTiO3", scaled_positions=SRTIO3[1], cell=np.eye(3) * 3.905, pbc=True)
    sr.set_initial_magnetic_moments([2, 0, 0, 0, 0])
    calc = prepare("single_point", sr, CHEAP)
    text = render_input(calc, CHEAP)
    assert calc.spin.polarized and calc.spin.multiplicity == 3
    assert "MAGNETIZATION" not in " ".join(kind_block(text, "Sr_up2")[1:])
    assert "no MAGNETIZATION (+2 wanted)" in text


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CP2K, reason="cp2k.psmp not installed")
def test_cp2k_starts_the_antiferromagnet_with_the_intended_kinds(subset, tmp_path):
    """The AFM frame's input passes ``cp2k --check`` and CP2K (one SCF step, seconds) sets up
    UKS, multiplicity 1, the two Ni kinds and their atomic guesses; the clamped Pt kind too."""
    settings = dft_settings({**CHEAP, "scf": {"max_scf": 1}})
    _, text = single_point(subset, 1, settings)
    pt = Atoms("SrPtO3", scaled_positions=SRTIO3[1], cell=np.eye(3) * 3.95, pbc=True)
    pt.set_initial_magnetic_moments([0, 4, 0, 0, 0])
    pt_text = render_input(prepare("single_point", pt, settings), settings)
    for name, content in (("afm", text), ("pt", pt_text)):
        path = tmp_path / f"{name}.inp"
        path.write_text(content.replace("PRINT_LEVEL LOW", "PRINT_LEVEL MEDIUM"))
        assert _syntax_check("cp2k.psmp", path) is None
        result = subprocess.run(
            ["cp2k.psmp", "-i", path.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=omp_environment(1),
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-2000:]
        assert "cannot be imposed" not in output
        assert "Spin unrestricted (spin-polarized) Kohn-Sham calculation" in output
        multiplicity = next(line for line in output.splitlines() if "DFT| Multiplicity" in line)
        if name == "afm":
            assert multiplicity.split()[-1] == "1"
            assert "Atomic kind: Ni_up2" in output and "Atomic kind: Ni_dn2" in output
        else:
            assert multiplicity.split()[-1] == "5" and "Atomic kind: Pt_up4" in output
