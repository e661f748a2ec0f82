"""Host perovskites ABX3 from three sources: built-in cubic prototypes, structure files, and
the Materials Project (mp-api).

Every host comes out as a pymatgen ``Structure`` with a ``role`` site property (A, B or X),
assigned by :mod:`workflow_scripts.sites`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.config import ConfigError

NO_SOURCE = "no source found"


@dataclass(frozen=True)
class HostFacts:
    """What is known about one host cell, each value with where it comes from.

    ``space_group`` is the Hermann–Mauguin symbol of the cell the facts describe (Pm-3m for
    the built-in prototypes). The PBE band gap is the study's selection criterion (stable
    hosts with a PBE gap of 1–3 eV); ``None`` with ``NO_SOURCE`` where no source was found.
    docs/hosts.md lists the same facts.
    """

    formula: str
    space_group: str
    lattice_constant: float | None  # Å, cubic cells only
    lattice_constant_source: str
    pbe_band_gap: float | None  # eV
    pbe_band_gap_source: str


# Cubic lattice constants: experimental room- or high-temperature cubic phases.
HOST_FACTS: tuple[HostFacts, ...] = (
    HostFacts(
        "SrTiO3", "Pm-3m", 3.905,
        "Acta Cryst. (IUCr) paper sh5025, gamma-ray diffraction at 293 K: a = 3.9053 Å "
        "(scripts.iucr.org/cgi-bin/paper?sh5025)",
        None,
        f"{NO_SOURCE} for the Pm-3m cell; latticegraph.com/materials/O3Sr1Ti1 gives 1.74-1.85 "
        "eV over all DFT SrTiO3 structures (Materials Project and one more database)",
    ),
    HostFacts("BaTiO3", "Pm-3m", 4.00, NO_SOURCE, None, NO_SOURCE),
    HostFacts(
        "KNbO3", "Pm-3m", 4.02, NO_SOURCE,
        1.426,
        "Schmidt et al., Adv. Mater. Sci. Eng. 2017, 3981317, Table 8: PBE at the "
        "experimental cubic geometry (hindawi.com/journals/amse/2017/3981317/tab8/)",
    ),
    HostFacts("KTaO3", "Pm-3m", 3.989, NO_SOURCE, None, NO_SOURCE),
    HostFacts(
        "BaZrO3", "Pm-3m", 4.193, NO_SOURCE,
        3.4,
        "Materials Project mp-3834 as quoted (secondary source, not checked against the MP "
        "page) from the dielectric data set of Petousis et al., Sci. Data 4, 160134 (2017)",
    ),
    HostFacts("SrZrO3", "Pm-3m", 4.10, NO_SOURCE, None, NO_SOURCE),
    HostFacts("BaSnO3", "Pm-3m", 4.116, NO_SOURCE, None, NO_SOURCE),
    HostFacts(
        "CsPbI3", "Pm-3m", 6.289, NO_SOURCE,
        None,
        f"{NO_SOURCE} for the Pm-3m cell; latticegraph.com/materials/CsI3Pb gives 1.48-2.52 "
        "eV over all DFT CsPbI3 structures",
    ),
    HostFacts("CsPbBr3", "Pm-3m", 5.874, NO_SOURCE, None, NO_SOURCE),
    HostFacts("CsPbCl3", "Pm-3m", 5.605, NO_SOURCE, None, NO_SOURCE),
    HostFacts(
        "CsSnI3", "Pm-3m", 6.219, NO_SOURCE,
        0.45,
        "Materials Project mp-614013 (Pm-3m) summary: band_gap 0.45 eV, energy_above_hull 0 "
        "(also the Pm-3m row of latticegraph.com/materials/CsSnI3)",
    ),
    HostFacts("CsSnBr3", "Pm-3m", 5.804, NO_SOURCE, None, NO_SOURCE),
    HostFacts("CaTiO3", "Pnma", None, "not cubic: cell from the host file", None, NO_SOURCE),
)  # fmt: skip

# Cubic (Pm-3m) lattice constants in Å of the built-in prototypes.
PROTOTYPE_LATTICE_CONSTANTS: dict[str, float] = {
    facts.formula: facts.lattice_constant
    for facts in HOST_FACTS
    if facts.space_group == "Pm-3m" and facts.lattice_constant is not None
}


def host_facts(formula: str, space_group: str) -> HostFacts | None:
    """The recorded facts of a host cell by reduced formula and space-group symbol."""
    for facts in HOST_FACTS:
        if facts.formula == formula and facts.space_group == space_group:
            return facts
    return None


def space_group_symbol(structure) -> str:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    return SpacegroupAnalyzer(structure, symprec=0.01).get_space_group_symbol()


def host_properties(structure) -> dict:
    """Space group, PBE band gap and lattice-constant source of a host cell, for its files."""
    formula = structure.composition.reduced_formula
    space_group = space_group_symbol(structure)
    facts = host_facts(formula, space_group)
    return {
        "formula": formula,
        "space_group": space_group,
        "pbe_band_gap_ev": facts.pbe_band_gap if facts else None,
        "pbe_band_gap_source": facts.pbe_band_gap_source if facts else NO_SOURCE,
        "lattice_constant_source": facts.lattice_constant_source if facts else NO_SOURCE,
    }


def in_gap_window(gap: float | None, window: tuple[float, float]) -> bool | None:
    """Whether a PBE gap lies in the study's window (None: gap unknown)."""
    if gap is None:
        return None
    return window[0] <= gap <= window[1]


STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar")

_ABX3 = re.compile(r"^([A-Z][a-z]?)([A-Z][a-z]?)([A-Z][a-z]?)3$")


def parse_abx3(formula: str) -> tuple[str, str, str]:
    """``"SrTiO3"`` -> ``("Sr", "Ti", "O")``: the prototype's A, B and X elements."""
    match = _ABX3.match(formula)
    if not match:
        raise ConfigError(f"host {formula!r}: a prototype name must be an ABX3 formula like SrTiO3")
    return match.group(1), match.group(2), match.group(3)


def prototype_structure(formula: str, lattice_constant: float | None = None):
    """The 5-atom cubic Pm-3m cell: A at the corner, B at the body centre, X on the faces."""
    from pymatgen.core import Lattice, Structure

    a_el, b_el, x_el = parse_abx3(formula)
    if lattice_constant is None:
        if formula not in PROTOTYPE_LATTICE_CONSTANTS:
            known = ", ".join(sorted(PROTOTYPE_LATTICE_CONSTANTS))
            raise ConfigError(
                f"config key 'hosts.{formula}.lattice_constant': no built-in value for "
                f"{formula!r} (built in: {known}); give one"
            )
        lattice_constant = PROTOTYPE_LATTICE_CONSTANTS[formula]
    return Structure(
        Lattice.cubic(lattice_constant),
        [a_el, b_el, x_el, x_el, x_el],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        site_properties={"role": ["A", "B", "X", "X", "X"]},
    )


def read_structure_file(path: Path):
    """A host from a CIF or POSCAR file, with oxidation-state decorations removed."""
    from pymatgen.core import Structure

    structure = Structure.from_file(str(path))
    structure.remove_oxidation_states()
    return structure


def structure_files_in(folder: Path) -> dict[str, Path]:
    """Host name (file stem) -> path for every structure file in a folder."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in STRUCTURE_SUFFIXES or path.name.startswith("POSCAR"):
            files[path.stem if path.suffix else path.name] = path
    return files


def host_specs(config: dict, base_dir: Path) -> dict[str, dict]:
    """Every host of the config (explicit entries, host folders, Materials Project folder)."""
    specs = {name: dict(spec) for name, spec in config["hosts"].items()}
    folders = list(config["host_folders"])
    mp = config["materials_project"]
    if mp["enabled"] and (base_dir / mp["output_folder"]).is_dir():
        folders.append(mp["output_folder"])
    for folder in folders:
        source = "materials_project" if folder == mp["output_folder"] else "file"
        for name, path in structure_files_in(base_dir / folder).items():
            specs.setdefault(name, {"source": source, "path": str(path.relative_to(base_dir))})
    for name, spec in specs.items():
        if spec["source"] == "materials_project" and "path" not in spec:
            candidate = Path(mp["output_folder"]) / f"{name}.cif"
            if not (base_dir / candidate).is_file():
                raise ConfigError(
                    f"config key 'hosts.{name}.source': no {candidate} yet; run "
                    "`snakemake materials_project_hosts` (needs MP_API_KEY) first"
                )
            spec["path"] = str(candidate)
    return specs


def build_host(name: str, spec: dict, base_dir: Path):
    """The host structure with A/B/X roles (automatic, or the config's ``site_roles``)."""
    from workflow_scripts.sites import assign_roles

    if spec["source"] == "prototype":
        structure = prototype_structure(name, spec.get("lattice_constant"))
    else:
        structure = read_structure_file(base_dir / spec["path"])
    return assign_roles(structure, spec.get("site_roles", {}), host=name)
