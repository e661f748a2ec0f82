"""CP2K output parsing on synthetic outputs in CP2K 2023.1's format (no CP2K needed)."""

import numpy as np
import pytest

from workflow_scripts.cp2k.parse import (
    Cp2kParseError,
    read_input_geometry,
    read_output,
    read_positions,
)

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
