"""Stitching attempts into one trajectory, on synthetic CP2K files (no CP2K needed)."""

import json

import numpy as np
import pytest
from ase import units
from test_cp2k_parse import FORCES, STRESS, evaluation_text, output_text

from workflow_scripts.cp2k.labelled_frames import relaxation_frames, to_atoms
from workflow_scripts.cp2k.parse import Cp2kParseError
from workflow_scripts.cp2k.trajectory import stitch

CELL = "   A 5.87 0.0 0.0\n   B 0.0 5.87 0.0\n   C 0.0 0.0 5.87\n"


def energy_of(step):
    return -64.0 - 0.001 * step


def make_attempt(
    workdir, number, start_step, n_evaluations, unconverged=(), returncode=0, ended=True
):
    """A run_NNN folder as an attempt of :mod:`workflow_scripts.cp2k.run` leaves it."""
    run = workdir / f"run_{number:03d}"
    run.mkdir(parents=True)
    start = start_step * 0.01
    (run / "cp2k.inp").write_text(
        f"&SUBSYS\n  &CELL\n{CELL}  &END CELL\n  &COORD\n   Cs {start} 0.0 0.0\n"
        "   Pb 2.935 2.935 2.935\n   Br 2.935 2.935 0.0\n  &END COORD\n&END SUBSYS\n"
    )
    evaluations = [
        evaluation_text(
            energy_of(start_step + k),
            FORCES * (k + 1),
            STRESS,
            scf="failed" if start_step + k in unconverged else "converged",
        )
        for k in range(n_evaluations)
    ]
    geo = "max_iter" if ended else None
    (run / "cp2k.out").write_text(output_text(evaluations, geo_opt=geo, ended=ended))
    with open(run / "cp2k-pos-1.xyz", "w") as pos:
        for k in range(1, n_evaluations):
            step = start_step + k
            pos.write(f"3\n i = {k:8d}, E = {energy_of(step):20.10f}\n")
            pos.write(f" Cs {step * 0.01} 0.0 0.0\n Pb 2.935 2.935 2.935\n Br 2.935 2.935 0.0\n")
    record = {"task": "relax", "start_step": start_step, "stress": True, "settings_hash": "abc"}
    (run / "attempt.json").write_text(json.dumps(record))
    (run / "attempt_result.json").write_text(json.dumps({"returncode": returncode}))
    return run


def test_restart_supersedes_and_no_step_is_lost_or_doubled(tmp_path):
    # Killed after evaluations 0..3 (no result file), resumed from step 3.
    make_attempt(tmp_path, 0, 0, 4, returncode=None)
    (tmp_path / "run_000" / "attempt_result.json").unlink()
    make_attempt(tmp_path, 1, 3, 3)
    stitched = stitch(tmp_path)
    assert [f.step for f in stitched.frames] == [0, 1, 2, 3, 4, 5]
    assert [f.run for f in stitched.frames] == ["run_000"] * 3 + ["run_001"] * 3
    assert stitched.n_evaluations == 7 and stitched.n_superseded == 1
    assert [f.energy for f in stitched.frames] == [energy_of(s) for s in range(6)]
    assert np.allclose(stitched.frames[4].positions[0], [0.04, 0, 0])


def test_unconverged_frames_are_excluded_and_counted(tmp_path):
    make_attempt(tmp_path, 0, 0, 5, unconverged={1, 3})
    stitched = stitch(tmp_path)
    assert [f.step for f in stitched.frames] == [0, 2, 4]
    assert stitched.n_unconverged == 2
    frames, _ = relaxation_frames(tmp_path, {"host": "CsPbBr3", "kind": "vacancy"}, "X")
    assert all(f.info["scf_converged"] for f in frames)
    assert frames[0].info["substituent"] == "vacancy"


def test_scf_retry_discards_the_branch_after_the_bad_step(tmp_path):
    make_attempt(tmp_path, 0, 0, 5, unconverged={2})
    make_attempt(tmp_path, 1, 2, 2)
    stitched = stitch(tmp_path)
    assert [(f.step, f.run) for f in stitched.frames] == [
        (0, "run_000"),
        (1, "run_000"),
        (2, "run_001"),
        (3, "run_001"),
    ]
    assert stitched.n_superseded == 3 and stitched.n_unconverged == 0


def test_gap_and_mismatched_trajectory_are_errors(tmp_path):
    make_attempt(tmp_path / "gap", 0, 0, 2)
    make_attempt(tmp_path / "gap", 1, 5, 2)
    with pytest.raises(Cp2kParseError, match=r"ionic steps \[2, 3, 4\] missing"):
        stitch(tmp_path / "gap")
    run = make_attempt(tmp_path / "bad", 0, 0, 3)
    pos = run / "cp2k-pos-1.xyz"
    pos.write_text(pos.read_text().replace(f"{energy_of(2):20.10f}", f"{-1.5:20.10f}"))
    with pytest.raises(Cp2kParseError, match="frame i = 2 has E = -1.5"):
        stitch(tmp_path / "bad")


def test_last_attempt_must_be_complete(tmp_path):
    make_attempt(tmp_path, 0, 0, 3, ended=False)
    with pytest.raises(
        Cp2kParseError, match="run_000/cp2k.out: truncated output: no 'PROGRAM ENDED AT'"
    ):
        stitch(tmp_path)


def test_units_and_stress_sign():
    from workflow_scripts.cp2k.trajectory import Frame

    frame = Frame(0, "run_000", 0, np.zeros((3, 3)), -2.0, FORCES, STRESS, True)
    atoms = to_atoms(frame, ["Cs", "Pb", "Br"], np.eye(3) * 5.87, {"dataset": "x"})
    assert atoms.info["REF_energy"] == -2.0 * units.Hartree
    assert np.allclose(atoms.arrays["REF_forces"], FORCES * units.Hartree / units.Bohr, atol=0)
    # CP2K's +1.5 GPa (compressive) along xx is -1.5 GPa in ASE's sign; Voigt xx yy zz yz xz xy.
    expected = -np.array([1.5, -2.25, 0.5, 0.3, 0.0, 0.1]) * units.GPa
    assert np.allclose(atoms.info["REF_stress"], expected, atol=0)
