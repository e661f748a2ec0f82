"""SCF strategies: the one a calculation starts with and the ladder a failed SCF climbs.

CP2K facts behind the choices (measured; docs/cp2k_behaviour.md): OT is not allowed with
k-points; Γ-only OT did not converge for a 5-atom cell; open-shell atoms stalled with OT.
So Γ-point supercells start with OT (+ outer SCF), k-point cells and isolated atoms with
diagonalisation + Broyden mixing + Fermi-Dirac smearing. When an SCF does not converge within
MAX_SCF the run handler climbs one rung of :func:`strategy` (logged by custodian) and the
calculation restarts from the last geometry in a fresh directory.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

# Rungs after the starting strategy (level 0); level MAX_LEVEL + 1 means "give up".
MAX_LEVEL = 3


@dataclass(frozen=True)
class ScfStrategy:
    method: str  # "ot" or "diagonalization"
    eps_scf: float
    max_scf: int
    outer_max_scf: int = 0  # OT only
    minimizer: str = "DIIS"  # OT only
    preconditioner: str = "FULL_SINGLE_INVERSE"  # OT only
    mixing_alpha: float = 0.2  # diagonalisation only (Broyden)
    mixing_nbuffer: int = 8
    smearing_temperature: float = 0.0  # K, Fermi-Dirac; 0 = no smearing
    level: int = 0

    def describe(self) -> str:
        if self.method == "ot":
            return (
                f"level {self.level}: OT {self.minimizer}/{self.preconditioner}, "
                f"MAX_SCF {self.max_scf} x OUTER {self.outer_max_scf}, EPS_SCF {self.eps_scf:g}"
            )
        smear = (
            f"Fermi-Dirac {self.smearing_temperature:g} K"
            if self.smearing_temperature > 0
            else "no smearing"
        )
        return (
            f"level {self.level}: diagonalisation, Broyden alpha {self.mixing_alpha:g} "
            f"nbuffer {self.mixing_nbuffer}, {smear}, MAX_SCF {self.max_scf}, "
            f"EPS_SCF {self.eps_scf:g}"
        )

    def as_dict(self) -> dict:
        return asdict(self)


class ScfLadderExhausted(RuntimeError):
    """Every rung of the SCF ladder was tried."""


def base_strategy(
    scf: dict, uses_kpoints: bool, force_diagonalization: bool = False
) -> ScfStrategy:
    """Level 0 from the ``dft.scf`` settings (or ``dft.isolated_atoms.scf``)."""
    requested = scf.get("method", "auto")
    if requested == "ot" and uses_kpoints:
        raise ValueError("dft.scf.method 'ot' is not allowed with k-points (CP2K aborts)")
    if uses_kpoints or force_diagonalization or requested == "diagonalization":
        method = "diagonalization"
    else:
        method = "ot"
    return ScfStrategy(
        method=method,
        eps_scf=scf["eps_scf"],
        max_scf=scf["max_scf"],
        outer_max_scf=scf.get("outer_max_scf", 10),
        minimizer=scf.get("ot_minimizer", "DIIS"),
        preconditioner=scf.get("ot_preconditioner", "FULL_SINGLE_INVERSE"),
        mixing_alpha=scf["mixing_alpha"],
        mixing_nbuffer=scf["mixing_nbuffer"],
        smearing_temperature=scf["smearing_temperature"] if method != "ot" else 0.0,
    )


def strategy(base: ScfStrategy, level: int) -> ScfStrategy:
    """The strategy at ``level`` of the ladder that starts at ``base``.

    1: same method, 3x MAX_SCF (at least 100); OT moves to the robust CG minimizer with twice
       the outer loops, diagonalisation halves the mixing and keeps a longer Broyden history.
    2: diagonalisation + Broyden (alpha <= 0.1) + Fermi-Dirac smearing (>= 300 K), 6x MAX_SCF.
    3: as 2 with alpha <= 0.05, 20 Broyden vectors, 10x MAX_SCF.
    """
    if level < 0 or level > MAX_LEVEL:
        raise ScfLadderExhausted(f"no SCF strategy at level {level} (ladder has 0..{MAX_LEVEL})")
    if level == 0:
        return base
    if level == 1:
        if base.method == "ot":
            return replace(
                base,
                level=1,
                max_scf=max(3 * base.max_scf, 100),
                minimizer="CG",
                outer_max_scf=2 * max(base.outer_max_scf, 1),
            )
        return replace(
            base,
            level=1,
            max_scf=max(3 * base.max_scf, 100),
            mixing_alpha=base.mixing_alpha / 2,
            mixing_nbuffer=max(base.mixing_nbuffer, 12),
        )
    temperature = max(base.smearing_temperature, 300.0)
    rung = replace(
        base,
        level=level,
        method="diagonalization",
        outer_max_scf=0,
        smearing_temperature=temperature,
        max_scf=max(6 * base.max_scf, 300),
        mixing_alpha=min(base.mixing_alpha / 2, 0.1),
        mixing_nbuffer=max(base.mixing_nbuffer, 12),
    )
    if level == 3:
        rung = replace(
            rung,
            max_scf=max(10 * base.max_scf, 500),
            mixing_alpha=min(base.mixing_alpha / 4, 0.05),
            mixing_nbuffer=20,
        )
    return rung


def added_mos(n_electrons: int) -> int:
    """Empty orbitals per spin for smearing: a full d shell at least, 20 % of the occupied."""
    return max(10, math.ceil(0.2 * n_electrons / 2))
