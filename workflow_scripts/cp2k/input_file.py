"""The CP2K input file of a :class:`~workflow_scripts.cp2k.inputs.Calculation`: a small tree of
``&SECTION``s rendered to text (GLOBAL, MOTION with the optimiser, FORCE_EVAL with DFT, SCF,
the k-points and the KINDs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workflow_scripts.cp2k.inputs import (
    OPTIMISATIONS,
    PROJECT,
    Calculation,
    empty_orbitals,
)
from workflow_scripts.cp2k.scf import ScfStrategy, added_mos, strategy


@dataclass
class Section:
    name: str
    parameter: str | None = None
    keywords: list[tuple[str, object]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def set(self, key: str, value: object = None) -> Section:
        self.keywords.append((key, value))
        return self

    def section(self, name: str, parameter: str | None = None) -> Section:
        child = Section(name, parameter)
        self.sections.append(child)
        return child

    def render(self, indent: int = 0) -> list[str]:
        pad = "  " * indent
        lines = [f"{pad}# {comment}" for comment in self.comments]
        lines.append(f"{pad}&{self.name}" + (f" {self.parameter}" if self.parameter else ""))
        for key, value in self.keywords:
            lines.append(f"{pad}  {key}" + ("" if value is None else f" {_format(value)}"))
        for child in self.sections:
            lines += child.render(indent + 1)
        lines.append(f"{pad}&END {self.name}")
        return lines


def _format(value: object) -> str:
    if isinstance(value, bool):
        return ".TRUE." if value else ".FALSE."
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(_format(v) for v in value)
    return str(value)


def _global(calc: Calculation, walltime_s: float | None) -> Section:
    glob = Section("GLOBAL")
    glob.set("PROJECT", PROJECT)
    glob.set("RUN_TYPE", OPTIMISATIONS.get(calc.task, "ENERGY_FORCE"))
    glob.set("PRINT_LEVEL", "LOW")
    if walltime_s:
        glob.set("WALLTIME", int(walltime_s))
    return glob


def _motion(calc: Calculation, settings: dict, max_iter: int) -> Section:
    from workflow_scripts.cp2k.units import ev_per_angstrom_to_hartree_per_bohr

    geo = settings["geo_opt"]
    run_type = OPTIMISATIONS[calc.task]
    motion = Section("MOTION")
    opt = motion.section(run_type)
    if calc.task == "cell_relax":
        host_cell = settings["host_cell"]
        opt.set("TYPE", "DIRECT_CELL_OPT")
        if _cubic_symmetry(calc, settings):  # with CELL/SYMMETRY CUBIC (_subsys)
            opt.set("KEEP_SYMMETRY", True)
        else:
            opt.set("KEEP_ANGLES", True)
        # CP2K's EXTERNAL_PRESSURE defaults to 100 bar, not 0: set it (bar)
        opt.set("EXTERNAL_PRESSURE", 0.0)
        opt.set("PRESSURE_TOLERANCE", float(host_cell["pressure_tolerance"]))
        opt.comments.append("pressures in bar; positions relax with the GEO_OPT criteria")
    max_force = ev_per_angstrom_to_hartree_per_bohr(geo["max_force"])
    opt.comments.append(
        f"MAX_FORCE {geo['max_force']} eV/A = {max_force:.6e} Hartree/bohr (ase.units, CODATA "
        "2014); RMS_FORCE defaults to MAX_FORCE so the force criterion is 'every force below'"
    )
    opt.set("OPTIMIZER", geo["optimizer"])
    opt.set("MAX_ITER", int(max_iter))
    opt.set("MAX_FORCE", float(f"{max_force:.6e}"))
    rms_force = geo["rms_force"] if geo["rms_force"] is not None else geo["max_force"]
    opt.set("RMS_FORCE", float(f"{ev_per_angstrom_to_hartree_per_bohr(rms_force):.6e}"))
    for key in ("max_dr", "rms_dr"):
        if geo[key] is not None:
            opt.set(key.upper(), geo[key])
    printing = motion.section("PRINT")
    names = ["TRAJECTORY", "FORCES", "CELL"] + (["STRESS"] if settings["print_stress"] else [])
    for name in names:
        printing.section(name).section("EACH").set(run_type, 1)
    printing.section("RESTART").set("BACKUP_COPIES", 0)
    printing.section("RESTART_HISTORY", "OFF")
    return motion


def _cubic_symmetry(calc: Calculation, settings: dict) -> bool:
    """A cubic host cell kept cubic (CELL/SYMMETRY CUBIC + KEEP_SYMMETRY)."""
    if calc.task != "cell_relax" or not settings["host_cell"]["keep_symmetry"]:
        return False
    import numpy as np

    lengths_angles = calc.atoms.cell.cellpar()
    return bool(
        np.allclose(lengths_angles[:3], lengths_angles[0], rtol=1e-6)
        and np.allclose(lengths_angles[3:], 90.0, atol=1e-6)
    )


def _scf(calc: Calculation, scf: ScfStrategy, wfn_restart: str | None) -> Section:
    section = Section("SCF")
    section.comments.append(f"SCF strategy {scf.describe()}")
    section.set("SCF_GUESS", "RESTART" if wfn_restart else "ATOMIC")
    section.set("EPS_SCF", scf.eps_scf)
    section.set("MAX_SCF", scf.max_scf)
    if scf.method == "ot":
        ot = section.section("OT", "ON")
        ot.set("MINIMIZER", scf.minimizer)
        ot.set("PRECONDITIONER", scf.preconditioner)
        outer = section.section("OUTER_SCF", "ON")
        outer.set("EPS_SCF", scf.eps_scf)
        outer.set("MAX_SCF", scf.outer_max_scf)
    else:
        empty = empty_orbitals(calc.atoms, calc.basis, calc.spin)
        smear_on = scf.smearing_temperature > 0 and empty > 0
        if scf.smearing_temperature > 0 and not smear_on:
            section.comments.append("no smearing: the basis has no empty orbital to smear into")
        if smear_on:
            section.set("ADDED_MOS", min(added_mos(calc.spin.n_electrons), empty))
        section.section("DIAGONALIZATION", "ON").set("ALGORITHM", "STANDARD")
        mixing = section.section("MIXING", "ON")
        mixing.set("METHOD", "BROYDEN_MIXING")
        mixing.set("ALPHA", scf.mixing_alpha)
        mixing.set("NBUFFER", scf.mixing_nbuffer)
        if smear_on:
            smear = section.section("SMEAR", "ON")
            smear.set("METHOD", "FERMI_DIRAC")
            smear.set("ELECTRONIC_TEMPERATURE", float(scf.smearing_temperature))
            if calc.spin.polarized and calc.kpoints:
                # CP2K 2023.1 aborts on a fixed moment with k-points: the moment may relax.
                smear.comments.append("moment free: CP2K has no fixed moment with k-points")
            elif calc.spin.polarized:
                smear.set("FIXED_MAGNETIC_MOMENT", float(calc.spin.multiplicity - 1))
    section.section("PRINT").section("RESTART").set("BACKUP_COPIES", 0)
    return section


def _dft(calc: Calculation, settings: dict, scf: ScfStrategy, wfn_restart: str | None) -> Section:
    dft = Section("DFT")
    for basis_file in sorted({c.basis_file for c in calc.basis.values()}):
        dft.set("BASIS_SET_FILE_NAME", basis_file)
    dft.set("POTENTIAL_FILE_NAME", "GTH_POTENTIALS")
    if wfn_restart:
        dft.set("WFN_RESTART_FILE_NAME", wfn_restart)
    dft.set("CHARGE", 0)
    if calc.spin.polarized:
        dft.set("UKS")
        dft.set("MULTIPLICITY", calc.spin.multiplicity)
    dft.comments.append(
        f"{calc.spin.n_electrons} valence electrons, "
        + (f"UKS multiplicity {calc.spin.multiplicity}" if calc.spin.polarized else "RKS")
    )
    mgrid = dft.section("MGRID")
    mgrid.set("NGRIDS", settings["ngrids"])
    mgrid.set("CUTOFF", float(settings["cutoff"]))
    mgrid.set("REL_CUTOFF", float(settings["rel_cutoff"]))
    dft.section("QS").set("EPS_DEFAULT", float(settings["eps_default"]))
    dft.sections.append(_scf(calc, scf, wfn_restart))
    xc = dft.section("XC")
    xc.section("XC_FUNCTIONAL", settings["xc"])
    if calc.kpoints:
        dft.section("KPOINTS").set("SCHEME", ["MONKHORST-PACK", *calc.kpoints])
    printing = dft.section("PRINT")
    printing.section("MULLIKEN", "OFF")
    printing.section("HIRSHFELD", "OFF")
    return dft


def _subsys(calc: Calculation, settings: dict) -> Section:
    atoms = calc.atoms
    subsys = Section("SUBSYS")
    cell = subsys.section("CELL")
    for name, vector in zip("ABC", atoms.cell, strict=True):
        cell.set(name, [f"{x:.10f}" for x in vector])
    cell.set("PERIODIC", "XYZ")
    if _cubic_symmetry(calc, settings):
        cell.set("SYMMETRY", "CUBIC")  # kept by MOTION/CELL_OPT/KEEP_SYMMETRY
    coord = subsys.section("COORD")
    symbols = atoms.get_chemical_symbols()
    names = list(calc.atom_kinds) or symbols
    for name, position in zip(names, atoms.positions, strict=True):
        coord.set(name, [f"{x:.10f}" for x in position])
    # One kind per element and (rounded) initial moment, MAGNETIZATION where CP2K's atomic
    # guess can place it (.magnetism: it aborts on a moment no valence shell can hold, e.g.
    # 2 μB on Pt); MULTIPLICITY sets the total spin.
    magnetic = {kind.name: kind for kind in calc.kinds}
    for name in sorted(set(names), key=names.index):
        info = magnetic.get(name)
        element = info.element if info else name
        choice = calc.basis[element]
        kind = subsys.section("KIND", name)
        kind.comments.append(f"{element}: {choice.note}")
        if name != element:
            kind.set("ELEMENT", element)
        kind.set("BASIS_SET", choice.basis)
        kind.set("POTENTIAL", choice.potential)
        kind.set("POTENTIAL_FILE_NAME", choice.potential_file)
        if info and info.moment:
            kind.comments.append(f"initial moment {info.moment:+d} muB")
        if info and info.note:
            kind.comments.append(info.note)
        if info and info.magnetization is not None:
            kind.set("MAGNETIZATION", info.magnetization)
    return subsys


def optimiser_max_iter(task: str, settings: dict) -> int:
    """Optimiser steps over all attempts of a relaxation or host cell relaxation."""
    return settings["host_cell" if task == "cell_relax" else "geo_opt"]["max_iter"]


def render_input(
    calc: Calculation,
    settings: dict,
    *,
    scf_level: int = 0,
    wfn_restart: str | None = None,
    max_iter: int | None = None,
    walltime_s: float | None = None,
    run_type: str | None = None,
) -> str:
    """The CP2K input text. ``run_type`` NONE only sets CP2K up (used by ``check``)."""
    scf = strategy(calc.base_scf, scf_level)
    glob = _global(calc, walltime_s)
    if run_type:  # a setup-only run prints the kinds' basis and potential (PRINT_LEVEL MEDIUM)
        glob.keywords = [(k, v) for k, v in glob.keywords if k not in ("RUN_TYPE", "PRINT_LEVEL")]
        glob.set("RUN_TYPE", run_type).set("PRINT_LEVEL", "MEDIUM")
    force_eval = Section("FORCE_EVAL")
    force_eval.set("METHOD", "QS")
    if calc.stress:
        force_eval.set("STRESS_TENSOR", "ANALYTICAL")
    force_eval.sections.append(_dft(calc, settings, scf, wfn_restart))
    force_eval.sections.append(_subsys(calc, settings))
    printing = force_eval.section("PRINT")
    printing.section("FORCES", "ON").set("NDIGITS", 12)
    if calc.stress:
        printing.section("STRESS_TENSOR", "ON")
    header = [
        f"# CP2K input written by workflow_scripts.cp2k.inputs ({calc.task})",
        f"# settings hash {calc.settings_hash}; "
        f"k-points {'x'.join(map(str, calc.kpoints)) if calc.kpoints else 'Gamma only'}",
    ]
    lines = header + glob.render()
    if calc.task in OPTIMISATIONS:
        steps = max_iter or optimiser_max_iter(calc.task, settings)
        lines += _motion(calc, settings, steps).render()
    lines += force_eval.render()
    return "\n".join(lines) + "\n"
