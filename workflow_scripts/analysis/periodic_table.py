"""Periodic-table layout and the Materials Project Hubbard-U rule (no heavy imports)."""

from __future__ import annotations

from workflow_scripts.elements import ATOMIC_NUMBER, SYMBOLS

# Materials Project GGA+U (MPRelaxSet, pymatgen io/vasp/MPRelaxSet.yaml LDAUU, in eV): these
# elements carry a U when the structure contains O or F. MPtrj holds the MP relaxations made
# with these settings; CP2K here is plain PBE, so these elements' forces differ for that reason.
HUBBARD_U_EV: dict[str, float] = {
    "Co": 3.32,
    "Cr": 3.7,
    "Fe": 5.3,
    "Mn": 3.9,
    "Mo": 4.38,
    "Ni": 6.2,
    "V": 3.25,
    "W": 6.2,
}
HUBBARD_U_ANIONS = frozenset({"O", "F"})

HUBBARD_U_RULE = (
    "Rule (Materials Project, as in MPtrj): Co Cr Fe Mn Mo Ni V W carry\n"
    "a U in structures that contain O or F."
)

_PERIOD_ENDS = (2, 10, 18, 36, 54, 86, 118)
LANTHANIDE_ROW = 9  # drawn below the main table, after a gap row
ACTINIDE_ROW = 10


def elements_with_u(symbols) -> set[str]:
    """The elements of one structure that carry a Hubbard U under the MP rule."""
    present = set(symbols)
    if not present & HUBBARD_U_ANIONS:
        return set()
    return present & set(HUBBARD_U_EV)


def table_position(symbol: str) -> tuple[int, int]:
    """(row, column) of an element, 1-based: rows 1-7 are periods, 9 and 10 the f-block.

    La and Ac sit in group 3; Ce-Lu and Th-Lr in the f-block rows, columns 4-17.
    """
    z = ATOMIC_NUMBER[symbol]
    period = next(p for p, end in enumerate(_PERIOD_ENDS, start=1) if z <= end)
    first = _PERIOD_ENDS[period - 2] + 1 if period > 1 else 1
    offset = z - first  # 0-based position within the period
    if period == 1:
        return 1, 1 if z == 1 else 18
    if period in (2, 3):
        return period, offset + 1 if offset < 2 else offset + 11
    if period in (4, 5):
        return period, offset + 1
    # periods 6 and 7: s-block, group 3 (La/Ac), f-block row, then groups 4-18
    if offset < 3:
        return period, offset + 1
    if offset < 17:
        return (LANTHANIDE_ROW if period == 6 else ACTINIDE_ROW), offset + 1
    return period, offset - 13


def all_positions() -> dict[str, tuple[int, int]]:
    """Position of every element the project knows (Z 1-103)."""
    return {symbol: table_position(symbol) for symbol in SYMBOLS}
