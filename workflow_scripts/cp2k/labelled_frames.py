"""CP2K's stitched frames as labelled ASE frames (extxyz, mace-torch's keys): a relaxation's
trajectory, an isolated atom's E0 frame, the MPtrj subset's CP2K labels beside VASP's.

Units: energies Hartree -> eV, forces Hartree/bohr -> eV/Å (ase.units, CODATA 2014), stress
GPa -> eV/Å³ with the sign flipped (CP2K: positive = compressive; ASE: positive = tensile),
Voigt order xx yy zz yz xz xy. The attempts are read and stitched by :mod:`.trajectory`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workflow_scripts.cp2k.parse import Cp2kParseError
from workflow_scripts.cp2k.trajectory import Frame, Stitched, attempt_dirs, stitch
from workflow_scripts.reference.extxyz import ISOLATED_ATOM


def to_atoms(frame: Frame, symbols, cell, info: dict):
    """An ASE Atoms with REF_energy (eV), REF_forces (eV/Å), REF_stress (eV/Å³, ASE sign)."""
    from ase import Atoms

    from workflow_scripts.cp2k.units import (
        GPA_TO_EV_PER_ANGSTROM3,
        HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
        HARTREE_TO_EV,
    )

    cell = frame.cell if frame.cell is not None else cell
    atoms = Atoms(symbols, positions=frame.positions, cell=cell, pbc=True)
    atoms.info.update(info)
    atoms.info["REF_energy"] = frame.energy * HARTREE_TO_EV
    atoms.arrays["REF_forces"] = frame.forces * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    if frame.stress is not None:
        sigma = -frame.stress * GPA_TO_EV_PER_ANGSTROM3
        atoms.info["REF_stress"] = np.array(
            [sigma[0, 0], sigma[1, 1], sigma[2, 2], sigma[1, 2], sigma[0, 2], sigma[0, 1]]
        )
    atoms.info["step"] = frame.step
    atoms.info["scf_converged"] = frame.scf_converged
    return atoms


def provenance(stitched: Stitched) -> dict:
    last = stitched.attempts[-1]
    return {
        "cp2k_version": last.output.version or "unknown",
        "settings_hash": last.record["settings_hash"],
    }


def relaxation_frames(
    workdir: Path | str, properties: dict, dataset: str, summary: dict | None = None
):
    """Labelled frames of one relaxation; info keys per docs/architecture.md. With the job's
    ``summary``, each frame gets ``relaxation_status`` (its status); a relaxation that failed
    for good (:mod:`.failures`) gives the converged frames it kept, and ``failure_kind``."""
    from workflow_scripts.cp2k.failures import is_failed

    failed = is_failed(summary)
    if failed and not attempt_dirs(workdir):
        return [], None  # failed before CP2K ran (no basis)
    stitched = stitch(workdir, complete=not failed)
    if failed:
        first_excluded = summary.get("first_excluded_step")
        stitched.frames = [
            f for f in stitched.frames if first_excluded is None or f.step < first_excluded
        ]
    kind = properties.get("kind")
    info = {
        "host": properties.get("host", ""),
        "defect": properties.get("defect", ""),
        "substituent": properties.get("species", "") if kind != "vacancy" else "vacancy",
        "site": properties.get("role", ""),
        "config_type": dataset,
        "dataset": dataset,
        **provenance(stitched),
    }
    if summary:
        info["relaxation_status"] = summary.get("status", "")
    if failed:
        info["failure_kind"] = summary.get("failure_kind", "")
    frames = [to_atoms(f, stitched.symbols, stitched.cell, info) for f in stitched.frames]
    return frames, stitched


def isolated_atom_frame(workdir: Path | str, dataset: str):
    stitched = stitch(workdir)
    if not stitched.frames:
        raise Cp2kParseError(f"{workdir}: the isolated-atom SCF never converged")
    frame = stitched.frames[-1]
    info = {
        "config_type": ISOLATED_ATOM,
        "dataset": dataset,
        "multiplicity": int(stitched.attempts[-1].record.get("multiplicity", 0)),
        **provenance(stitched),
    }
    atoms = to_atoms(frame, stitched.symbols, stitched.cell, info)
    atoms.pbc = False  # a free atom: no periodic images for a model's neighbour list
    return atoms


def write_extxyz(frames, path: Path | str) -> None:
    """Write atomically: a half-written file never looks finished (ASE writes it, so not via
    :func:`workflow_scripts.files.write_json`)."""
    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, frames, format="extxyz")
    tmp.replace(path)


def mptrj_labelled_frames(structures: Path | str, workdirs: list[Path]):
    """CP2K single points of the subset as REF_*, MPtrj's VASP labels kept as VASP_*.

    Frames whose SCF never converged are left out (reported), as everywhere else; so are
    single points that failed for good (:mod:`.failures`)."""
    from ase.io import read

    from workflow_scripts.cp2k.failures import failed_summary_of

    originals = read(structures, index=":")
    if len(workdirs) > len(originals):
        raise ValueError(f"{structures}: {len(originals)} frames, {len(workdirs)} CP2K runs")
    labelled, skipped = [], []
    for index, workdir in enumerate(workdirs):
        if failed_summary_of(workdir) is not None:
            skipped.append(index)
            continue
        stitched = stitch(workdir)
        original = originals[index]
        if not stitched.frames:
            skipped.append(index)
            continue
        frame = stitched.frames[-1]
        if not np.allclose(frame.positions, original.positions, atol=1e-6):
            raise ValueError(f"{workdir}: positions differ from frame {index} of {structures}")
        info = {k: v for k, v in original.info.items() if not k.startswith("REF_")}
        for key in ("REF_energy", "REF_stress"):
            if key in original.info:
                info["VASP_" + key[4:]] = original.info[key]
        info.update(provenance(stitched))
        info["subset_index"] = index
        atoms = to_atoms(frame, stitched.symbols, stitched.cell, info)
        atoms.pbc = original.pbc
        if "REF_forces" in original.arrays:
            atoms.arrays["VASP_forces"] = np.asarray(original.arrays["REF_forces"])
        labelled.append(atoms)
    return labelled, skipped
