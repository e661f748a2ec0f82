"""CP2K jobs that fail for good: classification from the run folders, failed summaries, the
trajectory of a failed relaxation, the dataset split without it, failures.csv and the failed
fraction limit. Synthetic CP2K files (no CP2K needed); tests/test_cp2k_run.py has the real one.
"""

import csv
import json

import ase.io
import numpy as np
import pytest
from ase import Atoms
from test_cp2k_trajectory import make_attempt

from workflow_scripts import splits
from workflow_scripts.cp2k import failures
from workflow_scripts.cp2k.attempts import Plan, calculation_hash
from workflow_scripts.cp2k.failures import DftFailure, classify, geometry_problem
from workflow_scripts.cp2k.inputs import Calculation, SpinState, dft_settings
from workflow_scripts.cp2k.labelled_frames import relaxation_frames
from workflow_scripts.cp2k.run import failed_summary, run_calculation, terminal_failure
from workflow_scripts.cp2k.scf import MAX_LEVEL, base_strategy
from workflow_scripts.cp2k.trajectory import stitch

LIMITS = {"max_failed_fraction": 0.05, "max_force": 50.0, "min_distance": 0.5}
LIMITS["walltime_attempts"] = 3
PROPERTIES = {"host": "CsPbBr3", "defect": "sub_X_on_B", "kind": "substitution", "species": "X"}
ABORT_BOX = [
    " *******************************************************************************",
    " * [ABORT]                                                                     *",
    " *  \\___/        {message:<60s}*",
    " * / \\                                                    qs_scf_types.F:123 *",
]


def set_record(run, **fields):
    path = run / "attempt.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def stop_with(run, lines, ended=True):
    """Add CP2K's stop message (wall time, an [ABORT] box) to an attempt's output."""
    out = run / "cp2k.out"
    text = out.read_text().replace("  **** **** ******  **  PROGRAM ENDED AT", "@@ENDED@@")
    body, _, _ = text.partition("@@ENDED@@")
    tail = ["  **** **** ******  **  PROGRAM ENDED AT  2026-11-23 23:28:39.942"] if ended else []
    out.write_text(body.rstrip("\n") + "\n" + "\n".join(lines + tail) + "\n")


def classified(workdir, limits=LIMITS):
    return classify(stitch(workdir, complete=False), limits, MAX_LEVEL, "level 3: top rung")


# --- classification -------------------------------------------------------------------------------


def test_scf_ladder_exhausted_only_at_the_top_rung(tmp_path):
    make_attempt(tmp_path, 0, 0, 3)
    run = make_attempt(tmp_path, 1, 2, 1, unconverged={2}, returncode=-15, ended=False)
    set_record(run, scf_level=MAX_LEVEL - 1)
    assert classified(tmp_path) is None  # the next rung is still to be tried
    set_record(run, scf_level=MAX_LEVEL)
    failure = classified(tmp_path)
    assert failure.kind == "scf_exhausted"
    assert "SCF not converged at step 2 in run_001" in failure.reason
    assert failure.reason.endswith("with the last rung of the SCF ladder (level 3: top rung)")


def test_blown_up_geometry_excludes_that_frame_and_later_ones(tmp_path):
    make_attempt(tmp_path, 0, 0, 5)  # the largest |F| grows by 7.1 eV/Å per step
    limits = {**LIMITS, "max_force": 20.0}
    failure = classified(tmp_path, limits)
    assert failure.kind == "geometry" and failure.first_excluded_step == 2
    assert "|F| = 21.3 eV/Å on atom 2 (Br)" in failure.reason
    assert "dft.failures.max_force = 20 eV/Å" in failure.reason
    assert classified(tmp_path) is None  # the default 50 eV/Å: a finished relaxation


def test_atoms_too_close_with_periodic_images():
    cell = np.eye(3) * 4.0
    forces = np.zeros((2, 3))
    apart = geometry_problem(["O", "O"], [[0, 0, 0], [2, 2, 2]], cell, forces, LIMITS)
    assert apart is None
    # 3.7 Å apart in the cell, 0.3 Å through the boundary.
    close = geometry_problem(["Ti", "O"], [[0.1, 0, 0], [3.8, 0, 0]], cell, forces, LIMITS)
    assert "atoms 0 (Ti) and 1 (O) are 0.300 Å apart" in close
    assert geometry_problem(["Ti", "O"], [[0.1, 0, 0], [3.8, 0, 0]], cell, forces,
                            {**LIMITS, "min_distance": 0}) is None  # fmt: skip


def test_cp2k_abort_is_for_good_only_without_a_restart_wavefunction(tmp_path):
    box = [line.format(message="Cholesky decomposition failed") for line in ABORT_BOX]
    make_attempt(tmp_path, 0, 0, 2, returncode=None)
    (tmp_path / "run_000" / "attempt_result.json").unlink()  # killed
    run = make_attempt(tmp_path, 1, 1, 1, returncode=1, ended=False)
    stop_with(run, box, ended=False)
    set_record(run, wfn_restart="run_000/cp2k-RESTART.kp")
    assert classified(tmp_path) is None  # retried from an atomic guess
    set_record(run, wfn_restart=None)
    failure = classified(tmp_path)
    assert failure.kind == "cp2k_aborted"
    assert failure.reason == "CP2K aborted in run_001: Cholesky decomposition failed"
    # An abort about files, MPI or memory depends on the machine: retried, not a failure.
    io_box = [line.format(message="Error writing file cp2k-RESTART.kp") for line in ABORT_BOX]
    stop_with(make_attempt(tmp_path / "io", 0, 0, 1, returncode=1, ended=False), io_box, False)
    assert classified(tmp_path / "io") is None


def test_walltime_fails_after_n_attempts_without_a_new_step(tmp_path):
    walltime = [" *** exceeded requested execution time: 3000.0 s ***"]
    stop_with(make_attempt(tmp_path, 0, 0, 3, ended=False), walltime)  # progress: steps 0-2
    for number in (1, 2):
        stop_with(make_attempt(tmp_path, number, 2, 1, ended=False), walltime)  # step 2 again
    assert classified(tmp_path) is None  # two attempts without progress: still retried
    stop_with(make_attempt(tmp_path, 3, 2, 1, ended=False), walltime)
    failure = classified(tmp_path)
    assert failure.kind == "walltime"
    assert failure.reason.startswith("the last 3 attempts (run_001 to run_003) each reached")
    assert classified(tmp_path, {**LIMITS, "walltime_attempts": 4}) is None
    stop_with(make_attempt(tmp_path, 4, 2, 2, ended=False), walltime)  # a new step 3
    assert classified(tmp_path) is None


def test_a_transiently_stopped_or_finished_run_is_not_a_failure(tmp_path):
    make_attempt(tmp_path / "killed", 0, 0, 2, returncode=None, ended=False)
    (tmp_path / "killed" / "run_000" / "attempt_result.json").unlink()
    assert classified(tmp_path / "killed") is None
    make_attempt(tmp_path / "done", 0, 0, 3)
    assert classified(tmp_path / "done") is None
    with pytest.raises(ValueError, match="unknown failure kind"):
        DftFailure("oops", "x")


# --- the CP2K job: summary, rerun, no basis -------------------------------------------------------


def plan_for(workdir, settings):
    atoms = Atoms("CsPbBr", positions=[[0, 0, 0], [2.935] * 3, [2.935, 2.935, 0]])
    atoms.cell, atoms.pbc = np.eye(3) * 5.87, True
    calc = Calculation(
        "relax",
        atoms,
        {},
        SpinState(False, 1, 0),
        (2, 2, 2),
        base_strategy(settings["scf"], uses_kpoints=True),
        True,
        "abc",
    )
    return Plan(workdir, calc, settings, threads=1)


def exhausted_relaxation(workdir):
    """Steps 0-2 converged; the retry from step 2 at the top rung did not converge."""
    make_attempt(workdir, 0, 0, 4, unconverged={2, 3}, returncode=-15, ended=False)
    run = make_attempt(workdir, 1, 2, 1, unconverged={2}, returncode=-15, ended=False)
    set_record(run, scf_level=MAX_LEVEL)
    set_record(workdir / "run_000", scf_level=0)


def test_failed_summary_and_rerun_writes_it_again_without_cp2k(tmp_path):
    settings = dft_settings({"command": "no-cp2k-here"})
    exhausted_relaxation(tmp_path)
    plan = plan_for(tmp_path, settings)
    for run in ("run_000", "run_001"):  # attempts of this calculation, not set aside
        set_record(tmp_path / run, calculation_hash=calculation_hash(plan.calc))
    failure = terminal_failure(plan)
    summary = failed_summary(plan, failure)
    assert summary["status"] == "failed" and summary["failure_kind"] == "scf_exhausted"
    assert summary["failure_reason"] == failure.reason
    assert summary["n_frames"] == 2  # steps 0 and 1
    assert summary["attempts"] == ["run_000", "run_001"] and summary["scf_level"] == MAX_LEVEL
    # A rerun (Snakemake -f, a retry) finds it failed and starts nothing: same summary.
    assert run_calculation(plan_for(tmp_path, settings)) == summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_000", "run_001"]


def test_no_basis_is_a_failed_summary_and_exit_0(tmp_path):
    from workflow_scripts.cp2k import run

    data = tmp_path / "data"
    data.mkdir()
    for name in (
        "BASIS_MOLOPT",
        "GTH_POTENTIALS",
        "BASIS_MOLOPT_UZH",
        "POTENTIAL_UZH",
        "BASIS_MOLOPT_UCL",
    ):
        (data / name).write_text("# nothing\n")
    settings = tmp_path / "dft.json"
    settings.write_text(json.dumps(dft_settings({"data_dir": str(data)})))
    workdir = tmp_path / "atoms" / "Ti"
    argv = ["isolated-atom", "--element", "Ti", "--settings", str(settings)]
    argv += ["--workdir", str(workdir), "--summary", str(workdir / "summary.json")]
    assert run.main(argv) == 0
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure_kind"] == "no_basis"
    assert summary["task"] == "isolated_atom" and summary["n_frames"] == 0
    assert summary["failure_reason"].startswith("Ti: no basis of tiers ['TZVP', 'DZVP', 'SZV']")
    # A wrong override is a mistake in the config, not a failed job: exit 2, no summary.
    override = {"data_dir": str(data), "elements": {"Ti": {"basis": "NO-SUCH-BASIS"}}}
    settings.write_text(json.dumps(dft_settings(override)))
    (workdir / "summary.json").unlink()
    assert run.main(argv) == 2 and not (workdir / "summary.json").exists()


# --- trajectory, splits, failures.csv -------------------------------------------------------------


def test_trajectory_of_a_failed_relaxation_keeps_its_converged_frames(tmp_path):
    exhausted_relaxation(tmp_path)
    summary = {"status": "failed", "failure_kind": "scf_exhausted", "first_excluded_step": None}
    frames, _ = relaxation_frames(tmp_path, PROPERTIES, "X", summary)
    assert [f.info["step"] for f in frames] == [0, 1]
    assert {f.info["relaxation_status"] for f in frames} == {"failed"}
    assert {f.info["failure_kind"] for f in frames} == {"scf_exhausted"}
    geometry = {**summary, "failure_kind": "geometry", "first_excluded_step": 1}
    frames, _ = relaxation_frames(tmp_path, PROPERTIES, "X", geometry)
    assert [f.info["step"] for f in frames] == [0]
    frames, stitched = relaxation_frames(tmp_path / "none", PROPERTIES, "X", summary)
    assert frames == [] and stitched is None  # no_basis: CP2K never ran


def _trajectory(path, defect, n, symbols="SrTiO3", status="converged", kind=None):
    frames = []
    for step in range(n):
        atoms = Atoms(symbols, positions=np.random.default_rng(step).random((5, 3)) * 3.9)
        atoms.cell, atoms.pbc = np.eye(3) * 3.9, True
        atoms.info.update(REF_energy=-40.0 - step, host="SrTiO3", defect=defect, step=step)
        atoms.info.update(scf_converged=True, relaxation_status=status)
        if kind:
            atoms.info["failure_kind"] = kind
        atoms.arrays["REF_forces"] = np.full((5, 3), 0.1)
        frames.append(atoms)
    path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(path, frames, format="extxyz")
    return path


def _isolated(path, symbols):
    atoms = []
    for symbol in symbols:
        atom = Atoms(symbol, positions=[[6, 6, 6]], cell=np.eye(3) * 12, pbc=False)
        atom.info.update(REF_energy=-100.0, config_type="IsolatedAtom")
        atoms.append(atom)
    ase.io.write(path, atoms, format="extxyz")
    return path


def test_split_skips_failed_relaxations_and_elements_without_e0(tmp_path, capsys):
    good = [_trajectory(tmp_path / "t" / f"ok_{k}.extxyz", f"ok_{k}", 6) for k in range(4)]
    failed = _trajectory(tmp_path / "t" / "bad.extxyz", "bad", 3, status="failed", kind="geometry")
    fe = _trajectory(tmp_path / "t" / "fe.extxyz", "sub_Fe_on_B", 5, symbols="SrFeO3")
    empty = tmp_path / "t" / "empty.extxyz"
    empty.write_text("")
    isolated = _isolated(tmp_path / "atoms.extxyz", ["Sr", "Ti", "O"])
    rows = [
        {"job": "relax", "host": "SrTiO3", "defect": "bad", "failure_kind": "geometry",
         "failure_reason": "blown up", "frames_kept": "3"},
        {"job": "relax", "host": "SrTiO3", "defect": "empty", "failure_kind": "scf_exhausted",
         "failure_reason": "no SCF", "frames_kept": "0"},
        {"job": "isolated_atom", "element": "Fe", "failure_kind": "scf_exhausted",
         "failure_reason": "Fe atom SCF"},
    ]  # fmt: skip
    outputs = {n: tmp_path / "out" / f"{n}.extxyz" for n in splits.SPLITS}
    files = [*good, failed, fe, empty]
    counts = splits.write_splits(files, isolated, outputs, "frame", [0.8, 0.1, 0.1], 0, rows)
    assert sum(counts.values()) == 3 + 4 * 6  # the isolated atoms + the good trajectories only
    written = [f for n in splits.SPLITS for f in ase.io.read(outputs[n], index=":")]
    assert {f.info.get("defect") for f in written} == {None, "ok_0", "ok_1", "ok_2", "ok_3"}
    log = capsys.readouterr().out
    assert "2 relaxation(s) failed for good (dataset.failed_relaxations: skip)" in log
    assert "SrTiO3/bad: geometry, 3 frame(s) kept (blown up)" in log
    assert f"{failed}: skipped, a failed relaxation (geometry), 3 frame(s)" in log
    assert "left out 5 frames of 1 trajectories with Fe: its isolated atom failed" in log
    # include: the failed relaxation's frames are split like the others.
    counts = splits.write_splits(
        files, isolated, outputs, "frame", [0.8, 0.1, 0.1], 0, rows, "include"
    )
    assert sum(counts.values()) == 3 + 4 * 6 + 3
    # An element without E0 and without a failed isolated-atom job is an error.
    with pytest.raises(ValueError, match="no isolated-atom E0 for Fe"):
        splits.write_splits(files, isolated, outputs, "frame", [0.8, 0.1, 0.1], 0, rows[:2])


def _summary(path, status="max_iter", **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"task": "relax", "status": status, "n_frames": 4, **fields}))
    return path


def test_failures_check_lists_failed_jobs_and_stops_above_the_limit(tmp_path, caplog):
    relax = [_summary(tmp_path / "relax" / "SrTiO3" / f"d{k}" / "summary.json") for k in range(9)]
    relax.append(
        _summary(
            tmp_path / "relax" / "SrTiO3" / "sub_Fe_on_B" / "summary.json",
            status="failed",
            failure_kind="scf_exhausted",
            failure_reason="SCF not converged at step 3",
            n_frames=3,
        )
    )
    out = tmp_path / "failures" / "relax.csv"
    argv = ["check", "--job", "relax", "--out", str(out)] + [str(p) for p in relax]
    assert failures.main([*argv, "--max-failed-fraction", "0.1"]) == 0  # 1 of 10: at the limit
    (row,) = list(csv.DictReader(out.open()))
    assert row["job"] == "relax" and row["host"] == "SrTiO3" and row["defect"] == "sub_Fe_on_B"
    assert row["failure_kind"] == "scf_exhausted" and row["frames_kept"] == "3"
    assert row["failure_reason"] == "SCF not converged at step 3"
    out.unlink()
    assert failures.main([*argv, "--max-failed-fraction", "0.05"]) == 1
    assert not out.exists()
    assert "1 of 10 CP2K relax jobs failed (10.0%)" in caplog.text
    assert "relax SrTiO3/sub_Fe_on_B (scf_exhausted: SCF not converged at step 3)" in caplog.text
    atoms = _summary(
        tmp_path / "atoms" / "Fe" / "summary.json",
        status="failed",
        failure_kind="no_basis",
        failure_reason="Fe: no basis",
        n_frames=0,
    )
    atoms_csv = tmp_path / "failures" / "isolated_atom.csv"
    assert failures.main(["check", "--job", "isolated_atom", "--max-failed-fraction", "1",
                          "--out", str(atoms_csv), str(atoms)]) == 0  # fmt: skip
    assert failures.main([*argv, "--max-failed-fraction", "0.5"]) == 0
    combined = tmp_path / "failures.csv"
    assert failures.main(["combine", "--out", str(combined), str(out), str(atoms_csv)]) == 0
    rows = list(csv.DictReader(combined.open()))
    assert [(r["job"], r["defect"] or r["element"]) for r in rows] == [
        ("relax", "sub_Fe_on_B"),
        ("isolated_atom", "Fe"),
    ]
    assert list(rows[0]) == list(failures.COLUMNS)
    empty = tmp_path / "failures" / "single_point.csv"
    assert failures.main(["check", "--job", "single_point", "--max-failed-fraction", "0",
                          "--out", str(empty)]) == 0  # fmt: skip
    assert empty.read_text().strip() == ",".join(failures.COLUMNS)
