"""Errors of one model's predictions against the labels (the definitions every table uses).

Definitions (all on frames that have a prediction):

* energy MAE (eV/atom): mean over frames of |E_pred - E_ref| / n_atoms;
* force MAE (eV/Å): mean of |F_pred - F_ref| over every Cartesian component of every atom
  (mace's ``mae_f``); force RMSE (eV/Å): root of the mean squared component error;
* stress MAE (eV/Å³): mean of |σ_pred - σ_ref| over the six Voigt components, on frames with
  ``REF_stress``;
* per element: force MAE over the atoms of that element; per substituent: energy and force
  MAE over the frames with that ``substituent`` info (Perovs-Dopants frames).

Energy scales: every model predicts total energies on one code's scale (VASP for the
foundation model, pretraining heads and heads trained on OMat24; a baseline's declared
``baselines.*.energy_scale``; CP2K for heads trained on CP2K labels, see
``energy_alignment.model_energy_scale``) and every test set is labelled on one
(Perovs-Dopants: CP2K; MPtrj, OMat24: VASP). Within one code the energy MAE compares raw
energies; across codes the prediction is first moved to the label's code with the per-element
offsets fitted on the CP2K-recomputed MPtrj subset (``--energy-alignment``;
docs/energy_alignment.md): E_pred' = E_pred + sum n_Z delta_Z (CP2K -> VASP) or
- sum n_Z delta_Z (VASP -> CP2K). ``energy_mae_ev_per_atom`` is that (aligned or raw-within-code)
MAE, NaN when a frame of the cell has an element the fit does not determine;
``energy_mae_raw_ev_per_atom`` is always the raw one and ``energy_alignment`` says which
(``raw``, ``aligned``, ``not aligned: element(s) X not covered``). Forces are not affected.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from workflow_scripts.analysis import alignment_fit, energy_alignment
from workflow_scripts.mace.evaluate import ENERGY_KEY, FORCES_KEY, SKIPPED_KEY, STRESS_KEY

REF_ENERGY, REF_FORCES, REF_STRESS = "REF_energy", "REF_forces", "REF_stress"


def energy_mae_per_atom(predicted, reference, n_atoms) -> float:
    predicted, reference = np.asarray(predicted, float), np.asarray(reference, float)
    return float(np.mean(np.abs(predicted - reference) / np.asarray(n_atoms, float)))


def force_mae(predicted, reference) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, float) - np.asarray(reference, float))))


def force_rmse(predicted, reference) -> float:
    difference = np.asarray(predicted, float) - np.asarray(reference, float)
    return float(np.sqrt(np.mean(difference**2)))


def stress_mae(predicted, reference) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, float) - np.asarray(reference, float))))


@dataclass
class Errors:
    """Labels and predictions of the evaluated frames of one (model, test set)."""

    n_frames: int = 0
    n_atoms: list[int] = field(default_factory=list)
    energy: list[tuple[float, float]] = field(default_factory=list)
    forces_predicted: list[np.ndarray] = field(default_factory=list)
    forces_reference: list[np.ndarray] = field(default_factory=list)
    symbols: list[np.ndarray] = field(default_factory=list)
    stress: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    substituents: list[str | None] = field(default_factory=list)
    heads: set[str] = field(default_factory=set)


def collect(frames) -> Errors:
    """Pairs of labels and predictions from a predictions file's frames."""
    errors = Errors(n_frames=len(frames))
    for atoms in frames:
        if SKIPPED_KEY in atoms.info or ENERGY_KEY not in atoms.info:
            continue
        if atoms.info.get("head"):
            errors.heads.add(str(atoms.info["head"]))
        errors.n_atoms.append(len(atoms))
        errors.energy.append((float(atoms.info[ENERGY_KEY]), float(atoms.info[REF_ENERGY])))
        errors.forces_predicted.append(np.asarray(atoms.arrays[FORCES_KEY], float))
        errors.forces_reference.append(np.asarray(atoms.arrays[REF_FORCES], float))
        errors.symbols.append(np.array(atoms.get_chemical_symbols()))
        if REF_STRESS in atoms.info and STRESS_KEY in atoms.info:
            errors.stress.append((atoms.info[STRESS_KEY], atoms.info[REF_STRESS]))
        substituent = atoms.info.get("substituent")
        errors.substituents.append(None if substituent is None else str(substituent))
    return errors


def _voigt(stress) -> np.ndarray:
    stress = np.asarray(stress, float)
    if stress.shape == (3, 3) or stress.size == 9:
        s = stress.reshape(3, 3)
        return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    return stress.reshape(6)


@dataclass
class EnergyScales:
    """The model's and the test set's energy scale, and the fit that aligns them."""

    model: str = energy_alignment.CP2K
    label: str = energy_alignment.CP2K
    fit: alignment_fit.AlignmentFit | None = None


def energy_maes(errors: Errors, scales: EnergyScales | None, indices=None) -> dict:
    """Energy MAE (aligned across codes, raw within one), the raw MAE and the status of the
    frames ``indices`` (default all evaluated frames)."""
    scales = scales or EnergyScales()
    indices = range(len(errors.energy)) if indices is None else list(indices)
    symbols = [errors.symbols[i] for i in indices]
    shifts, status = energy_alignment.alignment_status(
        symbols, scales.model, scales.label, scales.fit
    )
    if not indices:
        raw = aligned = np.array([np.nan])
    else:
        raw, aligned = energy_alignment.aligned_energy_errors(
            [errors.energy[i][0] for i in indices],
            [errors.energy[i][1] for i in indices],
            [errors.n_atoms[i] for i in indices],
            shifts,
        )
    ok = not status.startswith(energy_alignment.NOT_ALIGNED)
    return {
        "energy_mae_ev_per_atom": float(np.mean(aligned)) if ok else np.nan,
        "energy_mae_raw_ev_per_atom": float(np.mean(raw)),
        "energy_alignment": status,
    }


def summary(errors: Errors, scales: EnergyScales | None = None) -> dict:
    """Energy/force/stress errors of one (model, test set); NaN where nothing to compare."""
    evaluated = len(errors.energy)
    row = {"n_frames": errors.n_frames, "n_evaluated": evaluated}
    if scales is not None:
        row |= {"model_energy_scale": scales.model, "label_energy_scale": scales.label}
    if evaluated == 0:
        return (
            row
            | dict.fromkeys(
                ("energy_mae_ev_per_atom", "force_mae_ev_per_a", "force_rmse_ev_per_a"), np.nan
            )
            | {"stress_mae_ev_per_a3": np.nan, "n_stress": 0}
            | {"energy_mae_raw_ev_per_atom": np.nan, "energy_alignment": ""}
        )
    forces_predicted = np.concatenate(errors.forces_predicted)
    forces_reference = np.concatenate(errors.forces_reference)
    row |= energy_maes(errors, scales)
    row["force_mae_ev_per_a"] = force_mae(forces_predicted, forces_reference)
    row["force_rmse_ev_per_a"] = force_rmse(forces_predicted, forces_reference)
    if errors.stress:
        stress_predicted = np.array([_voigt(p) for p, _ in errors.stress])
        stress_reference = np.array([_voigt(r) for _, r in errors.stress])
        row["stress_mae_ev_per_a3"] = stress_mae(stress_predicted, stress_reference)
    else:
        row["stress_mae_ev_per_a3"] = np.nan
    row["n_stress"] = len(errors.stress)
    return row


def per_element(errors: Errors) -> dict[str, tuple[int, float]]:
    """Element -> (number of atoms, force MAE)."""
    if not errors.symbols:
        return {}
    symbols = np.concatenate(errors.symbols)
    difference = np.abs(
        np.concatenate(errors.forces_predicted) - np.concatenate(errors.forces_reference)
    )
    return {
        element: (int(np.sum(symbols == element)), float(difference[symbols == element].mean()))
        for element in sorted(set(symbols.tolist()))
    }


def per_substituent(
    errors: Errors, scales: EnergyScales | None = None
) -> dict[str, tuple[int, float, float, float, str]]:
    """Substituent -> (number of frames, energy MAE eV/atom (aligned across codes, raw within
    one; NaN when not alignable), force MAE eV/Å, raw energy MAE eV/atom, alignment status)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, substituent in enumerate(errors.substituents):
        if substituent is not None:
            groups[substituent].append(index)
    result = {}
    for substituent, indices in sorted(groups.items()):
        energy = energy_maes(errors, scales, indices)
        result[substituent] = (
            len(indices),
            energy["energy_mae_ev_per_atom"],
            force_mae(
                np.concatenate([errors.forces_predicted[i] for i in indices]),
                np.concatenate([errors.forces_reference[i] for i in indices]),
            ),
            energy["energy_mae_raw_ev_per_atom"],
            energy["energy_alignment"],
        )
    return result
