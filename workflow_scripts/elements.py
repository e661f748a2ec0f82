"""Periodic-table facts needed before any heavy library is imported."""

# Symbols of elements 1-103, in order of atomic number.
SYMBOLS: tuple[str, ...] = tuple(
    """H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge
    As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu
    Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu
    Am Cm Bk Cf Es Fm Md No Lr""".split()  # noqa: SIM905 (a table reads better as text)
)
ATOMIC_NUMBER: dict[str, int] = {symbol: z for z, symbol in enumerate(SYMBOLS, start=1)}


def is_element(symbol: str) -> bool:
    """True for a chemical element symbol written with the usual capitalisation."""
    return symbol in ATOMIC_NUMBER


# Spin multiplicity 2S+1 of each free neutral atom's ground state (NIST ASD term symbols).
# Used for isolated-atom reference energies and as initial moments of substituents.
GROUND_STATE_MULTIPLICITY: dict[str, int] = {
    "H": 2, "He": 1, "Li": 2, "Be": 1, "B": 2, "C": 3, "N": 4, "O": 3, "F": 2, "Ne": 1,
    "Na": 2, "Mg": 1, "Al": 2, "Si": 3, "P": 4, "S": 3, "Cl": 2, "Ar": 1,
    "K": 2, "Ca": 1, "Sc": 2, "Ti": 3, "V": 4, "Cr": 7, "Mn": 6, "Fe": 5, "Co": 4, "Ni": 3,
    "Cu": 2, "Zn": 1, "Ga": 2, "Ge": 3, "As": 4, "Se": 3, "Br": 2, "Kr": 1,
    "Rb": 2, "Sr": 1, "Y": 2, "Zr": 3, "Nb": 6, "Mo": 7, "Tc": 6, "Ru": 5, "Rh": 4, "Pd": 1,
    "Ag": 2, "Cd": 1, "In": 2, "Sn": 3, "Sb": 4, "Te": 3, "I": 2, "Xe": 1,
    "Cs": 2, "Ba": 1, "La": 2, "Ce": 1, "Pr": 4, "Nd": 5, "Pm": 6, "Sm": 7, "Eu": 8, "Gd": 9,
    "Tb": 6, "Dy": 5, "Ho": 4, "Er": 3, "Tm": 2, "Yb": 1, "Lu": 2,
    "Hf": 3, "Ta": 4, "W": 5, "Re": 6, "Os": 5, "Ir": 4, "Pt": 3, "Au": 2, "Hg": 1,
    "Tl": 2, "Pb": 3, "Bi": 4, "Po": 3, "At": 2, "Rn": 1,
    "Fr": 2, "Ra": 1, "Ac": 2, "Th": 3, "Pa": 4, "U": 5, "Np": 6, "Pu": 7,
}  # fmt: skip

# The 89 elements of MPtrj (and so of MACE-MP-0's E0s): H to Bi, and Ac, Th, Pa, U, Np, Pu.
MPTRJ_ELEMENTS: tuple[str, ...] = SYMBOLS[:83] + ("Ac", "Th", "Pa", "U", "Np", "Pu")

# Elements up to Pu without a MOLOPT basis set paired with a GTH-PBE potential in CP2K's data
# files (BASIS_MOLOPT, BASIS_MOLOPT_UZH with GTH_POTENTIALS / POTENTIAL_UZH; CP2K 2023.1 to
# 2026.x): CP2K cannot run them with the workflow's basis families. Checked against the
# installed data files by tests/test_elements.py; see docs/elements.md.
CP2K_WITHOUT_BASIS: frozenset[str] = frozenset({"Fr", "Ra", "Ac", "Th", "Pa", "Np", "Pu"})


def cp2k_can_compute(symbol: str) -> bool:
    """True where CP2K's data files hold a MOLOPT basis and a matching GTH potential."""
    return is_element(symbol) and ATOMIC_NUMBER[symbol] <= 94 and symbol not in CP2K_WITHOUT_BASIS
