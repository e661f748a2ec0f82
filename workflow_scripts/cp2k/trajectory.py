"""All attempts of one CP2K calculation -> its frames, nothing lost or doubled (the labelled
ASE frames and data sets: :mod:`.labelled_frames`; this module's CLI writes them).

A calculation directory holds ``run_000``, ``run_001``, ... (see :mod:`.run`). Each attempt's
``attempt.json`` says at which global ionic step it started (``start_step``). Stitching goes
through the attempts in order and, for each, first drops every earlier frame with
``step >= start_step`` (a restart re-evaluates its starting geometry, and after an SCF
correction the branch that followed unconverged forces is discarded), then adds its own
frames. The result has each step exactly once; a gap raises an error.

Frames whose SCF did not converge are excluded and counted; they never reach a data set.

CLI::

    python -m workflow_scripts.cp2k.trajectory relax --workdir cp2k/relax/H/D \
        --structure structures/H/D.json --dataset Perovs-Dopants --out T.extxyz
    python -m workflow_scripts.cp2k.trajectory atoms --workdirs cp2k/atoms/Ti ... \
        --dataset Perovs-Dopants --out dataset/isolated_atoms.extxyz
    python -m workflow_scripts.cp2k.trajectory mptrj-labels --structures S.extxyz \
        --batches cp2k/mptrj_sp/batch_0.json ... \
        --out reference/MPtrj/cp2k_subset.extxyz
    (or --workdirs mptrj_sp/0 ...: the single points' folders, in index order)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workflow_scripts.cp2k.geometry_files import read_cells, read_input_geometry, read_positions
from workflow_scripts.cp2k.parse import Cp2kOutput, Cp2kParseError, read_output

RUN_PREFIX = "run_"
ATTEMPT_FILE = "attempt.json"
RESULT_FILE = "attempt_result.json"
INPUT_NAME = "cp2k.inp"
OUTPUT_NAME = "cp2k.out"
POSITIONS_NAME = "cp2k-pos-1.xyz"
CELLS_NAME = "cp2k-1.cell"  # written by a cell relaxation (MOTION/PRINT/CELL)
OPTIMISATION_TASKS = ("relax", "cell_relax")
# pos-1.xyz prints energies with 10 decimals; the .out with 15.
_ENERGY_MATCH_HARTREE = 1e-9


@dataclass
class Frame:
    """One force evaluation with its geometry, in CP2K units."""

    step: int  # global ionic step (0 = initial geometry of the calculation)
    run: str
    evaluation: int  # index in that attempt's .out
    positions: np.ndarray  # Å
    energy: float  # Hartree
    forces: np.ndarray  # Hartree/bohr
    stress: np.ndarray | None  # GPa, CP2K sign
    scf_converged: bool
    cell: np.ndarray | None = None  # Å; set when the cell changes (a cell relaxation)


@dataclass
class Attempt:
    run_dir: Path
    record: dict
    result: dict | None
    output: Cp2kOutput
    symbols: list[str]
    cell: np.ndarray
    frames: list[Frame]

    @property
    def start_step(self) -> int:
        return int(self.record["start_step"])

    @property
    def finished(self) -> bool:
        """CP2K reached its normal end for this task."""
        if not self.output.ended or self.output.aborted or self.output.walltime_exceeded:
            return False
        if self.record["task"] in OPTIMISATION_TASKS:
            return self.output.geo_opt in ("converged", "max_iter")
        return len(self.output.evaluations) >= 1

    @property
    def first_unconverged(self) -> Frame | None:
        return next((f for f in self.frames if not f.scf_converged), None)


def attempt_dirs(workdir: Path | str) -> list[Path]:
    """``run_NNN`` folders with an ``attempt.json``, in order."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        return []
    return sorted(
        p for p in workdir.glob(f"{RUN_PREFIX}[0-9][0-9][0-9]") if (p / ATTEMPT_FILE).is_file()
    )


def read_attempt(run_dir: Path | str, strict: bool | None = None) -> Attempt:
    """Frames of one attempt. ``strict`` (default: the attempt's CP2K exited with 0) requires a
    complete output; otherwise an unfinished last evaluation is left out."""
    run_dir = Path(run_dir)
    record = json.loads((run_dir / ATTEMPT_FILE).read_text())
    result_path = run_dir / RESULT_FILE
    result = json.loads(result_path.read_text()) if result_path.is_file() else None
    if strict is None:
        strict = bool(result and result.get("returncode") == 0)
    geometry = read_input_geometry(run_dir / INPUT_NAME)
    n_atoms = len(geometry.symbols)
    if not (run_dir / OUTPUT_NAME).is_file() and not strict:
        output = Cp2kOutput(path=run_dir / OUTPUT_NAME, version=None)
    else:
        output = read_output(
            run_dir / OUTPUT_NAME, n_atoms, bool(record["stress"]), allow_incomplete=not strict
        )
    positions = {0: geometry.positions}
    if record["task"] in OPTIMISATION_TASKS:
        for frame in read_positions(run_dir / POSITIONS_NAME, n_atoms, allow_incomplete=True):
            positions[frame.step] = (frame.positions, frame.energy)
    cells = {}
    if record["task"] == "cell_relax":
        cells = {0: geometry.cell, **read_cells(run_dir / CELLS_NAME, allow_incomplete=True)}
    frames = _evaluation_frames(run_dir, record, output, positions, cells, strict)
    return Attempt(run_dir, record, result, output, geometry.symbols, geometry.cell, frames)


def _evaluation_frames(run_dir: Path, record: dict, output, positions, cells, strict: bool):
    """One Frame per complete force evaluation of the ``.out``, with its trajectory positions
    (and cell); a missing one raises when ``strict``, else ends the attempt's frames."""
    frames = []
    for evaluation in output.evaluations:
        entry = positions.get(evaluation.index)
        if entry is None:
            if strict:
                raise Cp2kParseError(
                    f"{run_dir / POSITIONS_NAME}: no positions for force evaluation "
                    f"{evaluation.index} (frame 'i = {evaluation.index}' missing)"
                )
            break  # killed between the .out and the trajectory file: not complete
        if evaluation.index > 0:
            entry, energy = entry
            if abs(energy - evaluation.energy) > _ENERGY_MATCH_HARTREE:
                raise Cp2kParseError(
                    f"{run_dir / POSITIONS_NAME}: frame i = {evaluation.index} has E = {energy} "
                    f"but {run_dir / OUTPUT_NAME} evaluation {evaluation.index} has "
                    f"{evaluation.energy} Hartree"
                )
        if cells and evaluation.index not in cells:
            if strict:
                raise Cp2kParseError(
                    f"{run_dir / CELLS_NAME}: no cell for force evaluation {evaluation.index}"
                )
            break  # killed before the cell of this step was written: not complete
        frames.append(
            Frame(
                step=int(record["start_step"]) + evaluation.index,
                run=run_dir.name,
                evaluation=evaluation.index,
                positions=np.asarray(entry, dtype=float),
                energy=evaluation.energy,
                forces=evaluation.forces,
                stress=evaluation.stress,
                scf_converged=evaluation.scf_converged,
                cell=cells.get(evaluation.index),
            )
        )
    return frames


@dataclass
class Stitched:
    frames: list[Frame]  # every step once, SCF-converged only, in step order
    attempts: list[Attempt]
    n_evaluations: int  # complete force evaluations over all attempts
    n_unconverged: int  # steps excluded because their SCF did not converge
    n_superseded: int  # evaluations replaced by a later attempt
    symbols: list[str] = field(default_factory=list)
    cell: np.ndarray | None = None


def stitch(workdir: Path | str, complete: bool = True) -> Stitched:
    """Combine all attempts (see the module docstring); the last one must be complete unless
    ``complete`` is False (a job that failed for good, :mod:`.failures`, or its check)."""
    dirs = attempt_dirs(workdir)
    if not dirs:
        raise Cp2kParseError(f"{workdir}: no CP2K attempts (run_NNN/{ATTEMPT_FILE}) found")
    strict_last = True if complete else None
    attempts = [read_attempt(d, strict=strict_last if d == dirs[-1] else None) for d in dirs]
    by_step: dict[int, Frame] = {}
    superseded = 0
    for attempt in attempts:
        for step in [s for s in by_step if s >= attempt.start_step]:
            del by_step[step]
            superseded += 1
        for frame in attempt.frames:
            by_step[frame.step] = frame
    steps = sorted(by_step)
    if steps != list(range(len(steps))):
        missing = sorted(set(range(steps[-1] + 1)) - set(steps)) if steps else [0]
        raise Cp2kParseError(f"{workdir}: ionic steps {missing} missing from every attempt")
    kept = [by_step[s] for s in steps if by_step[s].scf_converged]
    return Stitched(
        frames=kept,
        attempts=attempts,
        n_evaluations=sum(len(a.frames) for a in attempts),
        n_unconverged=len(steps) - len(kept),
        n_superseded=superseded,
        symbols=attempts[-1].symbols,
        cell=attempts[-1].cell,
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.cp2k.trajectory")
    sub = parser.add_subparsers(dest="command", required=True)
    relax = sub.add_parser("relax", help="one relaxation -> trajectory extxyz")
    relax.add_argument("--workdir", required=True)
    relax.add_argument("--structure", required=True, help="the structure JSON (its properties)")
    relax.add_argument("--dataset", required=True, help="data set name (dataset, config_type)")
    relax.add_argument("--summary", help="the job's summary.json (default: in --workdir)")
    relax.add_argument("--out", required=True)
    atoms = sub.add_parser("atoms", help="isolated atoms -> one extxyz")
    atoms.add_argument("--workdirs", nargs="+", required=True)
    atoms.add_argument("--dataset", required=True)
    atoms.add_argument("--out", required=True)
    mptrj = sub.add_parser("mptrj-labels", help="CP2K single points of the MPtrj subset")
    mptrj.add_argument("--structures", required=True)
    mptrj.add_argument("--workdirs", nargs="*", default=[], help="folders, in index order")
    mptrj.add_argument(
        "--batches", nargs="*", default=[], help="the single-point batches' listings"
    )
    mptrj.add_argument("--out", required=True)
    return parser.parse_args(argv)


def run_relax(args: argparse.Namespace) -> None:
    from workflow_scripts.cp2k.labelled_frames import relaxation_frames, write_extxyz

    properties = json.loads(Path(args.structure).read_text()).get("properties") or {}
    summary_path = Path(args.summary or Path(args.workdir) / "summary.json")
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    frames, stitched = relaxation_frames(args.workdir, properties, args.dataset, summary)
    write_extxyz(frames, args.out)
    if summary and summary.get("status") == "failed":
        print(
            f"{args.out}: the relaxation FAILED ({summary['failure_kind']}: "
            f"{summary['failure_reason']}); its {len(frames)} converged frame(s) are kept "
            "with relaxation_status=failed"
        )
    if stitched is not None:
        print(
            f"{args.out}: {len(frames)} frames from {len(stitched.attempts)} attempt(s); "
            f"{stitched.n_evaluations} force evaluations, {stitched.n_unconverged} excluded "
            f"(SCF not converged), {stitched.n_superseded} superseded by a restart"
        )


def run_atoms(args: argparse.Namespace) -> None:
    from workflow_scripts.cp2k.failures import failed_summary_of
    from workflow_scripts.cp2k.labelled_frames import isolated_atom_frame, write_extxyz

    failed = {w: failed_summary_of(w) for w in args.workdirs}
    frames = [isolated_atom_frame(w, args.dataset) for w in args.workdirs if not failed[w]]
    write_extxyz(frames, args.out)
    for frame in frames:
        print(f"{frame.get_chemical_formula()}: E0 = {frame.info['REF_energy']:.8f} eV")
    for workdir, summary in failed.items():
        if summary:
            print(
                f"{Path(workdir).name}: isolated atom FAILED ({summary['failure_kind']}: "
                f"{summary['failure_reason']}); no E0, so the dataset split leaves out "
                "every frame with this element"
            )


def run_mptrj_labels(args: argparse.Namespace) -> None:
    from workflow_scripts.cp2k.batch import listed_summaries
    from workflow_scripts.cp2k.failures import failed_summary_of, read_summary
    from workflow_scripts.cp2k.labelled_frames import mptrj_labelled_frames, write_extxyz

    workdirs = [Path(w) for w in args.workdirs]
    workdirs += [path.parent for path in listed_summaries(args.batches)]
    frames, skipped = mptrj_labelled_frames(args.structures, workdirs)
    write_extxyz(frames, args.out)
    failed = [i for i in skipped if failed_summary_of(workdirs[i])]
    never = [i for i in skipped if i not in failed]
    print(f"{args.out}: {len(frames)} frames; SCF never converged for indices {never}")
    for index in failed:
        summary = read_summary(workdirs[index])
        print(
            f"single point {index} FAILED ({summary['failure_kind']}: "
            f"{summary['failure_reason']}): left out"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    {"relax": run_relax, "atoms": run_atoms, "mptrj-labels": run_mptrj_labels}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
