"""Each element's CP2K input checked by CP2K itself before a study: ``cp2k --check`` for the
syntax, then CP2K's setup (basis and potential found, the valence electrons as the basis
expects), one small job per element.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.cp2k import basis as basis_module
from workflow_scripts.cp2k.input_file import render_input
from workflow_scripts.cp2k.inputs import (
    InputError,
    omp_environment,
    prepare,
    prepare_isolated_atom,
)


@dataclass
class CheckResult:
    element: str
    input_file: str
    ok: bool
    message: str


def _setup_valences(output: str) -> dict[str, int]:
    """Kind name -> electrons of its GTH potential, as CP2K printed them during setup."""
    import re

    valences, kind = {}, None
    for line in output.splitlines():
        match = re.match(r"\s+\d+\. Atomic kind: (\S+)", line)
        if match:
            kind = match.group(1)
        if "Electronic configuration (s p d ...):" in line and kind:
            valences[kind] = sum(int(n) for n in line.split(":")[1].split())
    return valences


def _syntax_check(command: str, path: Path) -> str | None:
    """None if ``cp2k --check`` accepts the input, else its complaint."""
    result = subprocess.run(
        [command, "--check", "-i", path.name], cwd=path.parent, capture_output=True, text=True
    )
    if result.returncode == 0 and "SUCCESS" in result.stdout:
        return None
    return f"cp2k --check failed: {(result.stdout + result.stderr).strip()}"


def _setup_run(elements: list[str], settings: dict, workdir: Path, name: str):
    """CP2K's own setup (RUN_TYPE NONE reads every kind's basis and potential) of one cell
    holding ``elements`` on a small grid; returns (returncode, printed valences, output)."""
    from ase import Atoms

    side = math.ceil(len(elements) ** (1 / 3))
    positions = [
        (2.0 * (i % side), 2.0 * (i // side % side), 2.0 * (i // side**2))
        for i in range(len(elements))
    ]
    atoms = Atoms(elements, positions=positions, cell=[2.0 * side + 3.0] * 3, pbc=True)
    small = {**settings, "cutoff": 100, "rel_cutoff": 20, "ngrids": 1}
    calc = prepare("single_point", atoms, small)
    calc.kpoints = None
    path = workdir / f"{name}.inp"
    path.write_text(render_input(calc, small, run_type="NONE"))
    result = subprocess.run(
        [settings["command"], "-i", path.name],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=omp_environment(1),
    )
    output = result.stdout + result.stderr
    (workdir / f"{name}.out").write_text(output)
    return result.returncode, _setup_valences(result.stdout), output


def check_elements(elements, settings: dict, workdir: Path) -> list[CheckResult]:
    """Each element's study input (its isolated-atom input, the same generator as every other
    calculation) through ``cp2k --check``; then one CP2K setup of all elements together
    confirms that CP2K finds each basis and potential and reads the basis' valence qN."""
    workdir.mkdir(parents=True, exist_ok=True)
    results, inputs = {}, {}
    for element in elements:
        try:
            calc = prepare_isolated_atom(element, settings)
        except (basis_module.BasisError, InputError, KeyError) as error:
            results[element] = CheckResult(element, "", False, str(error))
            continue
        path = workdir / f"{element}.inp"
        path.write_text(render_input(calc, settings))
        problem = _syntax_check(settings["command"], path)
        if problem:
            results[element] = CheckResult(element, str(path), False, problem)
        inputs[element] = (path, calc.basis[element])
    pending = [e for e in inputs if e not in results]
    if pending:
        code, valences, _ = _setup_run(pending, settings, workdir, "setup_all")
        for element in pending:
            path, choice = inputs[element]
            if code != 0:  # find the culprit(s): one setup per element
                code_1, valences_1, output = _setup_run(
                    [element], settings, workdir, f"setup_{element}"
                )
                if code_1 != 0:
                    tail = "\n".join(output.splitlines()[-12:])
                    results[element] = CheckResult(
                        element, str(path), False, f"CP2K setup failed:\n{tail}"
                    )
                    continue
                valences.update(valences_1)
            if valences.get(element) != choice.valence:
                results[element] = CheckResult(
                    element,
                    str(path),
                    False,
                    f"valence mismatch: basis q{choice.valence}, CP2K read "
                    f"{valences.get(element)} electrons from {choice.potential}",
                )
            else:
                results[element] = CheckResult(
                    element,
                    str(path),
                    True,
                    f"{choice.basis} ({choice.basis_file}) + {choice.potential} "
                    f"({choice.potential_file}), q{choice.valence}: {choice.note}",
                )
    return [results[element] for element in elements]
