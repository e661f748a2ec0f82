"""MPtrj single points in batches (workflow_scripts.cp2k.batch), without CP2K: the
per-structure runner is replaced by one that writes the summary a real run would."""

import csv
import json

import numpy as np
import pytest
from ase import Atoms
from ase.io import write

from workflow_scripts.cp2k import batch, failures
from workflow_scripts.cp2k.attempts import structure_hash
from workflow_scripts.cp2k.batch import BatchStopped, batch_indices, n_batches, run_batch
from workflow_scripts.cp2k.inputs import dft_settings, settings_hash

SETTINGS = dft_settings({"command": "no-cp2k-here"})


def frames(n=4):
    rng = np.random.default_rng(0)
    return {
        i: Atoms("SrTiO3", positions=rng.random((5, 3)) * 3.9, cell=[3.9] * 3, pbc=True)
        for i in range(n)
    }


def summary(atoms, status="done", settings=SETTINGS, **fields):
    return {
        "task": "single_point",
        "status": status,
        "settings_hash": settings_hash(settings),
        "structure_hash": structure_hash(atoms),
        "n_frames": 0 if status == "failed" else 1,
        **fields,
    }


class FakeRunner:
    """Stands in for run.run_task: per index, 'done', 'failed' (for good), 'transient' or
    'mistake'; writes the summary as run_task would and returns its exit code."""

    def __init__(self, outcomes):
        self.outcomes = outcomes
        self.calls = []
        self.deadlines = []

    def __call__(self, index, atoms, workdir, summary_path, settings, threads, deadline):
        self.calls.append(index)
        self.deadlines.append(deadline)
        outcome = self.outcomes.get(index, "done")
        if outcome in ("transient", "mistake"):
            return {"transient": 1, "mistake": 2}[outcome]
        fields = {}
        if outcome == "failed":
            fields = {"failure_kind": "scf_exhausted", "failure_reason": "SCF not converged"}
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(summary(atoms, outcome, settings, **fields)))
        return 0


@pytest.fixture
def runner(monkeypatch):
    def install(outcomes=None):
        fake = FakeRunner(outcomes or {})
        monkeypatch.setattr(batch, "run_point", fake)
        return fake

    return install


def test_batches_cover_the_subset_once():
    assert n_batches(2000, 20) == 100 and n_batches(12, 6) == 2 and n_batches(0, 20) == 0
    assert batch_indices(1, 45, 20) == list(range(20, 40))
    assert batch_indices(2, 45, 20) == list(range(40, 45))
    covered = [i for b in range(n_batches(45, 20)) for i in batch_indices(b, 45, 20)]
    assert covered == list(range(45))
    with pytest.raises(ValueError, match="no batch 3"):
        batch_indices(3, 45, 20)


def test_done_structures_are_skipped_a_physical_failure_is_written_and_the_batch_goes_on(
    tmp_path, runner
):
    structures = frames(4)
    done = tmp_path / "0" / "summary.json"
    done.parent.mkdir()
    done.write_text(json.dumps(summary(structures[0])))
    failed_before = tmp_path / "3" / "summary.json"
    failed_before.parent.mkdir()
    failed_before.write_text(json.dumps(summary(structures[3], "failed")))
    fake = runner({1: "failed"})

    listing = run_batch(structures, tmp_path, SETTINGS)

    assert fake.calls == [1, 2]  # 0 done and 3 failed before: never run again
    assert [(p["index"], p["status"], p["ran"]) for p in listing] == [
        (0, "done", False),
        (1, "failed", True),
        (2, "done", True),
        (3, "failed", False),
    ]
    assert [p["summary"] for p in listing] == [
        str(tmp_path / f"{i}" / "summary.json") for i in range(4)
    ]
    assert json.loads((tmp_path / "1" / "summary.json").read_text())["status"] == "failed"
    # A rerun (the batch listing lost, the job retried) computes nothing.
    fake = runner()
    assert run_batch(structures, tmp_path, SETTINGS) == [{**p, "ran": False} for p in listing]
    assert fake.calls == []


def test_a_summary_of_other_settings_or_another_structure_is_redone(tmp_path, runner):
    structures = frames(2)
    other = dft_settings({"command": "no-cp2k-here", "cutoff": 400})
    for index, settings in ((0, other), (1, SETTINGS)):
        path = tmp_path / str(index) / "summary.json"
        path.parent.mkdir()
        atoms = structures[index] if index == 0 else frames(3)[2]  # 1: another structure
        path.write_text(json.dumps(summary(atoms, settings=settings)))
    fake = runner()
    run_batch(structures, tmp_path, SETTINGS)
    assert fake.calls == [0, 1]
    for index in (0, 1):
        written = json.loads((tmp_path / str(index) / "summary.json").read_text())
        assert written["settings_hash"] == settings_hash(SETTINGS)
        assert written["structure_hash"] == structure_hash(structures[index])


def test_a_transient_stop_fails_the_batch_after_the_others_ran(tmp_path, runner):
    structures = frames(3)
    fake = runner({1: "transient"})
    with pytest.raises(BatchStopped, match=r"1 of 3 structures stopped .*indices \[1\]") as err:
        run_batch(structures, tmp_path, SETTINGS)
    assert err.value.exit_code == 1
    assert fake.calls == [0, 1, 2]
    assert not (tmp_path / "1" / "summary.json").exists()
    # The retry: only the stopped structure runs.
    fake = runner()
    assert [p["ran"] for p in run_batch(structures, tmp_path, SETTINGS)] == [False, True, False]
    assert fake.calls == [1]


def test_an_input_mistake_stops_the_batch_at_once(tmp_path, runner):
    fake = runner({0: "mistake"})
    with pytest.raises(BatchStopped) as err:
        run_batch(frames(3), tmp_path, SETTINGS)
    assert err.value.exit_code == 2 and fake.calls == [0]


def test_structures_share_the_wall_time_left(tmp_path, runner):
    now = [1000.0]
    fake = runner()
    run_batch(frames(4), tmp_path, SETTINGS, deadline=1000.0 + 4000, clock=lambda: now[0])
    # the clock stood still: 4000 s over 4, then the rest over 3, 2, 1
    assert fake.deadlines == pytest.approx([2000.0, 1000 + 4000 / 3, 3000.0, 5000.0])
    # Less than a minute left: the rest are not started, and the batch is retried.
    for index in (2, 3):
        (tmp_path / str(index) / "summary.json").unlink()
    fake = runner()
    with pytest.raises(BatchStopped, match=r"indices \[2, 3\]"):
        run_batch(frames(4), tmp_path, SETTINGS, deadline=1030.0, clock=lambda: now[0])
    assert fake.calls == []


def test_cli_lists_the_batch_and_the_failures_check_reads_its_summaries(tmp_path, runner):
    structures = tmp_path / "cp2k_subset_structures.extxyz"
    subset = frames(5)
    for atoms in subset.values():
        atoms.arrays["REF_magmom"] = np.zeros(len(atoms))
    write(structures, list(subset.values()), format="extxyz")
    settings = tmp_path / "dft.json"
    settings.write_text(json.dumps(SETTINGS))
    root = tmp_path / "results" / "cp2k" / "mptrj_sp"
    fake = runner({3: "failed"})
    listings = []
    for number in range(n_batches(5, 3)):
        listing = root / f"batch_{number}.json"
        indices = [str(i) for i in batch_indices(number, 5, 3)]
        argv = ["single-points", "--structures", str(structures), "--indices", *indices]
        argv += ["--root", str(root), "--listing", str(listing), "--settings", str(settings)]
        assert batch.main(argv) == 0
        listings.append(listing)
    assert fake.calls == [0, 1, 2, 3, 4]
    assert json.loads(listings[1].read_text())["indices"] == [3, 4]
    assert batch.listed_summaries(listings[::-1]) == [
        root / str(i) / "summary.json" for i in range(5)
    ]
    out = tmp_path / "failures" / "single_point.csv"
    check = ["check", "--job", "single_point", "--out", str(out)]
    assert failures.main([*check, "--max-failed-fraction", "0.2", *map(str, listings)]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert (row["job"], row["index"], row["failure_kind"]) == ("single_point", "3", "scf_exhausted")
    assert failures.main([*check, "--max-failed-fraction", "0.1", *map(str, listings)]) == 1
