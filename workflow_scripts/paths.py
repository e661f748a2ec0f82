"""Every output path under ``results/``: the one module that owns the file layout.

Rule modules, plans and scripts ask this module and build no ``results/`` path themselves.
Templates keep Snakemake wildcards in braces (``{host}``, ``{defect}``, ...): a rule uses them
as they are, a plan fills them with :func:`fill` (or ``str.format``). Paths are relative to
the working directory, as Snakemake's are.
"""

from __future__ import annotations

RESULTS = "results"


def fill(template: str, **values) -> str:
    """``template`` with the named wildcards filled and every other wildcard kept."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


# --- settings: one JSON per config section (rules/common.smk writes them at parse time) ---
SETTINGS_DIR = f"{RESULTS}/config"
SECTION_SETTINGS = f"{SETTINGS_DIR}/{{section}}.json"
DFT_RUNTIME_SETTINGS = f"{SETTINGS_DIR}/dft_runtime.json"
VARIANT_SETTINGS = f"{SETTINGS_DIR}/variants/{{variant}}.json"
BASELINE_SETTINGS = f"{SETTINGS_DIR}/baselines/{{model}}.json"

# --- hosts and defect supercells ---------------------------------------------------------------
HOSTS_DIR = f"{RESULTS}/hosts"
HOST = f"{HOSTS_DIR}/{{host}}.json"
HOST_CIF = f"{RESULTS}/hosts/{{host}}.cif"
RELAXED_HOST = f"{RESULTS}/hosts/relaxed/{{host}}.json"
RELAXED_HOST_CIF = f"{RESULTS}/hosts/relaxed/{{host}}.cif"
HOST_MANIFEST = f"{RESULTS}/hosts/manifest.csv"
DEFECT = f"{RESULTS}/structures/{{host}}/{{defect}}.json"
DEFECT_CIF = f"{RESULTS}/structures/{{host}}/{{defect}}.cif"
PRERELAXED_DEFECT = f"{RESULTS}/structures/prerelaxed/{{host}}/{{defect}}.json"
DEFECT_MANIFEST = f"{RESULTS}/structures/manifest.csv"
PRISTINE = "pristine"  # the {defect} name of a host's supercell without a defect

# --- CP2K: each job declares its summary; its folder (run_000, ...) is the summary's parent -----
CP2K_HOST_CELL = f"{RESULTS}/cp2k/host_cell/{{host}}/summary.json"
CP2K_RELAX = f"{RESULTS}/cp2k/relax/{{host}}/{{defect}}/summary.json"
CP2K_ATOM = f"{RESULTS}/cp2k/atoms/{{element}}/summary.json"
CP2K_REFERENCE = f"{RESULTS}/cp2k/reference/{{element}}/summary.json"
CP2K_SINGLE_POINTS = f"{RESULTS}/cp2k/mptrj_sp"  # one folder per subset index inside
CP2K_SINGLE_POINT_BATCH = f"{CP2K_SINGLE_POINTS}/batch_{{batch}}.json"
CP2K_FAILED_JOBS = f"{RESULTS}/cp2k/failures/{{job}}.csv"
CP2K_FAILURES = f"{RESULTS}/cp2k/failures.csv"
CP2K_INPUT_CHECK = f"{RESULTS}/cp2k/input_check.txt"

# --- data sets ----------------------------------------------------------------------------------
TRAJECTORY = f"{RESULTS}/trajectories/{{host}}/{{defect}}.extxyz"
SPLIT = f"{RESULTS}/dataset/{{split}}.extxyz"
SPLITS = ("train", "valid", "test")
ISOLATED_ATOMS = f"{RESULTS}/dataset/isolated_atoms.extxyz"
HELD_OUT = f"{RESULTS}/dataset/held_out.extxyz"
DATASET_ARTEFACT = f"{RESULTS}/dataset/{{name}}"
DATASET_CARD = f"{DATASET_ARTEFACT}/README.md"

# --- reference data (MPtrj, OMat24) and their offline stand-ins --------------------------------
REFERENCE_DIR = f"{RESULTS}/reference/{{name}}"
REFERENCE_FILE = f"{REFERENCE_DIR}/{{file}}.extxyz"  # pool, test, train, replay_fps, ...
STANDIN_DIR = f"{RESULTS}/standins/{{standin}}"
STANDIN_STRUCTURES = f"{STANDIN_DIR}/structures.extxyz"
STANDIN_LABELLED = f"{STANDIN_DIR}/labelled.extxyz"
STANDIN_SOURCE = f"{STANDIN_DIR}/{{standin}}.{{suffix}}"  # json (MPtrj) | aselmdb (OMat24)

# --- descriptors and the analysis' own structure sets ------------------------------------------
DESCRIPTORS_DIR = f"{RESULTS}/descriptors"
DESCRIPTORS = f"{DESCRIPTORS_DIR}/{{model}}/{{dataset}}.npy"
EMBEDDING_SAMPLE = f"{RESULTS}/analysis/{{name}}/embedding_sample.extxyz"
INITIAL_STRUCTURES = f"{RESULTS}/analysis/{{name}}/initial_structures.extxyz"

# --- models, predictions, metrics, figures, report ---------------------------------------------
FOUNDATION_MODEL = f"{RESULTS}/models/foundation.model"
FOUNDATION_INFO = f"{RESULTS}/models/foundation.json"
MODEL = f"{RESULTS}/models/{{variant}}.model"
MODEL_INFO = f"{RESULTS}/models/{{variant}}.json"
MODEL_WORK_DIR = f"{RESULTS}/models/{{variant}}.work"
PREDICTIONS_DIR = f"{RESULTS}/predictions"
PREDICTIONS = f"{PREDICTIONS_DIR}/{{model}}/{{dataset}}.extxyz"
METRICS_DIR = f"{RESULTS}/metrics"
METRIC = f"{METRICS_DIR}/{{table}}.{{suffix}}"
FIGURE = f"{RESULTS}/figures/{{name}}.{{suffix}}"
REPORT_TABLE = f"{RESULTS}/report/{{table}}.html"
REPORT = f"{RESULTS}/report.html"  # snakemake --report (scripts/demo.sh)

# --- screening ----------------------------------------------------------------------------------
SCREENING = f"{RESULTS}/screening/{{name}}"  # formation_energies.csv, model_comparison.md, ...
REFERENCE_STRUCTURE = f"{RESULTS}/screening/references/{{element}}.extxyz"
SCREENING_MODEL = f"{RESULTS}/screening/models/{{model}}.csv"

# --- benchmarks (Snakemake's benchmark: files) ------------------------------------------------
BENCHMARK = f"{RESULTS}/benchmarks/{{name}}.tsv"


def benchmark(name: str) -> str:
    """``results/benchmarks/{name}.tsv``; ``name`` may hold wildcards (``cp2k/relax/{host}``)."""
    return fill(BENCHMARK, name=name)


def metric(table: str, suffix: str = "csv") -> str:
    return fill(METRIC, table=table, suffix=suffix)


def figure(name: str, suffix: str = "png") -> str:
    return fill(FIGURE, name=name, suffix=suffix)


def screening(name: str) -> str:
    return fill(SCREENING, name=name)


def reference_file(name: str, file: str) -> str:
    """A reference data set's extxyz, e.g. ``reference_file("MPtrj", "pool")``."""
    return fill(REFERENCE_FILE, name=name, file=file)


def split(name: str) -> str:
    return fill(SPLIT, split=name)
