"""Host perovskites ABX3 from three sources: built-in cubic prototypes, structure files, and
the Materials Project (mp-api).

Every host comes out as a pymatgen ``Structure`` with a ``role`` site property (A, B or X),
assigned by :mod:`workflow_scripts.sites`.
"""

from __future__ import annotations

import re
from pathlib import Path

from workflow_scripts.config import ConfigError

# Cubic (Pm-3m) lattice constants in Å: experimental room- or high-temperature cubic phases.
PROTOTYPE_LATTICE_CONSTANTS: dict[str, float] = {
    "SrTiO3": 3.905,
    "BaTiO3": 4.00,
    "KNbO3": 4.02,
    "KTaO3": 3.989,
    "BaZrO3": 4.193,
    "SrZrO3": 4.10,
    "BaSnO3": 4.116,
    "CsPbI3": 6.289,
    "CsPbBr3": 5.874,
    "CsPbCl3": 5.605,
    "CsSnI3": 6.219,
    "CsSnBr3": 5.804,
}

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
