"""CP2K output parsing on synthetic outputs in CP2K 2023.1's format (no CP2K needed)."""

import re
from pathlib import Path

import numpy as np
import pytest

from workflow_scripts.cp2k.geometry_files import read_input_geometry, read_positions
from workflow_scripts.cp2k.parse import Cp2kParseError, read_output

SYMBOLS = ["Cs", "Pb", "Br"]


def evaluation_text(energy, forces, stress=None, scf="converged", outer=False):
    """One force evaluation as CP2K prints it at PRINT_LEVEL LOW."""
    lines = [" SCF WAVEFUNCTION OPTIMIZATION", ""]
    if outer:
        lines.append("  outer SCF iter =    1 RMS gradient =   0.44E-01 energy =  -1.0")
        if scf == "converged":
            lines.append("  outer SCF loop converged in   1 iterations or   26 steps")
        else:
            lines.append("  outer SCF loop FAILED to converge after    3 iterations or   12 steps")
    if scf == "converged":
        lines.append("  *** SCF run converged in    13 steps ***")
    else:
        lines.append(" *** WARNING in qs_scf.F:601 :: SCF run NOT converged ***")
    lines += [
        "",
        f" ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:             {energy:.15f}",
        "",
        " ATOMIC FORCES in [a.u.]",
        "",
        " # Atom   Kind   Element          X                  Y                  Z",
    ]
    for i, (symbol, force) in enumerate(zip(SYMBOLS, forces, strict=True), start=1):
        values = " ".join(f"{f:18.12f}" for f in force)
        lines.append(f"  {i:5d}  {i:5d}      {symbol:2s}  {values}")
    lines.append(" SUM OF ATOMIC FORCES           0.000000000000     0.0    0.0     0.0")
    if stress is not None:
        lines += [
            "",
            " STRESS| Analytical stress tensor [GPa]",
            " STRESS|                        x                   y                   z",
        ]
        for axis, row in zip("xyz", stress, strict=True):
            lines.append(f" STRESS|      {axis}  " + "  ".join(f"{v:18.11E}" for v in row))
        lines.append(" STRESS| 1/3 Trace                                   1.0E+00")
    return lines


def output_text(evaluations, geo_opt=None, ended=True, reevaluation=None):
    lines = [" CP2K| version string:                                          CP2K version 2023.1"]
    for evaluation in evaluations:
        lines += evaluation
        lines += [" --------  Informations at step =     0 ------------"]
    if geo_opt == "converged":
        lines += [
            " ***                    GEOMETRY OPTIMIZATION COMPLETED                      ***"
        ]
    if geo_opt == "max_iter":
        lines += [" *** MAXIMUM NUMBER OF OPTIMIZATION STEPS REACHED ***"]
    if reevaluation is not None:
        lines += ["                    Reevaluating energy at the minimum", ""]
        lines += ["  *** SCF run converged in     3 steps ***"]
        lines += [f" ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:   {reevaluation:.15f}"]
    if ended:
        lines += [
            "  **** **** ******  **  PROGRAM ENDED AT                 2026-11-23 23:28:39.942"
        ]
    return "\n".join(lines) + "\n"


FORCES = np.array(
    [[0.01, -0.02, 0.03], [0.123456789012, 0.0, -1e-12], [-0.133456789012, 0.02, -0.03]]
)
STRESS = np.array([[1.5, 0.1, 0.0], [0.1, -2.25, 0.3], [0.0, 0.3, 0.5]])


def write(tmp_path, text, name="cp2k.out"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_evaluation_with_exact_printed_values(tmp_path):
    text = output_text(
        [
            evaluation_text(-64.131456231812345, FORCES, STRESS),
            evaluation_text(-64.131483141412345, FORCES * 0.5, STRESS * 2, scf="failed"),
            evaluation_text(-64.131522761812345, FORCES * 0.1, STRESS, outer=True),
        ],
        geo_opt="converged",
        reevaluation=-64.1315222245,
    )
    out = read_output(write(tmp_path, text), 3, expect_stress=True)
    assert out.version == "CP2K version 2023.1"
    assert [e.index for e in out.evaluations] == [0, 1, 2]
    assert out.evaluations[0].energy == -64.131456231812345
    assert np.array_equal(out.evaluations[1].forces, np.round(FORCES * 0.5, 12))
    assert np.allclose(out.evaluations[1].stress, STRESS * 2, rtol=0, atol=1e-11)
    assert [e.scf_converged for e in out.evaluations] == [True, False, True]
    assert out.n_unconverged == 1
    assert out.geo_opt == "converged" and out.ended
    # The energy-only re-evaluation after convergence is no force evaluation.
    assert out.minimum_energy == -64.1315222245 and len(out.evaluations) == 3


def test_outer_scf_failure_is_not_converged(tmp_path):
    text = output_text([evaluation_text(-1.0, FORCES, None, scf="failed", outer=True)])
    out = read_output(write(tmp_path, text), 3, expect_stress=False)
    assert [e.scf_converged for e in out.evaluations] == [False]


def test_truncated_inside_forces_names_file_and_evaluation(tmp_path):
    full = output_text(
        [evaluation_text(-1.0, FORCES, STRESS), evaluation_text(-2.0, FORCES, STRESS)]
    )
    lines = full.splitlines()
    cut = [i for i, line in enumerate(lines) if "ATOMIC FORCES in" in line][1] + 4
    path = write(tmp_path, "\n".join(lines[:cut]) + "\n")
    with pytest.raises(Cp2kParseError) as error:
        read_output(path, 3, expect_stress=True)
    assert str(path) in str(error.value)
    assert "truncated output: force evaluation 1: ATOMIC FORCES block ends after 1 of 3 atoms" in (
        str(error.value)
    )
    # A killed run: the complete evaluation is kept, the unfinished one reported.
    out = read_output(path, 3, expect_stress=True, allow_incomplete=True)
    assert len(out.evaluations) == 1
    assert "ends after 1 of 3 atoms" in out.incomplete_tail


def test_missing_stress_and_missing_end_are_errors(tmp_path):
    no_stress = output_text([evaluation_text(-1.0, FORCES, None), evaluation_text(-2.0, FORCES)])
    with pytest.raises(Cp2kParseError, match="STRESS"):
        read_output(write(tmp_path, no_stress), 3, expect_stress=True)
    no_end = output_text([evaluation_text(-1.0, FORCES, STRESS)], ended=False)
    with pytest.raises(Cp2kParseError, match="PROGRAM ENDED.*after 1 complete"):
        read_output(write(tmp_path, no_end), 3, expect_stress=True)


def test_corrupt_numbers_and_atom_counts(tmp_path):
    text = output_text([evaluation_text(-1.0, FORCES, STRESS)])
    corrupt = text.replace("0.123456789012", "**************", 1)
    with pytest.raises(Cp2kParseError, match=r"unreadable number '\*+'"):
        read_output(write(tmp_path, corrupt), 3, expect_stress=True)
    with pytest.raises(Cp2kParseError, match="3 force lines, expected 4"):
        read_output(write(tmp_path, text), 4, expect_stress=True)
    with pytest.raises(Cp2kParseError, match="output file missing"):
        read_output(tmp_path / "nothing.out", 3, expect_stress=True)


def test_abort_message_is_reported(tmp_path):
    text = "\n".join(
        [
            " *******************************************************************************",
            " *   ___                                                                       *",
            " *  /   \\                                                                      *",
            " * [ABORT]                                                                     *",
            " *  \\___/        Extra MOs (ADDED_MOS) are required for smearing               *",
            " *    |                                                                        *",
            " *  O/|                                                                        *",
            " * /| |                                                                        *",
            " * / \\                                                    qs_scf_types.F:123 *",
        ]
    )
    out = read_output(write(tmp_path, text), 1, expect_stress=False)
    assert out.aborted == "Extra MOs (ADDED_MOS) are required for smearing"


def test_input_geometry_and_positions(tmp_path):
    inp = write(
        tmp_path,
        "&FORCE_EVAL\n &SUBSYS\n  &CELL\n   A 5.87 0.0 0.0\n   B 0.0 5.87 0.0\n"
        "   C 0.0 0.0 5.87\n   PERIODIC XYZ\n  &END CELL\n  &COORD\n   Cs 0.0 0.0 0.0\n"
        "   Pb 2.935 2.935 2.935\n   Br 2.935 2.935 0.0\n  &END COORD\n &END SUBSYS\n&END\n",
        "cp2k.inp",
    )
    geometry = read_input_geometry(inp)
    assert geometry.symbols == SYMBOLS
    assert np.allclose(geometry.cell, np.eye(3) * 5.87)
    assert np.allclose(geometry.positions[1], [2.935] * 3)
    frame = "3\n i =        {i}, E =      -64.1314562318\n Cs 0 0 0\n Pb 1 1 1\n Br 2 2 2.5\n"
    pos = write(tmp_path, frame.format(i=1) + frame.format(i=2)[:-12], "pos.xyz")
    frames = read_positions(pos, 3, allow_incomplete=True)
    assert [f.step for f in frames] == [1] and frames[0].positions[2, 2] == 2.5
    with pytest.raises(Cp2kParseError, match="incomplete or corrupt xyz frame"):
        read_positions(pos, 3)


# --- Real CP2K outputs of several versions (tests/data/cp2k_outputs/SOURCES.md) -------------

DATA = Path(__file__).parent / "data" / "cp2k_outputs"

# name: (atoms, expect_stress, version string, evaluations, checks read by hand from the file:
# (evaluation, energy [Hartree], {atom index: force row [Hartree/bohr]}, {stress row: GPa}))
REAL = {
    "cp2k-7.1_energy_force_375atoms.out": (
        375, False, "CP2K version 7.1", 1,
        [(0, -8551.039999194017582, {0: [0.02729145, -0.00784250, -0.00456869],
                                     374: [-0.00110730, -0.00242970, -0.01129057]}, {})],
    ),
    "cp2k-2023.1_md_nvt_116atoms.out": (
        116, False, "CP2K version 2023.1", 4,
        [(0, -511.523420184336260, {0: [0.01422664, -0.00222926, -0.00424989],
                                    115: [0.00966599, -0.00413082, -0.02796852]}, {}),
         (3, -511.858156598407334, {0: [0.01331685, -0.00279606, -0.00310734],
                                    115: [-0.02263646, 0.02160079, 0.02576134]}, {})],
    ),
    "cp2k-2023.2_md_nvt_stress_12atoms.out": (
        12, True, "CP2K version 2023.2", 4,
        [(0, -68.975218663225021, {0: [-0.01133483, 0.01674381, 0.00385291],
                                   11: [-0.00083814, -0.00377846, -0.01341146]},
          {0: [-3.72808936288e-01, -2.59880244403e-02, 7.83856959473e-02],
           2: [7.83856959473e-02, -4.05490610505e-02, -1.80988446458e-01]}),
         (3, -68.972324812269690, {0: [0.03350554, -0.02238365, 0.03461046],
                                   11: [-0.00586974, -0.00289847, -0.01658541]},
          {0: [3.93916457497e-01, -4.41865430316e-02, 6.53040057518e-02],
           1: [-4.41865430316e-02, 1.34154112834e-01, -4.14572044177e-03],
           2: [6.53040057518e-02, -4.14572044177e-03, 4.48116605505e-01]})],
    ),
    "cp2k-2024.1_energy_force_8atoms.out": (
        8, False, "CP2K version 2024.1", 1,
        [(0, -31.297885372784116, {0: [0.0, 0.0, 0.0], 7: [-0.00000001, -0.00000001, -0.00000001]},
          {})],
    ),
    "cp2k-2025.1_energy_force_8atoms.out": (
        8, False, "CP2K version 2025.1", 1,
        [(0, -31.297885372784130, {0: [4.81711300e-09, 4.81761627e-09, 4.87307408e-09],
                                   7: [-5.05052618e-09, -5.19278231e-09, -1.27586630e-08]}, {})],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_outputs_give_the_printed_values(name):
    n_atoms, stress, version, count, checks = REAL[name]
    out = read_output(DATA / name, n_atoms, expect_stress=stress)
    assert out.version == version and out.ended and len(out.evaluations) == count
    assert all(e.scf_converged for e in out.evaluations) and out.incomplete_tail is None
    for index, energy, forces, stress_rows in checks:
        evaluation = out.evaluations[index]
        assert evaluation.energy == energy and evaluation.forces.shape == (n_atoms, 3)
        for atom, row in forces.items():
            assert evaluation.forces[atom].tolist() == row
        for row, values in stress_rows.items():
            assert evaluation.stress[row].tolist() == values
        assert (evaluation.stress is None) == (not stress)


def test_real_2025_2_output_with_stress_in_bar():
    """A real CP2K 2025.2 ENERGY_FORCE run printing ``STRESS| ... [bar]`` (see SOURCES.md)."""
    name = "cp2k-2025.2_energy_force_stress_457atoms.out"
    out = read_output(DATA / name, 457, expect_stress=True)
    assert out.version == "CP2K version 2025.2" and out.ended and len(out.evaluations) == 1
    assert out.incomplete_tail is None and out.n_unconverged == 0
    evaluation = out.evaluations[0]
    assert evaluation.energy == -8399.118581052152877  # hartree
    assert evaluation.forces.shape == (457, 3)
    assert evaluation.forces[0].tolist() == [1.22541206e-02, -1.80351825e-02, 7.92236219e-03]
    assert evaluation.forces[456, 2] == -1.06426284e-02
    # STRESS| x / y / z diagonal, -1.27972954271E+04 ... bar, times 1e-4 GPa/bar
    diagonal = [-1.27972954271, -1.22875836029, -3.30483154591]
    assert np.allclose(evaluation.stress.diagonal(), diagonal, rtol=1e-15, atol=0)
    assert np.allclose(evaluation.stress[0, 1], 9.26650507478e-02, rtol=1e-15, atol=0)
    assert np.array_equal(evaluation.stress, evaluation.stress.T)


def completion_ends(text):
    """Offsets just after the line that completes each evaluation (last force row block end,
    or the third stress row)."""
    stress = re.finditer(r"^ STRESS\| Analytical stress tensor.*\n.*\n.*\n.*\n.*\n", text, re.M)
    ends = [m.end() for m in stress]
    if ends:
        return ends
    forces_end = r"^ (SUM OF ATOMIC FORCES|FORCES\| Sum).*\n"
    return [m.end() for m in re.finditer(forces_end, text, re.M)]


def cut_points(text):
    """One cut offset per position class, in the last force evaluation of ``text``."""
    energy = list(re.finditer(r"^ ENERGY\| Total FORCE_EVAL.*$", text, re.M))[-1]
    header = re.compile(r"^ (ATOMIC FORCES in \[a\.u\.\]|FORCES\| Atomic forces \[.*\])$", re.M)
    forces = header.search(text, energy.end())
    row = re.compile(r"^ +(FORCES\| +)?\d+ .*$", re.M)
    first, second, third = list(row.finditer(text, forces.end()))[:3]
    number = list(re.finditer(r"-?\d\.\d+", third.group()))[1]
    points = {
        "energy line mid-number": energy.end() - 4,
        "right after the energy line": energy.end() + 1,
        "inside the forces header": forces.start() + 10,
        "force row mid-number": third.start() + number.start() + 4,
        "between force rows": second.end() + 1,
        "right before PROGRAM ENDED": text.index("  **** **** ******  **  PROGRAM ENDED AT"),
    }
    stress = re.compile(r"^ STRESS\| Analytical stress tensor.*\n.*\n.*\n(.*)\n", re.M)
    block = list(stress.finditer(text))
    if block:
        y_row = block[-1].start(1)
        first_digit = re.search(r"\d", text[y_row + len(" STRESS|      y") :]).start()
        points["inside the stress header"] = block[-1].start() + 20
        points["stress row after its first digit"] = (
            y_row + len(" STRESS|      y") + first_digit + 1
        )
    return points


@pytest.mark.parametrize("name", sorted(REAL))
def test_cut_anywhere_keeps_exactly_the_complete_evaluations(name, tmp_path):
    n_atoms, stress, *_ = REAL[name]
    text = (DATA / name).read_text()
    full = read_output(DATA / name, n_atoms, expect_stress=stress).evaluations
    ends = completion_ends(text)
    assert len(ends) == len(full)
    for where, offset in cut_points(text).items():
        path = write(tmp_path, text[:offset], f"cut-{offset}.out")
        out = read_output(path, n_atoms, expect_stress=stress, allow_incomplete=True)
        complete = sum(end <= offset for end in ends)
        assert len(out.evaluations) == complete, where
        for got, expected in zip(out.evaluations, full, strict=False):
            assert got.energy == expected.energy, where
            assert np.array_equal(got.forces, expected.forces), where
            assert (got.stress is None and expected.stress is None) or np.array_equal(
                got.stress, expected.stress
            ), where
        with pytest.raises(Cp2kParseError, match=re.escape(str(path))):
            read_output(path, n_atoms, expect_stress=stress)


def test_every_cut_offset_of_a_real_file_is_safe(tmp_path):
    """Cut after every byte of the last evaluation of the 2025.1 output."""
    name = "cp2k-2025.1_energy_force_8atoms.out"
    text = (DATA / name).read_text()
    start = text.index(" ENERGY| Total FORCE_EVAL") - 2
    stop = text.index(" FORCES| Total atomic force") + 2
    full = read_output(DATA / name, 8, expect_stress=False).evaluations[0]
    for offset in range(start, stop):
        path = write(tmp_path, text[:offset])
        out = read_output(path, 8, expect_stress=False, allow_incomplete=True)
        assert len(out.evaluations) == (offset >= text.index(" FORCES| Total atomic force"))
        for got in out.evaluations:
            assert np.array_equal(got.forces, full.forces) and got.energy == full.energy


def insert_after(text, marker, new_line):
    """``text`` with ``new_line`` after the line holding ``marker``; its 1-based number."""
    lines = text.split("\n")
    index = next(i for i, line in enumerate(lines) if marker in line) + 1
    lines.insert(index, new_line)
    return "\n".join(lines), index + 1


@pytest.mark.parametrize(
    ("name", "marker", "bad"),
    [
        ("cp2k-2025.1_energy_force_8atoms.out", "FORCES| Sum", " FORCES| Grand total force 1.0"),
        ("cp2k-2025.1_energy_force_8atoms.out", "FORCES|      3", " FORCES|      4  1.0  2.0"),
        ("cp2k-2023.2_md_nvt_stress_12atoms.out", "STRESS| Determinant", " STRESS| Pressure 1.0"),
        ("cp2k-2023.2_md_nvt_stress_12atoms.out", "STRESS|      x", " STRESS|      x 1 2 3"),
        ("cp2k-2024.1_energy_force_8atoms.out", "energy [a.u.]", " ENERGY| Total energy 1.0"),
    ],
)
def test_unknown_prefixed_line_names_file_and_line(name, marker, bad, tmp_path):
    n_atoms, stress, *_ = REAL[name]
    text, number = insert_after((DATA / name).read_text(), marker, bad)
    path = write(tmp_path, text)
    for allow_incomplete in (False, True):
        with pytest.raises(Cp2kParseError, match=rf"{re.escape(str(path))}: line {number}: "):
            read_output(path, n_atoms, expect_stress=stress, allow_incomplete=allow_incomplete)


def test_complete_output_with_nothing_recognised_names_the_file(tmp_path):
    lines = (DATA / "cp2k-2025.1_energy_force_8atoms.out").read_text().split("\n")
    ended = next(i for i, line in enumerate(lines) if "PROGRAM ENDED AT" in line)
    path = write(tmp_path, "\n".join(lines[:60] + lines[ended:]))
    with pytest.raises(Cp2kParseError, match=rf"{re.escape(str(path))}: line 61: .*without any"):
        read_output(path, 8, expect_stress=False, allow_incomplete=True)


# Synthetic stress blocks in the 2025.1+ layout (virial_methods.F write_stress_tensor, v2025.1),
# added to the real 2025.1 output, which printed none: they cover the units other than bar
# (the real 2025.2 output above prints bar).
def stress_block_2025(unit, rows):
    lines = ["", f" STRESS| Analytical stress tensor [{unit}]"]
    lines.append(" STRESS|" + "".join(f"{axis:>20s}" for axis in "xyz"))
    for axis, row in zip("xyz", rows, strict=True):
        lines.append(f" STRESS|      {axis}      " + "".join(f" {v:19.11E}" for v in row))
    lines += [f" STRESS| 1/3 Trace{1.0:51.11E}", f" STRESS| Determinant{2.0:49.11E}", ""]
    lines.append(f" STRESS| Eigenvectors and eigenvalues of the analytical stress tensor [{unit}]")
    lines.append(" STRESS|" + "".join(f"{i:20d}" for i in (1, 2, 3)))
    lines.append(" STRESS| Eigenvalues " + "".join(f" {v:19.11E}" for v in (1.0, 2.0, 3.0)))
    lines += [f" STRESS|      {axis}      " + " 0.5" * 3 for axis in "xyz"]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("unit", "to_gpa"),
    [("bar", 1e-4), ("kbar", 0.1), ("GPa", 1.0), ("MPa", 1e-3), ("Pa", 1e-9), ("atm", 1.01325e-4)],
)
def test_stress_unit_of_the_header_is_converted_to_gpa(unit, to_gpa, tmp_path):
    rows = [[6.08184838865e03, -4.15401392519e03, 1.0], [-4.15401392519e03, 2.5e-3, 0.0],
            [1.0, 0.0, -7.5e02]]  # fmt: skip
    real = (DATA / "cp2k-2025.1_energy_force_8atoms.out").read_text()
    text, _ = insert_after(real, "FORCES| Total atomic force", stress_block_2025(unit, rows))
    out = read_output(write(tmp_path, text), 8, expect_stress=True)
    assert np.allclose(out.evaluations[0].stress, np.array(rows) * to_gpa, rtol=1e-15, atol=0)
    bad, number = insert_after(real, "FORCES| Total atomic force", stress_block_2025("au_p", rows))
    with pytest.raises(Cp2kParseError, match=rf"line {number + 1}: stress unit \[au_p\]"):
        read_output(write(tmp_path, bad), 8, expect_stress=True)


def test_gap_and_free_energy_lines_and_other_units(tmp_path):
    real = (DATA / "cp2k-2025.1_energy_force_8atoms.out").read_text()
    gap = " ENERGY| Total FORCE_EVAL ( QS ) free energy [hartree]           -31.3"
    text, _ = insert_after(real, "energy [hartree]", gap)
    assert read_output(write(tmp_path, text), 8, False).evaluations[0].energy == -31.29788537278413
    for old, new in (("energy [hartree]", "energy [eV]"), ("[hartree/bohr]", "[eV/angstrom]")):
        with pytest.raises(Cp2kParseError, match=r"line 17\d: .*unit \[eV"):
            read_output(write(tmp_path, real.replace(old, new)), 8, False)
