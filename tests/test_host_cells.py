"""Host cell relaxation (CP2K CELL_OPT): input, parsing of the cells, resume, relaxed host.

The fixture ``tests/data/cp2k_cell_relax/SrTiO3`` is a real CP2K 2023.1 cell relaxation of
cubic SrTiO3 at the demo's settings (SZV, 250/40 Ry, 2x2x2 k-points) made by
``python -m workflow_scripts.cp2k.run cell-relax``; the numbers asserted below are read
from its ``cp2k-1.cell`` file.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms
from pymatgen.core import Lattice, Structure
from test_cp2k_inputs import block, perovskite

from workflow_scripts.config import REPO_ROOT
from workflow_scripts.cp2k.attempts import Plan, create_attempt, next_attempt
from workflow_scripts.cp2k.geometry_files import read_cells
from workflow_scripts.cp2k.input_file import render_input
from workflow_scripts.cp2k.inputs import dft_settings, prepare, settings_hash
from workflow_scripts.cp2k.parse import Cp2kParseError
from workflow_scripts.host_cells import (
    HostCellError,
    equivalent_kpoints,
    lattice_change,
    relaxed_host,
)

FIXTURE = REPO_ROOT / "tests" / "data" / "cp2k_cell_relax" / "SrTiO3"
# cp2k-1.cell, steps 1-4 (Ax = Bx = Cz up to the last digits); step 0 is the input's 3.905 Å
CELL_A = {1: 3.9187120639, 2: 3.9915562543, 3: 4.0002108580, 4: 4.0012202416}


def srtio3_host():
    """The host as results/hosts/SrTiO3.json holds it (site roles, properties)."""
    return Structure(
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        site_properties={"role": ["A", "B", "X", "X", "X"]},
        properties={"host": "SrTiO3", "source": "prototype"},
    )


def cell_section(text):
    """The &SUBSYS/&CELL lines (``block`` would also match &CELL_OPT)."""
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index("&CELL", lines.index("&SUBSYS"))
    return lines[start : lines.index("&END CELL", start) + 1]


def fixture_settings():
    return dft_settings(
        {
            "basis_preference": ["SZV", "DZVP"],
            "cutoff": 250,
            "rel_cutoff": 40,
            "ngrids": 4,
            "kpoints": [2, 2, 2],
            "scf": {"eps_scf": 1.0e-5, "mixing_alpha": 0.4},
        }
    )


def test_host_mesh_samples_the_cell_as_densely_as_the_supercell_mesh():
    assert equivalent_kpoints([1, 2, 2], [2, 1, 1]) == [2, 2, 2]  # the demo
    assert equivalent_kpoints(None, [2, 2, 2]) == [2, 2, 2]  # the study: Γ in 2x2x2
    assert equivalent_kpoints(None, [1, 1, 1]) is None


def test_cell_relax_input_keeps_a_cubic_cell_cubic_and_always_computes_stress():
    settings = dft_settings({"basis_preference": ["SZV"], "kpoints": [2, 2, 2]})
    settings["print_stress"] = False
    text = render_input(prepare("cell_relax", perovskite(), settings), settings)
    assert "RUN_TYPE CELL_OPT" in text and "STRESS_TENSOR ANALYTICAL" in text
    opt = block(text, "CELL_OPT")
    assert "KEEP_SYMMETRY .TRUE." in opt and "PRESSURE_TOLERANCE 100.0" in opt
    assert "EXTERNAL_PRESSURE 0.0" in opt  # CP2K's default is 100 bar
    assert "MAX_ITER 50" in opt and "TYPE DIRECT_CELL_OPT" in opt
    assert "SYMMETRY CUBIC" in cell_section(text)
    assert "CELL_OPT 1" in block(text, "TRAJECTORY")  # every step printed
    assert "SCHEME MONKHORST-PACK 2 2 2" in text


def test_a_non_cubic_host_keeps_its_angles():
    settings = dft_settings({"basis_preference": ["SZV"], "kpoints": [2, 2, 2]})
    atoms = perovskite()
    atoms.set_cell(np.diag([3.9, 3.9, 4.1]), scale_atoms=True)
    text = render_input(prepare("cell_relax", atoms, settings), settings)
    assert "KEEP_ANGLES .TRUE." in block(text, "CELL_OPT")
    assert not any("SYMMETRY" in line for line in cell_section(text))


def test_host_cell_settings_belong_to_the_cell_relaxation_only():
    base, changed = dft_settings({}), dft_settings({"host_cell": {"pressure_tolerance": 50}})
    for task in ("relax", "single_point", "isolated_atom"):
        assert settings_hash(base, task) == settings_hash(changed, task) == settings_hash(base)
    assert settings_hash(base, "cell_relax") != settings_hash(changed, "cell_relax")


def test_cell_file_is_read_per_step_and_a_cut_last_line_dropped(tmp_path):
    cells = read_cells(FIXTURE / "run_000" / "cp2k-1.cell")
    assert sorted(cells) == [1, 2, 3, 4]
    for step, a in CELL_A.items():
        assert cells[step][0, 0] == pytest.approx(a, abs=1e-10)
        assert cells[step][2, 2] == pytest.approx(a, abs=2e-9)
        assert cells[step][0, 1] == 0.0
    text = (FIXTURE / "run_000" / "cp2k-1.cell").read_text()
    cut = tmp_path / "cut.cell"
    cut.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 40])  # inside the last row
    assert sorted(read_cells(cut, allow_incomplete=True)) == [1, 2, 3]
    with pytest.raises(Cp2kParseError, match="cut.cell: line 5"):
        read_cells(cut)


def test_relaxed_host_takes_the_last_cell_and_keeps_site_roles():
    summary = json.loads((FIXTURE / "summary.json").read_text())
    relaxed = relaxed_host(srtio3_host(), FIXTURE, summary)
    a = CELL_A[4]
    assert relaxed.lattice.abc == pytest.approx((a, a, a), abs=2e-9)
    assert relaxed.site_properties["role"] == ["A", "B", "X", "X", "X"]
    assert relaxed[1].frac_coords == pytest.approx([0.5, 0.5, 0.5], abs=1e-6)
    info = relaxed.properties["cell_relaxation"]
    assert info["status"] == "converged" and info["n_steps"] == 4
    assert info["volume_change_percent"] == pytest.approx(100 * ((a / 3.905) ** 3 - 1), abs=1e-3)
    assert info["abc_change_percent"][0] == pytest.approx(100 * (a / 3.905 - 1), abs=1e-3)
    # the last step's "Internal Pressure [bar] = 14.379..." in cp2k.out, within 100 bar of 0
    assert info["final_pressure_gpa"] == pytest.approx(14.3790659795e-4, abs=1e-5)


def test_a_failed_cell_relaxation_is_an_error_naming_its_reason():
    summary = {"status": "failed", "failure_kind": "scf_exhausted", "failure_reason": "SCF"}
    with pytest.raises(HostCellError, match="SrTiO3 failed .*scf_exhausted.*host_cell.relax"):
        relaxed_host(srtio3_host(), FIXTURE, summary)


def test_a_killed_cell_relaxation_resumes_in_the_cell_it_had_reached(tmp_path):
    """Cut the real run after step 2 (as a kill leaves it): the next attempt starts at step 2
    with step 2's cell and positions, and the steps left."""
    workdir = tmp_path / "SrTiO3"
    shutil.copytree(FIXTURE / "run_000", workdir / "run_000")
    run = workdir / "run_000"
    (run / "attempt_result.json").unlink()  # killed: CP2K never returned
    out = (run / "cp2k.out").read_text()
    (run / "cp2k.out").write_text(out[: out.index("OPTIMIZATION STEP:      3")])
    cell = (run / "cp2k-1.cell").read_text().splitlines(keepends=True)
    (run / "cp2k-1.cell").write_text("".join(cell[:3]))  # header, steps 1 and 2
    settings = fixture_settings()
    host = Atoms(["Sr", "Ti", "O", "O", "O"], cell=np.eye(3) * 3.905, pbc=True)
    host.set_scaled_positions(srtio3_host().frac_coords)
    plan = Plan(workdir, prepare("cell_relax", host, settings), settings, threads=2)
    nxt = next_attempt(plan)
    assert nxt.number == 1 and nxt.start_step == 2 and "resume" in nxt.reason
    assert np.diag(nxt.cell) == pytest.approx([CELL_A[2]] * 3, abs=2e-9)
    text = (create_attempt(plan, nxt) / "cp2k.inp").read_text()
    assert f"A {CELL_A[2]:.10f} 0.0000000000 0.0000000000" in text
    assert "MAX_ITER 48" in block(text, "CELL_OPT")


def test_lattice_change_in_percent():
    change = lattice_change(Lattice.cubic(4.0), Lattice.tetragonal(4.0, 4.2))
    assert change["abc_change_percent"] == pytest.approx([0.0, 0.0, 5.0])
    assert change["volume_change_percent"] == pytest.approx(5.0)


@pytest.mark.skipif(shutil.which("cp2k.psmp") is None, reason="needs CP2K")
def test_real_cp2k_relaxes_a_compressed_cell_to_its_minimum(tmp_path):
    """CsPbBr3 at 5.6 Å (compressed): CELL_OPT expands it until the pressure is within the
    tolerance; the relaxed host is the last printed cell."""
    structure = Structure(
        Lattice.cubic(5.6),
        ["Cs", "Pb", "Br", "Br", "Br"],
        [[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        site_properties={"role": ["A", "B", "X", "X", "X"]},
        properties={"host": "CsPbBr3"},
    )
    (tmp_path / "host.json").write_text(json.dumps(structure.as_dict()))
    cheap = {"basis_preference": ["SZV"], "cutoff": 200, "rel_cutoff": 30, "ngrids": 3}
    settings = dft_settings({**cheap, "custodian": {"polling_s": 0.5, "monitor_every": 2}})
    (tmp_path / "dft.json").write_text(json.dumps(settings))
    workdir = tmp_path / "cell"
    command = [sys.executable, "-m", "workflow_scripts.cp2k.run", "cell-relax"]
    command += ["--structure", str(tmp_path / "host.json"), "--kpoints", "2", "2", "2"]
    command += ["--settings", str(tmp_path / "dft.json"), "--workdir", str(workdir)]
    command += ["--summary", str(workdir / "summary.json"), "--threads", "2"]
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True)
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "converged" and summary["task"] == "cell_relax"
    relaxed = relaxed_host(structure, workdir, summary)
    cells = read_cells(workdir / "run_000" / "cp2k-1.cell")
    assert relaxed.lattice.a == pytest.approx(cells[max(cells)][0, 0], abs=1e-9)
    assert relaxed.lattice.a > 5.6  # the compressed cell expanded
    info = relaxed.properties["cell_relaxation"]
    assert abs(info["final_pressure_gpa"]) < 0.01  # PRESSURE_TOLERANCE 100 bar
    assert relaxed.lattice.abc == pytest.approx((relaxed.lattice.a,) * 3, abs=1e-6)
