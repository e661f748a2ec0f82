"""Real CP2K: a 5-atom perovskite relaxation, kill/resume, SCF failure, truncation, atoms.

Cheap settings (SZV, 200/30 Ry, k 2x2x2, 3-6 BFGS steps) keep each CP2K run at seconds to
tens of seconds on 2 cores. Expected values come from CP2K's own printout, read here with
regular expressions independent of :mod:`workflow_scripts.cp2k.parse`.
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.io import read, write

from workflow_scripts.config import REPO_ROOT
from workflow_scripts.cp2k.inputs import dft_settings
from workflow_scripts.cp2k.parse import Cp2kParseError, read_output
from workflow_scripts.cp2k.trajectory import main as trajectory_main
from workflow_scripts.cp2k.trajectory import read_attempt

pytestmark = pytest.mark.skipif(shutil.which("cp2k.psmp") is None, reason="needs CP2K")

CHEAP = {
    "basis_preference": ["SZV"],
    "cutoff": 200,
    "rel_cutoff": 30,
    "ngrids": 3,
    "eps_default": 1.0e-10,
    "kpoints": [2, 2, 2],
    "geo_opt": {"max_iter": 3},
    "single_point": {"kpoint_spacing": 0.6},
    "isolated_atoms": {"box": 7.0},
    "custodian": {"polling_s": 0.5, "monitor_every": 2},
}
ENERGY = re.compile(r"ENERGY\| Total FORCE_EVAL \( QS \) energy \[a\.u\.\]:\s+(\S+)")


def cspbbr3(shift=0.12):
    """5-atom cubic CsPbBr3 with Pb pushed off-centre, as a pymatgen Structure dict."""
    a = 5.87
    frac = [[0, 0, 0], [0.5 + shift / a, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    sites = [
        {
            "species": [{"element": el, "occu": 1}],
            "abc": f,
            "xyz": [x * a for x in f],
            "properties": {"magmom": 0.0},
        }
        for el, f in zip(["Cs", "Pb", "Br", "Br", "Br"], frac, strict=True)
    ]
    lattice = {"matrix": [[a, 0, 0], [0, a, 0], [0, 0, a]]}
    properties = {"host": "CsPbBr3", "defect": "test", "kind": "substitution", "role": "B"}
    properties["species"] = "Pb"
    return {"@class": "Structure", "lattice": lattice, "sites": sites, "properties": properties}


def write_inputs(tmp_path, overrides):
    structure = tmp_path / "structure.json"
    structure.write_text(json.dumps(cspbbr3()))
    settings = tmp_path / "dft.json"
    settings.write_text(json.dumps(dft_settings({**CHEAP, **overrides})))
    return structure, settings


def run_cli(task, tmp_path, structure, settings, workdir, **popen):
    """The rule's command line: python -m workflow_scripts.cp2k.run ..."""
    args = [sys.executable, "-m", "workflow_scripts.cp2k.run", task]
    args += ["--structure", str(structure)] if task != "isolated-atom" else []
    args += ["--settings", str(settings), "--workdir", str(workdir)]
    args += ["--summary", str(workdir / "summary.json"), "--threads", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    log = open(tmp_path / f"{workdir.name}.log", "a")  # noqa: SIM115 - closed by the caller's exit
    return subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, **popen)


def printed(out_path):
    """CP2K's printed energies (Ha), force blocks (Ha/bohr), stress blocks (GPa)."""
    text = Path(out_path).read_text()
    energies = [float(e) for e in ENERGY.findall(text)]
    forces = [
        np.array([[float(v) for v in row.split()[3:6]] for row in block.strip().splitlines()[1:]])
        for block in re.findall(r"ATOMIC FORCES in \[a\.u\.\]\n\n(.*?)\n SUM OF", text, re.S)
    ]
    stress = [
        np.array([[float(v) for v in row.split()[2:5]] for row in block.splitlines()])
        for block in re.findall(r"GPa\]\n STRESS\|\s+x\s+y\s+z\n((?: STRESS\|.*\n){3})", text)
    ]
    return energies, forces, stress


@pytest.fixture(scope="module")
def relaxation(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("relax")
    structure, settings = write_inputs(tmp_path, {})
    workdir = tmp_path / "relax"
    started = time.time()
    assert run_cli("relax", tmp_path, structure, settings, workdir).wait() == 0
    wall = time.time() - started
    out = tmp_path / "trajectory.extxyz"
    trajectory_main(
        ["relax", "--workdir", str(workdir), "--structure", str(structure)]
        + ["--dataset", "Perovs-Dopants", "--out", str(out)]
    )
    return workdir, structure, read(out, index=":"), wall


def test_frames_equal_cp2k_printout(relaxation):
    workdir, _, frames, wall = relaxation
    summary = json.loads((workdir / "summary.json").read_text())
    energies, forces, stress = printed(workdir / "run_000" / "cp2k.out")
    # Every force evaluation is a frame (a converged GEO_OPT adds an energy-only re-evaluation).
    assert len(frames) == len(forces) == summary["n_force_evaluations"] == summary["n_frames"]
    assert len(forces) >= 3 and len(energies) in (len(forces), len(forces) + 1)
    for step, frame in enumerate(frames):
        assert frame.info["step"] == step and frame.info["scf_converged"]
        assert abs(frame.info["REF_energy"] - energies[step] * units.Hartree) < 1e-6
        assert (
            np.abs(frame.arrays["REF_forces"] - forces[step] * units.Hartree / units.Bohr).max()
            < 1e-6
        )
        voigt = -stress[step][[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]] * units.GPa
        assert np.abs(frame.info["REF_stress"] - voigt).max() < 1e-9
        assert frame.info["host"] == "CsPbBr3" and frame.info["site"] == "B"
        assert frame.info["cp2k_version"] == "CP2K version 2023.1"
        assert frame.info["settings_hash"] == summary["settings_hash"]
    # Positions: step 0 is the input, later steps CP2K's trajectory file (extxyz keeps 1e-8 Å).
    assert np.allclose(frames[0].positions[1], [5.87 / 2 + 0.12, 5.87 / 2, 5.87 / 2], atol=1e-8)
    trajectory = read(workdir / "run_000" / "cp2k-pos-1.xyz", index=":")
    for frame, cp2k_frame in zip(frames[1:], trajectory, strict=False):
        assert np.abs(frame.positions - cp2k_frame.positions).max() < 1e-7
    assert wall < 120, f"5-atom test relaxation took {wall:.0f} s"


def test_truncated_output_names_file_and_what_is_missing(relaxation, tmp_path):
    workdir, structure, _, _ = relaxation
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    out = copy / "run_000" / "cp2k.out"
    text = out.read_text()
    third = [m.start() for m in re.finditer(r"ATOMIC FORCES in", text)][2]
    out.write_text(text[: third + 300])
    with pytest.raises(Cp2kParseError) as error:
        trajectory_main(
            ["relax", "--workdir", str(copy), "--structure", str(structure)]
            + ["--dataset", "x", "--out", str(tmp_path / "t.extxyz")]
        )
    message = str(error.value)
    assert str(out) in message
    assert "truncated output: force evaluation 2: ATOMIC FORCES block ends after" in message
    assert not (tmp_path / "t.extxyz").exists()


def cp2k_processes_in(directory):
    """PIDs of processes whose working directory is inside ``directory``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(directory)):
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_sigkill_then_rerun_resumes_without_duplicates_or_gaps(tmp_path):
    structure, settings = write_inputs(tmp_path, {"geo_opt": {"max_iter": 5}})
    workdir = tmp_path / "relax"
    runner = run_cli("relax", tmp_path, structure, settings, workdir, start_new_session=True)
    run_000 = workdir / "run_000"
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.2)
        if (run_000 / "cp2k.out").is_file():
            done = read_output(run_000 / "cp2k.out", 5, True, allow_incomplete=True).evaluations
            if len(done) >= 3:
                break
        assert runner.poll() is None, "the relaxation ended before it could be killed"
    os.killpg(runner.pid, signal.SIGKILL)  # the runner and its CP2K: what a node failure does
    runner.wait()
    for _ in range(50):
        if not cp2k_processes_in(workdir):
            break
        time.sleep(0.1)
    assert not cp2k_processes_in(workdir)
    killed = read_attempt(run_000, strict=False)
    resume_step = killed.frames[-1].step
    frozen = {p.name: p.read_bytes() for p in run_000.iterdir()}

    assert run_cli("relax", tmp_path, structure, settings, workdir).wait() == 0

    assert {p.name: p.read_bytes() for p in run_000.iterdir() if p.name in frozen} == frozen
    record = json.loads((workdir / "run_001" / "attempt.json").read_text())
    assert record["start_step"] == resume_step and record["wfn_restart"].endswith("RESTART.kp")
    assert "killed" in record["reason"]
    out = tmp_path / "trajectory.extxyz"
    trajectory_main(
        ["relax", "--workdir", str(workdir), "--structure", str(structure)]
        + ["--dataset", "x", "--out", str(out)]
    )
    frames = read(out, index=":")
    steps = [f.info["step"] for f in frames]
    assert steps == list(range(len(frames)))  # nothing doubled, nothing missing
    resumed = read_attempt(workdir / "run_001")
    assert len(frames) == resume_step + len(resumed.frames) <= 6
    for frame in frames[:resume_step]:
        assert frame.info["REF_energy"] == killed.frames[frame.info["step"]].energy * units.Hartree
    # The restart re-evaluates the last complete geometry of the killed attempt.
    assert np.abs(resumed.frames[0].positions - killed.frames[-1].positions).max() < 1e-9
    assert abs(resumed.frames[0].energy - killed.frames[-1].energy) < 1e-5


def test_scf_failure_is_corrected_and_never_reaches_the_data(tmp_path):
    # MAX_SCF 3 cannot converge; the monitor looks only every 500 s, so CP2K's GEO_OPT goes on
    # with unconverged forces (as CP2K 2023.1 does) and the check after the run catches it.
    overrides = {
        "scf": {"max_scf": 3},
        "geo_opt": {"max_iter": 2},
        "custodian": {"polling_s": 0.5, "monitor_every": 1000},
    }
    structure, settings = write_inputs(tmp_path, overrides)
    workdir = tmp_path / "relax"
    assert run_cli("relax", tmp_path, structure, settings, workdir).wait() == 0
    failed = read_attempt(workdir / "run_000", strict=False)
    bad_energies = [f.energy for f in failed.frames if not f.scf_converged]
    assert len(bad_energies) == 3  # every force evaluation of run_000
    assert "SCF run NOT converged" in (workdir / "run_000" / "cp2k.out").read_text()
    log = json.loads((workdir / "run_001" / "custodian.json").read_text())
    correction = log[0]["corrections"][0]
    assert correction["errors"] == ["SCF not converged in force evaluation 0 (step 0) of run_000"]
    assert correction["actions"][0]["scf_level"] == 1
    assert "MAX_SCF 100" in correction["actions"][0]["scf_strategy"]
    retry = json.loads((workdir / "run_001" / "attempt.json").read_text())
    assert retry["scf_level"] == 1 and retry["start_step"] == 0
    assert "MAX_SCF 100" in (workdir / "run_001" / "cp2k.inp").read_text()
    out = tmp_path / "trajectory.extxyz"
    trajectory_main(
        ["relax", "--workdir", str(workdir), "--structure", str(structure)]
        + ["--dataset", "x", "--out", str(out)]
    )
    frames = read(out, index=":")
    assert len(frames) == 3 and all(f.info["scf_converged"] for f in frames)
    for frame in frames:
        assert all(abs(frame.info["REF_energy"] - e * units.Hartree) > 1e-6 for e in bad_energies)
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["attempts"] == ["run_000", "run_001"] and summary["n_superseded"] == 3


def test_open_shell_transition_metal_atom_converges(tmp_path):
    _, settings = write_inputs(tmp_path, {})
    workdir = tmp_path / "Ti"
    args = [sys.executable, "-m", "workflow_scripts.cp2k.run", "isolated-atom", "--element", "Ti"]
    args += ["--settings", str(settings), "--workdir", str(workdir)]
    args += ["--summary", str(workdir / "summary.json"), "--threads", "2"]
    subprocess.run(args, cwd=REPO_ROOT, check=True, capture_output=True)
    out = tmp_path / "isolated_atoms.extxyz"
    trajectory_main(["atoms", "--workdirs", str(workdir), "--dataset", "x", "--out", str(out)])
    (atom,) = read(out, index=":")
    energies, _, _ = printed(workdir / "run_000" / "cp2k.out")
    assert atom.info["config_type"] == "IsolatedAtom" and atom.info["multiplicity"] == 3
    assert abs(atom.info["REF_energy"] - energies[-1] * units.Hartree) < 1e-6
    assert "SCF run converged" in (workdir / "run_000" / "cp2k.out").read_text()
    assert "FIXED_MAGNETIC_MOMENT 2.0" in (workdir / "run_000" / "cp2k.inp").read_text()


def test_single_point_labels_keep_vasp_labels(tmp_path):
    _, settings = write_inputs(tmp_path, {})
    base = Atoms(
        "CsPbBr3",
        scaled_positions=[[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        cell=[5.87] * 3,
        pbc=True,
    )
    base.info.update({"REF_energy": -12.5, "REF_stress": np.arange(6.0), "mp_id": "mp-1"})
    base.arrays["REF_forces"] = np.full((5, 3), 0.25)
    structures = tmp_path / "cp2k_subset_structures.extxyz"
    write(structures, [base], format="extxyz")
    # The rule's command: a batch (here of one structure), each index in its own folder.
    root = tmp_path / "sp"
    workdir, listing = root / "0", root / "batch_0.json"
    args = [sys.executable, "-m", "workflow_scripts.cp2k.batch", "single-points"]
    args += ["--structures", str(structures), "--indices", "0", "--settings", str(settings)]
    args += ["--root", str(root), "--listing", str(listing), "--walltime-min", "30"]
    subprocess.run(args + ["--threads", "2"], cwd=REPO_ROOT, check=True, capture_output=True)
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["structure_hash"]
    assert json.loads(listing.read_text())["points"] == [
        {"index": 0, "summary": str(workdir / "summary.json"), "status": "done", "ran": True}
    ]
    # A rerun of the batch (e.g. after the listing was lost) finds it done: no CP2K.
    listing.unlink()
    subprocess.run(args + ["--threads", "2"], cwd=REPO_ROOT, check=True, capture_output=True)
    assert json.loads(listing.read_text())["points"][0]["ran"] is False
    assert [p.name for p in workdir.glob("run_*")] == ["run_000"]
    out = tmp_path / "cp2k_subset.extxyz"
    trajectory_main(
        ["mptrj-labels", "--structures", str(structures)]
        + ["--batches", str(listing)]
        + ["--out", str(out)]
    )
    (frame,) = read(out, index=":")
    energies, forces, _ = printed(workdir / "run_000" / "cp2k.out")
    assert frame.info["VASP_energy"] == -12.5 and frame.info["mp_id"] == "mp-1"
    assert np.array_equal(frame.info["VASP_stress"], np.arange(6.0))
    assert np.all(frame.arrays["VASP_forces"] == 0.25)
    assert abs(frame.info["REF_energy"] - energies[0] * units.Hartree) < 1e-6
    assert np.abs(frame.arrays["REF_forces"] - forces[0] * units.Hartree / units.Bohr).max() < 1e-6
    assert "SCHEME MONKHORST-PACK 2 2 2" in (workdir / "run_000" / "cp2k.inp").read_text()


def test_attempts_of_other_settings_are_set_aside_not_reused(tmp_path):
    from workflow_scripts.cp2k.attempts import Plan, calculation_hash, set_aside_other_calculations
    from workflow_scripts.cp2k.inputs import prepare

    settings = dft_settings(CHEAP)
    atoms = Atoms(
        "CsPbBr3",
        scaled_positions=np.random.default_rng(0).random((5, 3)),
        cell=[5.87] * 3,
        pbc=True,
    )
    plan = Plan(tmp_path, prepare("relax", atoms, settings), settings, threads=1)
    old = tmp_path / "run_000"
    old.mkdir()
    (old / "attempt.json").write_text(json.dumps({"calculation_hash": "0123456789ab"}))
    (old / "cp2k.out").write_text("old output")
    set_aside_other_calculations(plan)
    assert not old.exists()
    assert (tmp_path / "other_0123456789ab" / "run_000" / "cp2k.out").read_text() == "old output"
    same = tmp_path / "run_000"
    same.mkdir()
    (same / "attempt.json").write_text(
        json.dumps({"calculation_hash": calculation_hash(plan.calc)})
    )
    set_aside_other_calculations(plan)
    assert same.is_dir()
    changed = Plan(
        tmp_path, prepare("relax", atoms, dft_settings({**CHEAP, "cutoff": 210})), settings, 1
    )
    assert calculation_hash(changed.calc) != calculation_hash(plan.calc)


@pytest.mark.slow
def test_relaxation_failing_for_good_costs_one_row_not_the_study(relaxation, tmp_path, caplog):
    """No rung of the SCF ladder converges (EPS_SCF 1e-30 is out of reach; a cheap Γ-point
    grid keeps the ~1,000 SCF steps of the ladder short): the job exits 0 with a failed
    summary and its reason, a rerun does nothing new, the split is built from the other
    relaxation (the module's real one), failures.csv names the failed job, and above the
    failed-fraction limit the failures check stops, naming it."""
    from workflow_scripts import splits
    from workflow_scripts.cp2k.failures import main as failures_main

    overrides = {
        "kpoints": None,
        "cutoff": 60,
        "rel_cutoff": 15,
        "ngrids": 2,
        "scf": {"max_scf": 3, "eps_scf": 1.0e-30, "outer_max_scf": 1},
        "geo_opt": {"max_iter": 2},
    }
    structure, settings = write_inputs(tmp_path, overrides)
    relax = tmp_path / "results" / "cp2k" / "relax" / "CsPbBr3"
    workdir = relax / "sub_X_on_B"
    started = time.time()
    assert run_cli("relax", tmp_path, structure, settings, workdir).wait() == 0
    wall = time.time() - started
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure_kind"] == "scf_exhausted"
    # Where it is named depends on when custodian's monitor stopped CP2K: after the
    # unconverged evaluation printed its forces (step 0) or inside it (the last evaluation).
    assert re.match(
        r"SCF not converged at (step 0|the last force evaluation) in run_003 with the last rung "
        r"of the SCF ladder \(level 3:",
        summary["failure_reason"],
    ), summary["failure_reason"]
    assert "MAX_SCF 500, EPS_SCF 1e-30" in summary["failure_reason"]
    assert summary["attempts"] == ["run_000", "run_001", "run_002", "run_003"]
    assert summary["n_frames"] == 0 and summary["scf_level"] == 3
    (last,) = json.loads((workdir / "run_003" / "custodian.json").read_text())
    assert last["corrections"][-1]["actions"] == []  # nothing left to try
    # A rerun (a retry, snakemake -f) finds it failed: the same summary, no new attempt.
    (workdir / "summary.json").unlink()
    assert run_cli("relax", tmp_path, structure, settings, workdir).wait() == 0
    assert json.loads((workdir / "summary.json").read_text()) == summary
    assert not (workdir / "run_004").exists()
    # The trajectory rule: no converged frame to keep.
    trajectories = tmp_path / "results" / "trajectories" / "CsPbBr3"
    failed_out = trajectories / "sub_X_on_B.extxyz"
    trajectory_main(
        ["relax", "--workdir", str(workdir), "--structure", str(structure)]
        + ["--summary", str(workdir / "summary.json"), "--dataset", "x", "--out", str(failed_out)]
    )
    assert failed_out.read_text() == ""
    # The other relaxation, finished: its summary and trajectory as the rules place them.
    done_dir, done_structure, done_frames, _ = relaxation
    (relax / "pristine").mkdir(parents=True)
    shutil.copy(done_dir / "summary.json", relax / "pristine" / "summary.json")
    done_out = trajectories / "pristine.extxyz"
    trajectory_main(
        ["relax", "--workdir", str(done_dir), "--structure", str(done_structure)]
        + ["--dataset", "x", "--out", str(done_out)]
    )
    # failures check: 1 of 2 failed is above 5 %: stops, naming the job.
    summaries = [str(relax / d / "summary.json") for d in ("pristine", "sub_X_on_B")]
    failures_csv = tmp_path / "results" / "cp2k" / "failures" / "relax.csv"
    check = ["check", "--job", "relax", "--out", str(failures_csv)]
    assert failures_main([*check, "--max-failed-fraction", "0.05", *summaries]) == 1
    assert "1 of 2 CP2K relax jobs failed (50.0%)" in caplog.text
    assert "relax CsPbBr3/sub_X_on_B (scf_exhausted: SCF not converged at " in caplog.text
    assert not failures_csv.exists()
    assert failures_main([*check, "--max-failed-fraction", "0.5", *summaries]) == 0
    combined = tmp_path / "results" / "cp2k" / "failures.csv"
    assert failures_main(["combine", "--out", str(combined), str(failures_csv)]) == 0
    (row,) = list(csv.DictReader(combined.open()))
    assert (row["host"], row["defect"], row["failure_kind"]) == (
        "CsPbBr3",
        "sub_X_on_B",
        "scf_exhausted",
    )
    assert row["frames_kept"] == "0" and row["failure_reason"] == summary["failure_reason"]
    # The split: built from the finished relaxation, the failed one listed.
    isolated = tmp_path / "isolated_atoms.extxyz"
    e0s = [Atoms(el, positions=[[3, 3, 3]], cell=[7.0] * 3, pbc=False) for el in ("Br", "Cs", "Pb")]
    for atom in e0s:
        atom.info.update(REF_energy=-1.0, config_type="IsolatedAtom")
    write(isolated, e0s, format="extxyz")
    dataset = tmp_path / "dataset.json"
    dataset.write_text(
        json.dumps({"split": {"mode": "frame", "fractions": [0.8, 0.1, 0.1], "seed": 0}})
    )
    out = {n: tmp_path / "dataset" / f"{n}.extxyz" for n in splits.SPLITS}
    argv = ["--settings", str(dataset), "--isolated-atoms", str(isolated)]
    argv += [a for n in splits.SPLITS for a in (f"--{n}", str(out[n]))]
    argv += ["--failures", str(failures_csv), str(done_out), str(failed_out)]
    assert splits.main(argv) == 0
    written = [f for n in splits.SPLITS for f in read(out[n], index=":")]
    assert len(written) == 3 + len(done_frames)
    status = json.loads((done_dir / "summary.json").read_text())["status"]
    assert {f.info.get("relaxation_status") for f in written} == {None, status}
    # The ladder is ~1,100 SCF steps (3 + 200 OT + 300 + 500): about 100 s on an idle 2-core
    # machine; the bound leaves room for a loaded one.
    assert wall < 240, f"the failing relaxation took {wall:.0f} s"
