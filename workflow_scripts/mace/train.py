"""Train one variant of the study with ``mace_run_train`` and record what mace really did.

A variant (config section ``variants``) names a method — ``standard`` (single-head
finetuning), ``multihead`` (pretraining head + new head, with a replay set), ``scratch`` —
and its training data; hyperparameters come from ``mace.hyperparameters`` unless the variant
overrides them. mace-torch 0.3.16 defaults that would silently change the request are set
explicitly here:

* ``--multiheads_finetuning`` defaults to True: standard and scratch pass False.
* multihead mode replaces the learning rate with 1e-4 and turns EMA on unless
  ``--force_mh_ft_lr=True``: always passed; ``--ema`` only when the config asks for it.
* multihead with a model file and no ``--pt_train_file`` falls back to standard finetuning:
  the replay file is always passed; ``--pt_train_file=mp`` (a download) never is.
* ``--E0s=average`` is rejected in multihead mode; IsolatedAtom frames in the training file
  override ``--E0s``: the training file holds IsolatedAtom frames exactly when the E0s are
  meant to come from them.
* ``--plot=True`` (default) fails with matplotlib 3.11: False.

After training, :func:`verify_training` compares the request with what mace's log,
checkpoint and model say (learning rate, heads, mode, replay file, E0s) and fails loudly on
any difference; the result is written to ``paths.MODEL_INFO``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from workflow_scripts.files import sha256_file, write_json
from workflow_scripts.mace import settings
from workflow_scripts.mace.settings import MPTRJ_CP2K, OMAT24, PEROVS_DOPANTS
from workflow_scripts.mace.train_check import TrainingMismatch, verify_training
from workflow_scripts.mace.train_command import (
    TrainingFiles,
    build_command,
    resolve_hyperparameters,
)
from workflow_scripts.reference.extxyz import ISOLATED_ATOM


def run_mace_train(arguments: list[str]) -> None:
    """Run ``mace_run_train`` in this process, leaving logging and dtype as they were."""
    settings.import_mace()
    import logging

    import torch
    from mace.cli.run_train import run
    from mace.tools import build_default_arg_parser

    args = build_default_arg_parser().parse_args(arguments)
    root = logging.getLogger()
    handlers, filters, level = list(root.handlers), list(root.filters), root.level
    dtype = torch.get_default_dtype()
    try:
        run(args)
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.filters = filters
        root.setLevel(level)
        torch.set_default_dtype(dtype)


def _read_frames(path: Path) -> list:
    import ase.io

    return ase.io.read(str(path), index=":")


def _elements(frames) -> set[str]:
    return {symbol for atoms in frames for symbol in atoms.get_chemical_symbols()}


def _is_isolated_atom(atoms) -> bool:
    return atoms.info.get("config_type") == ISOLATED_ATOM


def isolated_atom_energies(frames) -> dict[str, float]:
    """REF_energy of each IsolatedAtom frame, by element."""
    return {
        atoms.get_chemical_symbols()[0]: float(atoms.info["REF_energy"])
        for atoms in frames
        if _is_isolated_atom(atoms)
    }


def prepare_training_file(
    frames_path: Path,
    out_path: Path,
    e0s: str,
    *,
    isolated_atoms_path: Path | None = None,
    valid_path: Path | None = None,
) -> Path:
    """The file given to ``--train_file``: IsolatedAtom frames present iff ``e0s`` uses them.

    Returns ``frames_path`` itself when it already fits, else writes ``out_path``.
    """
    import ase.io

    frames = _read_frames(frames_path)
    data = [atoms for atoms in frames if not _is_isolated_atom(atoms)]
    present = [atoms for atoms in frames if _is_isolated_atom(atoms)]
    if e0s != "isolated_atoms":
        if not present:
            return frames_path
        ase.io.write(str(out_path), data, format="extxyz")
        return out_path
    needed = _elements(data) | (_elements(_read_frames(valid_path)) if valid_path else set())
    isolated = present
    if not present:
        if isolated_atoms_path is None:
            raise ValueError(f"{frames_path} has no IsolatedAtom frames and none were given")
        isolated = [a for a in _read_frames(isolated_atoms_path) if _is_isolated_atom(a)]
    missing = sorted(needed - set(isolated_atom_energies(isolated)))
    if missing:
        raise ValueError(
            f"no isolated-atom energy for {missing} (needed by e0s: isolated_atoms for "
            f"{frames_path}); add these elements to the isolated-atom calculations or give "
            "the variant another e0s"
        )
    if present:
        return frames_path
    ase.io.write(str(out_path), isolated + data, format="extxyz")
    return out_path


def foundation_with_e0s(foundation: Path, e0s: dict[str, float], out: Path) -> Path:
    """A copy of the foundation model whose E0s are ``e0s`` (0 eV for other elements).

    mace 0.3.16's standard finetuning copies every foundation tensor of matching shape into
    the new model (``load_foundations_elements``), E0s included: the isolated-atom E0s it
    logs are silently replaced by the foundation's. Starting from this copy, the copied E0s
    are the isolated-atom ones. Other elements get 0 eV, as mace pads them.
    """
    import torch
    from ase.data import chemical_symbols

    model = settings.load_model(foundation)
    buffer = model.atomic_energies_fn.atomic_energies
    values = [e0s.get(chemical_symbols[int(z)], 0.0) for z in model.atomic_numbers]
    buffer.copy_(torch.tensor(values, dtype=buffer.dtype).reshape(buffer.shape))
    torch.save(model, out)
    return out


def _prepare_work_dir(work_dir: Path, arguments: list[str], files: TrainingFiles) -> bool:
    """Fresh work dir unless it holds an unfinished run of the same command on the same data.

    Returns True when mace should resume from the latest checkpoint.
    """
    fingerprint = {
        "arguments": arguments,
        "inputs": {str(path): sha256_file(path) for path in vars(files).values() if path},
    }
    record = work_dir / "fingerprint.json"
    if record.is_file() and json.loads(record.read_text()) == fingerprint:
        return any((work_dir / "checkpoints").glob("*_epoch-*.pt"))
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    record.write_text(json.dumps(fingerprint))
    return False


def prepare_files(method: str, hyper: dict, data_files: dict, data_dir: Path) -> TrainingFiles:
    """The run's data files in ``data_dir``: the training file with or without its E0 frames
    and, for a standard finetune refit on CP2K isolated atoms, the foundation with those E0s."""
    data_dir.mkdir(parents=True, exist_ok=True)
    train_file = prepare_training_file(
        Path(data_files["train"]),
        data_dir / "train.extxyz",
        hyper["e0s"],
        isolated_atoms_path=data_files.get("isolated_atoms"),
        valid_path=data_files.get("valid"),
    )
    foundation = data_files.get("foundation") if method != "scratch" else None
    if method == "standard" and hyper["e0s"] == "isolated_atoms":
        isolated = isolated_atom_energies(_read_frames(train_file))
        foundation = foundation_with_e0s(foundation, isolated, data_dir / "foundation_e0s.model")
    return TrainingFiles(
        train=train_file,
        valid=data_files.get("valid"),
        replay=data_files.get("replay") if method == "multihead" else None,
        foundation=foundation,
    )


def train_variant(
    name: str,
    variant: dict,
    mace_section: dict,
    data_files: dict[str, Path],
    *,
    out_model: Path,
    threads: int,
    foundation_info: dict | None = None,
) -> dict:
    """Train one variant, verify it and write ``out_model`` and the JSON record beside it.

    ``data_files`` maps ``train``, ``valid`` (optional), ``replay`` (multihead),
    ``foundation`` (finetuning) and ``isolated_atoms`` (E0s, when the training file has
    none) to paths.
    """
    settings.use_threads(threads)
    method = variant["method"]
    hyper = resolve_hyperparameters(variant, mace_section["hyperparameters"])
    device = settings.resolve_device(mace_section["device"])
    # <variant>.work/data holds the prepared training file, <variant>.work/mace mace's own
    # outputs (logs, checkpoints); neither is a Snakemake output, so a killed run keeps them.
    data_dir = out_model.parent / f"{name}.work" / "data"
    work_dir = out_model.parent / f"{name}.work" / "mace"
    files = prepare_files(method, hyper, data_files, data_dir)
    arguments = build_command(
        name,
        method,
        files,
        hyper,
        work_dir=work_dir,
        device=device,
        dtype=mace_section["default_dtype"],
        scratch_architecture=mace_section.get("scratch_model"),
    )
    resume = _prepare_work_dir(work_dir, arguments, files)
    print("mace_run_train " + " ".join(arguments), flush=True)
    started = time.perf_counter()
    run_mace_train(arguments + (["--restart_latest"] if resume else []))
    wall_time = time.perf_counter() - started
    return record_training(
        name,
        variant,
        hyper,
        files,
        arguments,
        out_model=out_model,
        work_dir=work_dir,
        wall_time=wall_time,
        device=device,
        threads=threads,
        foundation_info=foundation_info,
    )


def record_training(
    name: str,
    variant: dict,
    hyper: dict,
    files: TrainingFiles,
    arguments: list[str],
    *,
    out_model: Path,
    work_dir: Path,
    wall_time: float,
    device: str,
    threads: int,
    foundation_info: dict | None,
) -> dict:
    """Read back, verify, copy the model to ``out_model`` and write its JSON record."""
    from workflow_scripts.mace.readback import output_paths, read_training_outputs

    outputs = read_training_outputs(work_dir, name, hyper["seed"])
    isolated = isolated_atom_energies(_read_frames(files.train))
    problems = verify_training(variant["method"], hyper, files, outputs, isolated)
    if problems:
        raise TrainingMismatch(f"variant {name}: " + "; ".join(problems))
    shutil.copyfile(output_paths(work_dir, name, hyper["seed"])["model"], out_model)
    record = {
        "variant": name,
        "method": variant["method"],
        "data": variant.get("data"),
        "foundation": foundation_info,
        "requested": {key: value for key, value in hyper.items()},
        "files": {key: str(value) for key, value in vars(files).items() if value is not None},
        "command": ["mace_run_train", *arguments],
        "used": {
            "lr": outputs["log"]["lr"],
            "param_group_lrs": outputs["log"]["param_group_lrs"],
            "final_lrs": (outputs["checkpoint"] or {}).get("lrs"),
            "heads": outputs["model"]["heads"],
            "multihead_finetuning": outputs["log"]["multihead_finetuning"],
            "training_files": outputs["debug"]["training_files"],
            "loss": outputs["log"]["loss_function"],
            "loss_weights": outputs["log"]["loss_weights"],
            "ema_decay": outputs["log"]["ema_decay"],
            "weight_decay": outputs["log"].get("weight_decay"),
            "e0s": outputs["log"]["e0s"],
            "epochs_completed": outputs["log"]["epochs_completed"],
            "pretraining_configs": outputs["log"]["pretraining_configs"],
            "mace_version": outputs["log"]["mace_version"],
        },
        "model": outputs["model"],
        "model_sha256": sha256_file(out_model),
        "device": device,
        "threads": threads,
        "wall_time_s": round(wall_time, 2),
        "mace_outputs": outputs["paths"],
    }
    write_json(out_model.with_suffix(".json"), record, indent=2, sort_keys=True, newline=True)
    return record


def data_files_for(
    variant: dict,
    *,
    perovs_train: Path | None,
    perovs_valid: Path | None,
    mptrj_cp2k: Path | None,
    omat24_train: Path | None,
    replay: Path | None,
    isolated_atoms: Path | None,
    foundation: Path | None,
) -> dict[str, Path]:
    """Map a variant's ``data`` key to the files of the data contract."""
    data = variant["data"]
    if data == PEROVS_DOPANTS:
        files = {"train": perovs_train, "valid": perovs_valid}
    elif data == MPTRJ_CP2K:
        files = {"train": mptrj_cp2k}
    elif data == OMAT24:
        files = {"train": omat24_train}
    else:
        raise ValueError(f"unknown training data {data!r}")
    files.update(replay=replay, isolated_atoms=isolated_atoms, foundation=foundation)
    missing = [key for key in ("train",) if files[key] is None]
    if variant["method"] == "multihead" and replay is None:
        missing.append("replay")
    if variant["method"] != "scratch" and foundation is None:
        missing.append("foundation")
    if missing:
        raise ValueError(f"variant needs {missing} for data {data!r}")
    return {key: Path(value) for key, value in files.items() if value is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.mace.train")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train one variant")
    run.add_argument("--variant", required=True, help="variant name (key of `variants`)")
    run.add_argument("--variants-config", required=True, type=Path, help="variants.json")
    run.add_argument("--mace-config", required=True, type=Path, help="mace.json")
    run.add_argument("--foundation", type=Path, help="foundation .model (finetuning)")
    run.add_argument("--foundation-info", type=Path, help="foundation.json")
    run.add_argument("--perovs-train", type=Path)
    run.add_argument("--perovs-valid", type=Path)
    run.add_argument("--mptrj-cp2k", type=Path, help="CP2K-recomputed MPtrj frames")
    run.add_argument("--omat24-train", type=Path)
    run.add_argument("--replay", type=Path, help="FPS replay set (multihead)")
    run.add_argument("--isolated-atoms", type=Path, help="IsolatedAtom frames (E0s)")
    run.add_argument("--out", required=True, type=Path, help="the variant's .model file")
    run.add_argument("--threads", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    variants = settings.load_section(args.variants_config)
    if args.variant not in variants:
        raise SystemExit(f"variant {args.variant!r} not in {args.variants_config}")
    variant = variants[args.variant]
    if variant["method"] == "zero_shot":
        raise SystemExit(f"variant {args.variant!r} is zero-shot: nothing to train")
    data_files = data_files_for(
        variant,
        perovs_train=args.perovs_train,
        perovs_valid=args.perovs_valid,
        mptrj_cp2k=args.mptrj_cp2k,
        omat24_train=args.omat24_train,
        replay=args.replay,
        isolated_atoms=args.isolated_atoms,
        foundation=args.foundation,
    )
    foundation_info = settings.load_section(args.foundation_info) if args.foundation_info else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = train_variant(
        args.variant,
        variant,
        settings.load_section(args.mace_config),
        data_files,
        out_model=args.out,
        threads=args.threads,
        foundation_info=foundation_info,
    )
    print(json.dumps({"variant": args.variant, "used": record["used"]}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
