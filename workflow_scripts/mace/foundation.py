"""The foundation model every finetuning starts from (``paths.FOUNDATION_MODEL``).

``mace.foundation_model`` in config is one of

* a mace-torch model name (``medium-0b3``, ``medium-mpa-0``, ...): mace's own loader finds it
  in its cache (``$XDG_CACHE_HOME/mace``) or downloads it — run this once on a machine with
  internet, compute nodes then find it cached;
* a path to a ``.model`` file;
* an ``https://`` address of a ``.model`` file (e.g. a checkpoint of a mace-mp release that
  mace-torch has no name for): downloaded once into mace's cache, like a named model;
* ``stand-in``: a tiny MACE pretrained here on the MPtrj pool (the offline demo), named
  ``MACE-stand-in-foundation`` in every table.

The model is copied to one local file so that ``mace_run_train`` always gets a path, never a
name (a name would switch mace to its own replay download). ``foundation.json`` beside it
records the name shown in tables, the source and, for the stand-in, how it was trained.
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
from workflow_scripts.mace.settings import STANDIN_FOUNDATION, STANDIN_FOUNDATION_NAME


def mace_model_names() -> list[str]:
    """Names mace-torch's ``mace_mp`` loader knows."""
    settings.import_mace()
    from mace.calculators.foundations_models import mace_mp_names

    return [name for name in mace_mp_names if name is not None]


def display_name(spec: str, configured: str | None) -> str:
    if configured:
        return configured
    if spec == STANDIN_FOUNDATION:
        return STANDIN_FOUNDATION_NAME
    if spec.endswith(".model"):
        return Path(spec.rsplit("/", 1)[-1]).stem
    return f"MACE-MP-{spec}"


def fetch_named_model(name: str) -> Path:
    """Path of a mace-torch named model in mace's cache (downloaded there if absent)."""
    settings.import_mace()
    from mace.calculators.foundations_models import download_mace_mp_checkpoint

    return Path(download_mace_mp_checkpoint(name))


def fetch_url_model(url: str) -> Path:
    """A ``.model`` file from its address, kept in mace's cache (``$XDG_CACHE_HOME/mace``)."""
    import os
    import urllib.request

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mace"
    target = cache / url.rstrip("/").rsplit("/", 1)[-1]
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.part")
        try:
            urllib.request.urlretrieve(url, partial)  # noqa: S310 (https address from config)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def aligned_isolated_atom_e0s(
    pool: Path, isolated_atoms: Path, alignment: Path
) -> dict[int, float]:
    """E0 (eV) of every element of ``pool`` on its labeller's scale: the CP2K isolated atom
    plus the element's code offset delta_Z (E_VASP-scale = E_CP2K + delta_Z per atom). An
    element without an isolated atom or with an undetermined offset is an error naming it."""
    from ase.data import atomic_numbers
    from ase.io import read

    from workflow_scripts.analysis.alignment_fit import load_fit

    elements = sorted({s for atoms in read(pool, ":") for s in atoms.get_chemical_symbols()})
    atoms_e = {a.get_chemical_symbols()[0]: a.info["REF_energy"] for a in read(isolated_atoms, ":")}
    fit = load_fit(alignment)
    missing = [el for el in elements if el not in atoms_e]
    undetermined = [el for el in elements if not fit.determined(el)]
    if missing or undetermined:
        raise ValueError(
            f"stand-in E0s aligned_isolated_atoms: no CP2K isolated atom for {missing} in "
            f"{isolated_atoms}, offset not determined for {undetermined} in {alignment}; use "
            "mace.standin_foundation.e0s: average"
        )
    return {atomic_numbers[el]: float(atoms_e[el] + fit.shift([el])) for el in elements}


def standin_command(
    pool: Path, work_dir: Path, mace_section: dict, device: str, e0s: dict | None = None
) -> list[str]:
    """``mace_run_train`` arguments that pretrain the stand-in foundation model."""
    from workflow_scripts.mace.train_command import (
        TrainingFiles,
        architecture_arguments,
        common_arguments,
        data_arguments,
    )

    standin = mace_section["standin_foundation"]
    hyper = dict(mace_section["hyperparameters"])
    hyper.update({key: standin[key] for key in ("lr", "max_num_epochs", "batch_size", "seed")})
    hyper["valid_fraction"] = standin["valid_fraction"]
    hyper["loss"] = standin["loss"]
    arguments = common_arguments(
        "foundation", work_dir, hyper, device, mace_section["default_dtype"]
    )
    arguments += data_arguments(TrainingFiles(train=pool), hyper)
    arguments += architecture_arguments(standin)
    # The pool has no isolated atoms (MPtrj neither): E0s by least squares, as for MACE-MP-0,
    # or given (isolated atoms on the labeller's scale, as for MACE-MP-0b3).
    # mace reads a dict literal with integer keys (ast.literal_eval)
    e0s_flag = "average" if e0s is None else str({int(z): float(e) for z, e in e0s.items()})
    arguments += ["--multiheads_finetuning=False", f"--E0s={e0s_flag}"]
    return arguments


def pretrain_standin(
    pool: Path,
    out_model: Path,
    mace_section: dict,
    device: str,
    threads: int,
    e0s: dict | None = None,
) -> dict:
    """Train the stand-in foundation model on ``pool``; returns what mace did."""
    from ase.data import chemical_symbols

    from workflow_scripts.mace.readback import output_paths, read_training_outputs
    from workflow_scripts.mace.train import run_mace_train
    from workflow_scripts.mace.train_check import TrainingMismatch, verify_training
    from workflow_scripts.mace.train_command import TrainingFiles

    work_dir = out_model.parent / "foundation.work"
    if work_dir.exists():
        shutil.rmtree(work_dir)
    arguments = standin_command(pool, work_dir, mace_section, device, e0s)
    print("mace_run_train " + " ".join(arguments), flush=True)
    started = time.perf_counter()
    run_mace_train(arguments)
    wall_time = time.perf_counter() - started
    standin = mace_section["standin_foundation"]
    # given E0s are isolated-atom energies: checked against the model like CP2K's would be
    hyper = {**standin, "e0s": "average" if e0s is None else "isolated_atoms", "ema": False}
    expected = {chemical_symbols[int(z)]: e for z, e in (e0s or {}).items()}
    outputs = read_training_outputs(work_dir, "foundation", standin["seed"])
    problems = verify_training("scratch", hyper, TrainingFiles(train=pool), outputs, expected)
    if problems:
        raise TrainingMismatch("stand-in foundation: " + "; ".join(problems))
    shutil.copyfile(output_paths(work_dir, "foundation", standin["seed"])["model"], out_model)
    return {
        "command": ["mace_run_train", *arguments],
        "used": {
            "lr": outputs["log"]["lr"],
            "loss": outputs["log"]["loss_function"],
            "e0s": outputs["log"]["e0s"],
            "epochs_completed": outputs["log"]["epochs_completed"],
        },
        "wall_time_s": round(wall_time, 2),
        "threads": threads,
        "device": device,
    }


def resolve_foundation(
    mace_section: dict,
    out_model: Path,
    *,
    pool: Path | None,
    threads: int,
    isolated_atoms: Path | None = None,
    alignment: Path | None = None,
) -> dict:
    """Write ``out_model`` and return the record for ``foundation.json``."""
    from workflow_scripts.mace.readback import model_summary

    settings.use_threads(threads)
    spec = mace_section["foundation_model"]
    out_model.parent.mkdir(parents=True, exist_ok=True)
    record = {"spec": spec, "name": display_name(spec, mace_section.get("foundation_name"))}
    if spec == STANDIN_FOUNDATION:
        if pool is None:
            raise ValueError("the stand-in foundation model needs --pool (MPtrj stand-in pool)")
        device = settings.resolve_device(mace_section["device"])
        record["source"] = f"pretrained by the workflow on {pool}"
        e0s = None
        if mace_section["standin_foundation"]["e0s"] == "aligned_isolated_atoms":
            if isolated_atoms is None or alignment is None:
                raise ValueError("e0s aligned_isolated_atoms needs --isolated-atoms, --alignment")
            e0s = aligned_isolated_atom_e0s(pool, isolated_atoms, alignment)
            record["source"] += (
                f", E0s = CP2K isolated atoms ({isolated_atoms}) + code offsets ({alignment})"
            )
        record["training"] = pretrain_standin(pool, out_model, mace_section, device, threads, e0s)
    elif spec.startswith(("https://", "http://")):
        cached = fetch_url_model(spec)
        record["source"] = f"{spec} ({cached})"
        shutil.copyfile(cached, out_model)
    elif Path(spec).is_file():
        record["source"] = str(Path(spec).resolve())
        shutil.copyfile(spec, out_model)
    elif spec in mace_model_names():
        cached = fetch_named_model(spec)
        record["source"] = f"mace-torch model {spec!r} ({cached})"
        shutil.copyfile(cached, out_model)
    else:
        raise ValueError(
            f"mace.foundation_model {spec!r} is neither a file, 'stand-in' nor a mace-torch "
            f"model name ({', '.join(mace_model_names())})"
        )
    record["model"] = model_summary(settings.load_model(out_model))
    record["sha256"] = sha256_file(out_model)
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.mace.foundation")
    commands = parser.add_subparsers(dest="command", required=True)
    resolve = commands.add_parser("resolve", help="write the foundation model file")
    resolve.add_argument("--mace-config", required=True, type=Path, help="mace.json")
    resolve.add_argument("--pool", type=Path, help="MPtrj (stand-in) pool, for 'stand-in'")
    resolve.add_argument("--out", required=True, type=Path, help="foundation .model")
    resolve.add_argument("--info", required=True, type=Path, help="foundation .json")
    resolve.add_argument("--threads", type=int, default=1)
    resolve.add_argument("--isolated-atoms", type=Path, help="CP2K isolated atoms (stand-in E0s)")
    resolve.add_argument("--alignment", type=Path, help="energy_alignment.json (stand-in E0s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    record = resolve_foundation(
        settings.load_section(args.mace_config),
        args.out,
        pool=args.pool,
        threads=args.threads,
        isolated_atoms=args.isolated_atoms,
        alignment=args.alignment,
    )
    write_json(args.info, record, indent=2, sort_keys=True, newline=True)
    print(json.dumps({key: record[key] for key in ("name", "source", "sha256")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
