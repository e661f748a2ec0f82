"""Shared by all rule modules (the validated config, the defect plan, target functions)."""

import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from workflow_scripts import paths
from workflow_scripts.baselines import registry as baseline_registry
from workflow_scripts.config import ConfigError, validate_config
from workflow_scripts.cp2k.inputs import NON_PHYSICS_KEYS
from workflow_scripts.defects import plan_defects
from workflow_scripts.elements import ATOMIC_NUMBER, cp2k_can_compute
from workflow_scripts.host_cells import equivalent_kpoints

BASE_DIR = Path(workflow.basedir)


# --- configuration: validated (schema + semantics) before any job is scheduled ------------

try:
    _validated = validate_config(config, BASE_DIR)
    PLAN = plan_defects(
        _validated, BASE_DIR, cache_dir=Path(".snakemake/perovs-dopants")
    )
except ConfigError as error:
    sys.exit(f"Invalid configuration:\n{error}")
config.clear()
config.update(_validated)

# The screen needs a reference phase for every element and only models the config defines.
if config["screening"]["enabled"]:
    from workflow_scripts.screening import references as _references

    _settings = config["screening"]["references"]
    _problems = _references.plan_problems(
        sorted(
            {el for els in PLAN.host_elements.values() for el in els}
            | {d.species for d in PLAN.defects}
        ),
        _settings["molecule_box"],
        {el: str(BASE_DIR / p) for el, p in _settings["structures"].items()},
    )
    _unknown = sorted(
        set(config["screening"]["models"] or [])
        - set(config["variants"])
        - set(config["baselines"])
    )
    if _unknown:
        _problems.append(
            f"config key 'screening.models': {_unknown} are neither variants nor baselines"
        )
    if _problems:
        sys.exit("Invalid configuration:\n" + "\n".join(_problems))

# A baseline in its own environment (SevenNet) needs that environment before any job runs.
USES_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
if not USES_CONDA:
    _problems = [
        problem
        for name, spec in config["baselines"].items()
        for problem in baseline_registry.environment_problems(name, spec, BASE_DIR)
    ]
    if _problems:
        sys.exit("Invalid configuration:\n" + "\n".join(_problems))


# --- settings files: one JSON per config section, rewritten only when it changes ----------


def section_file(section):
    """``paths.SECTION_SETTINGS``: the validated section, as an input of the rules
    that use it. Written at parse time and only when its content changes, so that a change
    of, e.g., the CP2K settings reruns the CP2K jobs while adding a dopant reruns nothing.
    ``run_label`` is added except to ``dft`` (a new label must not redo DFT); ``dft`` holds
    only what changes CP2K's numbers (the rest is in :func:`dft_runtime_file`)."""
    content = (
        dict(config[section]) if isinstance(config[section], dict) else config[section]
    )
    if section == "dft":
        content = {k: v for k, v in content.items() if k not in NON_PHYSICS_KEYS}
    elif isinstance(content, dict):
        content = {**content, "run_label": config["run_label"]}
    return _write_if_changed(
        Path(paths.fill(paths.SECTION_SETTINGS, section=section)), content
    )


def dft_runtime_file():
    """``paths.DFT_RUNTIME_SETTINGS``: how CP2K is launched (binary, MPI, custodian,
    wall-time margin). A param, not an input: changing it reruns no DFT."""
    runtime = {k: v for k, v in config["dft"].items() if k in NON_PHYSICS_KEYS}
    return _write_if_changed(Path(paths.DFT_RUNTIME_SETTINGS), runtime)


def variant_file(variant):
    """``paths.VARIANT_SETTINGS``: one variant's settings (in the layout of
    variants.json), the input of its training job: adding or changing a variant retrains that
    variant only, not every model."""
    content = {variant: config["variants"][variant], "run_label": config["run_label"]}
    return _write_if_changed(
        Path(paths.fill(paths.VARIANT_SETTINGS, variant=variant)), content
    )


def _write_if_changed(path, content):
    text = json.dumps(content, indent=1, sort_keys=True)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


def as_cli_json(value):
    """A value as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(value, sort_keys=True))


# --- structures ---------------------------------------------------------------------------


def host_names():
    return sorted(PLAN.host_elements)


def host_spec(host):
    from workflow_scripts.hosts import host_specs

    return host_specs(config, BASE_DIR)[host]


def host_cell_spec(host):
    """The host entry without what only concerns its defects or where its file lives."""
    skip = {"substituents", "vacancies", "supercell", "path"}
    return {k: v for k, v in host_spec(host).items() if k not in skip}


def host_supercell(host):
    return host_spec(host).get("supercell", config["defects"]["supercell"])


def supercell_host_file(host):
    """The host cell the supercells repeat: CP2K-relaxed unless dft.host_cell.relax is off."""
    if config["dft"]["host_cell"]["relax"]:
        return paths.fill(paths.RELAXED_HOST, host=host)
    return paths.fill(paths.HOST, host=host)


def host_cell_kpoints(host):
    """The host cell's k-mesh as CLI words: as dense as dft.kpoints in the supercell."""
    mesh = equivalent_kpoints(config["dft"]["kpoints"], host_supercell(host))
    return "" if mesh is None else "--kpoints " + " ".join(map(str, mesh))


def host_structure_input(wildcards):
    """The host's structure file, for hosts read from a file."""
    spec = host_spec(wildcards.host)
    return [str(BASE_DIR / spec["path"])] if "path" in spec else []


def defect_pairs():
    """Every (host, defect) of the config, in plan order."""
    return [(d.host, d.name) for d in PLAN.defects]


_DEFECT_SPECS = {(spec.host, spec.name): spec for spec in PLAN.defects}


def defect_spec(host, defect):
    try:
        return _DEFECT_SPECS[host, defect]
    except KeyError:
        raise ValueError(f"no defect {defect!r} planned for host {host!r}") from None


def defect_structure_files():
    return [
        paths.fill(paths.DEFECT, host=host, defect=defect)
        for host, defect in defect_pairs()
    ]


def dataset_elements():
    """Sorted element symbols of every host and defect structure."""
    elements = {el for host_els in PLAN.host_elements.values() for el in host_els}
    elements |= {d.species for d in PLAN.defects}
    return sorted(elements)


def cp2k_subset_elements():
    """Elements the CP2K-recomputed MPtrj subset may contain: those of the pool (MPtrj's 89, the
    stand-in's own, or reference.mptrj.cp2k_subset_elements) that CP2K can compute (a MOLOPT
    basis with a GTH potential; docs/elements.md). Empty when no subset is recomputed.
    """
    from workflow_scripts.reference.plan import mptrj_pool_elements

    settings = config["reference"]["mptrj"]
    if not settings["cp2k_subset_size"]:
        return []
    return [el for el in mptrj_pool_elements(settings) if cp2k_can_compute(el)]


def isolated_atom_elements():
    """Elements with a CP2K isolated-atom job: every element a CP2K-labelled training set can
    contain (the Perovs-Dopants structures, and the CP2K MPtrj subset when a variant trains
    on it with isolated-atom E0s or the stand-in foundation's E0s come from isolated atoms),
    so every E0 a training job needs exists."""
    from workflow_scripts.mace.plan import (
        standin_uses_aligned_e0s,
        trains_on_mptrj_cp2k_with_isolated_atoms,
    )

    elements = set(dataset_elements())
    subset_e0s = trains_on_mptrj_cp2k_with_isolated_atoms(config)
    if subset_e0s or standin_uses_aligned_e0s(config):
        elements |= set(cp2k_subset_elements())
    return sorted(elements, key=ATOMIC_NUMBER.get)


def cp2k_outputs(job):
    """What the CP2K jobs of one kind declare: every summary.json (relax, isolated_atom) or
    every batch listing (single_point: each names the summaries of its structures)."""
    if job == "relax":
        return [
            paths.fill(paths.CP2K_RELAX, host=host, defect=defect)
            for host, defect in defect_pairs()
        ]
    if job == "isolated_atom":
        return [
            paths.fill(paths.CP2K_ATOM, element=el) for el in isolated_atom_elements()
        ]
    # MPtrj single points: a folder per subset index, dft.batch.single_points per job
    return [
        paths.fill(paths.CP2K_SINGLE_POINT_BATCH, batch=batch)
        for batch in single_point_batches()
    ]


def single_point_batches():
    """Batch numbers of the MPtrj single points (workflow_scripts.cp2k.batch)."""
    from workflow_scripts.cp2k.batch import n_batches

    total = config["reference"]["mptrj"]["cp2k_subset_size"]
    return range(n_batches(total, config["dft"]["batch"]["single_points"]))


def single_point_indices(wildcards):
    """The subset indices of a batch, as the batch command's arguments."""
    from workflow_scripts.cp2k.batch import batch_indices

    total = config["reference"]["mptrj"]["cp2k_subset_size"]
    size = config["dft"]["batch"]["single_points"]
    return " ".join(map(str, batch_indices(int(wildcards.batch), total, size)))


def single_point_batch_runtime(wildcards):
    """A batch's runtime (min): dft.resources.single_point_runtime_min per structure, at most
    dft.batch.max_runtime_min."""
    n = len(single_point_indices(wildcards).split())
    per_structure = config["dft"]["resources"]["single_point_runtime_min"]
    return min(n * per_structure, config["dft"]["batch"]["max_runtime_min"])


# --- reference data and models --------------------------------------------------------------


def mptrj_name():
    return config["reference"]["mptrj"]["name"]


def omat24_name():
    return config["reference"]["omat24"]["name"]


def uses_standins():
    return config["reference"]["mptrj"].get("source") == "standin"


def dataset_file(name):
    """Path of a labelled data set by its short name."""
    files = {
        "perovs_dopants": paths.split("test"),
        "mptrj": paths.reference_file(mptrj_name(), "test"),
        "omat24": paths.reference_file(omat24_name(), "test"),
        "mptrj_cp2k_subset": paths.reference_file(mptrj_name(), "cp2k_subset"),
        "mptrj_embedding_sample": paths.fill(paths.EMBEDDING_SAMPLE, name=mptrj_name()),
        "perovs_dopants_initial": paths.fill(
            paths.INITIAL_STRUCTURES, name=config["dataset"]["name"]
        ),
    }
    return files[name]


def model_names():
    return list(config["variants"]) + list(config["baselines"])


def model_file(model):
    variant = config["variants"].get(model)
    if variant is None:
        raise ValueError(
            f"{model!r} is a baseline, not a MACE variant with a .model file"
        )
    if variant["method"] == "zero_shot":
        return paths.FOUNDATION_MODEL
    return paths.fill(paths.MODEL, variant=model)


def baseline_file(model):
    """``paths.BASELINE_SETTINGS``: one baseline's resolved settings, the input
    of its prediction jobs (changing one baseline reruns that baseline only)."""
    content = {model: config["baselines"][model], "run_label": config["run_label"]}
    return _write_if_changed(
        Path(paths.fill(paths.BASELINE_SETTINGS, model=model)), content
    )


def baseline_conda_file(model):
    """The conda environment file of a baseline (used with --use-conda)."""
    return str(BASE_DIR / config["baselines"][model]["conda"])


def baseline_python(model):
    """The interpreter of a baseline's environment; under --use-conda, the conda env's."""
    return "python" if USES_CONDA else config["baselines"][model]["python"]


# --- screening (rules/screening.smk) ----------------------------------------------------


def screening_models():
    """Models screened: screening.models, or every variant and baseline; none when off."""
    if not config["screening"]["enabled"]:
        return []
    return config["screening"]["models"] or model_names()


def reference_task(element):
    """The CP2K task of an elemental reference: cell-relax (+ k-mesh), relax (a molecule, or
    a solid at a fixed cell with free coordinates) or, at a fixed cell with every position
    fixed by symmetry, a single point (a relaxation would only re-evaluate the start).
    """
    settings = config["screening"]["references"]
    box, spacing = settings["molecule_box"], settings["kpoint_spacing"]
    structures = {
        el: str(BASE_DIR / path) for el, path in settings["structures"].items()
    }
    reference = screening_references.reference(element, box, structures)
    if reference.kind == "molecule":
        return "relax --kpoints 1 1 1"  # a molecule in a box: Γ only
    mesh = screening_references.kpoints(element, box, spacing, structures) or [1, 1, 1]
    if settings["relax_cell"]:
        task = "cell-relax"
    elif screening_references.positions_fixed_by_symmetry(reference.atoms):
        task = "single-point"
    else:
        task = "relax"
    return f"{task} --kpoints " + " ".join(map(str, mesh))


def reference_structure_flag(element):
    path = config["screening"]["references"]["structures"].get(element)
    return "" if path is None else f"--structure {shlex.quote(str(BASE_DIR / path))}"


def screening_defect_summaries():
    return [
        paths.fill(paths.CP2K_RELAX, host=host, defect=defect)
        for host, defect in defect_pairs()
    ]


def screening_host_summaries():
    return [
        paths.fill(paths.CP2K_RELAX, host=host, defect=paths.PRISTINE)
        for host in host_names()
    ]


def screening_reference_summaries():
    return [
        paths.fill(paths.CP2K_REFERENCE, element=element)
        for element in dataset_elements()
    ]


def screening_pair_flags():
    """--defect HOST/DEFECT=summary, --host HOST=summary, --reference ELEMENT=summary."""
    relax, reference = paths.CP2K_RELAX, paths.CP2K_REFERENCE
    flags = [
        f"--defect {host}/{defect}={paths.fill(relax, host=host, defect=defect)}"
        for host, defect in defect_pairs()
    ]
    flags += [
        f"--host {host}={paths.fill(relax, host=host, defect=paths.PRISTINE)}"
        for host in host_names()
    ]
    flags += [
        f"--reference {el}={paths.fill(reference, element=el)}"
        for el in dataset_elements()
    ]
    return " ".join(flags)


def relax_start_file(host, defect):
    """Where CP2K starts a relaxation: the defect as built, or pre-relaxed by dft.prerelax
    (defects only: a pristine supercell is already at its symmetric positions)."""
    if config["dft"]["prerelax"] and defect != "pristine":
        return paths.fill(paths.PRERELAXED_DEFECT, host=host, defect=defect)
    return paths.fill(paths.DEFECT, host=host, defect=defect)


def screening_model_input(model):
    return baseline_file(model) if model in config["baselines"] else model_file(model)


def screening_model_flag(model, path):
    flag = "--baseline-config" if model in config["baselines"] else "--mace-model"
    return f"{flag} {path}"


def screening_conda_file(model):
    if model in config["baselines"]:
        return baseline_conda_file(model)
    return str(BASE_DIR / "envs" / "mace.yaml")


def screening_python(model):
    return baseline_python(model) if model in config["baselines"] else "python"


def screening_targets():
    if not config["screening"]["enabled"]:
        return []
    return [
        paths.screening("formation_energies.csv"),
        paths.screening("model_comparison.md"),
        paths.figure("screening_heatmap"),
        paths.figure("screening_parity"),
    ]


# --- the `all` target -----------------------------------------------------------------------


def all_targets():
    """Every final output the config asks for: structures, the DFT data set and its splits,
    the reference subsets, every variant's model, the metric tables and the figures."""
    from workflow_scripts.analysis import energy_alignment
    from workflow_scripts.analysis import plan as analysis_plan
    from workflow_scripts.mace import plan as mace_plan

    targets = defect_structure_files() + [paths.DEFECT_MANIFEST]
    targets += [paths.HOST_MANIFEST]
    targets += [paths.split(split) for split in ("train", "valid", "test")]
    targets += [paths.fill(paths.DATASET_CARD, name=config["dataset"]["name"])]
    targets += [paths.CP2K_FAILURES]  # CP2K jobs that failed for good (report)
    targets += [model_file(v) for v in config["variants"]]
    targets += mace_plan.metric_files()
    tables = [Path(f).stem for f in mace_plan.metric_files() if f.endswith(".csv")]
    tables += [Path(f).stem for f in energy_alignment.fit_files(config)]
    targets += analysis_plan.analysis_targets(config, tables)
    targets += screening_targets()
    return sorted(set(targets))
