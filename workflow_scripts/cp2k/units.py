"""Unit conversions from CP2K's atomic units, all from one source: ``ase.units``.

ASE 3.29 uses CODATA 2014 (``ase.units.__codata_version__``). CP2K 2023.1 converts with its own
constants internally, so the eV values CP2K itself prints may differ in the 7th significant
digit; every number we store is CP2K's printed atomic-unit value times these constants.
"""

from ase import units as _ase_units

CODATA_VERSION: str = _ase_units.__codata_version__
HARTREE_TO_EV: float = _ase_units.Hartree
BOHR_TO_ANGSTROM: float = _ase_units.Bohr
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM: float = _ase_units.Hartree / _ase_units.Bohr
GPA_TO_EV_PER_ANGSTROM3: float = _ase_units.GPa


def ev_per_angstrom_to_hartree_per_bohr(value: float) -> float:
    """A force in eV/Å as CP2K's Hartree/bohr (e.g. GEO_OPT MAX_FORCE)."""
    return value / HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
