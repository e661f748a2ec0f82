"""CP2K (workflow_scripts.cp2k): host cell relaxations, defect relaxations, isolated atoms,
MPtrj single points (in batches, workflow_scripts/cp2k/batch.py), the failure checks and the
input check. The frames they give are read in dataset.smk.

Each CP2K job declares only a small summary JSON as output. Its calculation folder
(the summary's folder; run_000, run_001, ... inside) is not declared, so a killed or failed job
keeps its files and the rerun resumes from the last complete step.

A job that fails for a physical reason (workflow_scripts/cp2k/failures.py) writes a summary
with status failed and exits 0; the aggregations skip it, and cp2k_failures_check stops the
run before any data set is built when more than dft.failures.max_failed_fraction of the jobs
of one kind failed. cp2k_failures lists every failed job (in the report).

priority 10: the CP2K jobs on the way to the data set and the foundation's E0s go first (as do
the MACE trainings); leaves such as the screen's elemental references fill the free cores.
"""

CP2K = config["dft"]["resources"]


rule cp2k_host_cell:
    """One CP2K calculation under custodian (workflow_scripts.cp2k.run): for cp2k_host_cell
    a host's CELL_OPT before its supercells are built (dft.host_cell); cp2k_relax,
    cp2k_isolated_atom and cp2k_reference are this rule with their own task and files.
    """
    input:
        structure=paths.HOST,
        settings=section_file("dft"),
    output:
        paths.CP2K_HOST_CELL,
    log:
        "logs/cp2k/host_cell/{host}.log",
    benchmark:
        paths.benchmark("cp2k/host_cell/{host}")
    priority: 10
    conda:
        "../envs/cp2k.yaml"
    threads: CP2K["threads"]
    resources:
        mem_mb=CP2K["mem_mb"],
        runtime=CP2K["relax_runtime_min"],
        mpi=config["dft"]["mpi_launcher"],
        tasks=config["dft"]["mpi_ranks"],
    params:
        task=lambda w, input: (
            f"cell-relax --structure {input.structure} {host_cell_kpoints(w.host)}"
        ),
        workdir=lambda wildcards, output: Path(output[0]).parent,
        runtime=dft_runtime_file(),
    shell:
        "python -m workflow_scripts.cp2k.run {params.task}"
        " --settings {input.settings} --runtime-settings {params.runtime}"
        " --workdir {params.workdir} --summary {output}"
        " --threads {threads} --walltime-min {resources.runtime}"
        " --mpi-launcher {resources.mpi} --mpi-ranks {resources.tasks} > {log} 2>&1"


rule mlip_prerelax:
    """MLIP-first DFT (dft.prerelax): the defect relaxed by a model before CP2K starts."""
    input:
        structure=paths.DEFECT,
        model=lambda w: screening_model_input(config["dft"]["prerelax"]),
        screening=section_file("screening"),
        settings=section_file("mace"),
        evaluation=section_file("evaluation"),
    output:
        paths.PRERELAXED_DEFECT,
    log:
        "logs/structures/prerelaxed/{host}/{defect}.log",
    benchmark:
        paths.benchmark("prerelax/{host}/{defect}")
    conda:
        lambda w: screening_conda_file(config["dft"]["prerelax"])
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        name=config["dft"]["prerelax"] or "",
        python=lambda w: screening_python(config["dft"]["prerelax"]),
        model=lambda w, input: screening_model_flag(
            config["dft"]["prerelax"], input.model
        ),
    shell:
        "OMP_NUM_THREADS={threads} {params.python} -m workflow_scripts.screening.prerelax"
        " --structure {input.structure} --model-name {params.name:q} {params.model}"
        " --screening-config {input.screening} --mace-config {input.settings}"
        " --evaluation-config {input.evaluation} --threads {threads}"
        " --out {output} > {log} 2>&1"


# GEO_OPT of a defect supercell (or pristine host) under custodian; resumes if stopped.
use rule cp2k_host_cell as cp2k_relax with:
    input:
        structure=lambda w: relax_start_file(w.host, w.defect),
        settings=section_file("dft"),
    output:
        paths.CP2K_RELAX,
    log:
        "logs/cp2k/relax/{host}/{defect}.log",
    benchmark:
        paths.benchmark("cp2k/relax/{host}/{defect}")
    params:
        task=lambda w, input: f"relax --structure {input.structure}",


# One job per element; on a cluster several share a SLURM job (group isolated_atoms,
# group-components in profiles/slurm); local runs ignore groups.
use rule cp2k_host_cell as cp2k_isolated_atom with:
    input:
        settings=section_file("dft"),
    output:
        paths.CP2K_ATOM,
    log:
        "logs/cp2k/atoms/{element}.log",
    benchmark:
        paths.benchmark("cp2k/atoms/{element}")
    group:
        "isolated_atoms"
    resources:
        mem_mb=CP2K["mem_mb"],
        runtime=CP2K["isolated_atom_runtime_min"],
        mpi=config["dft"]["mpi_launcher"],
        tasks=config["dft"]["mpi_ranks"],
    params:
        task=lambda w: f"isolated-atom --element {w.element}",


rule cp2k_mptrj_single_point:
    """A batch of MPtrj single points (dft.batch.single_points per job), each structure in
    its own folder (paths.CP2K_SINGLE_POINTS/{index}/) with its own summary.json: a finished one
    is skipped, a failed one fails alone, a transiently stopped one fails the batch after the
    others ran (the retry resumes it). The listing names every index's summary and status.
    """
    input:
        structures=paths.reference_file(mptrj_name(), "cp2k_subset_structures"),
        settings=section_file("dft"),
    output:
        paths.CP2K_SINGLE_POINT_BATCH,
    log:
        "logs/cp2k/mptrj_sp/batch_{batch}.log",
    benchmark:
        paths.benchmark("cp2k/mptrj_sp/batch_{batch}")
    priority: 10
    conda:
        "../envs/cp2k.yaml"
    threads: CP2K["threads"]
    resources:
        mem_mb=CP2K["mem_mb"],
        runtime=single_point_batch_runtime,
        mpi=config["dft"]["mpi_launcher"],
        tasks=config["dft"]["mpi_ranks"],
    params:
        root=lambda wildcards, output: Path(output[0]).parent,
        indices=single_point_indices,
        runtime=dft_runtime_file(),
    shell:
        "python -m workflow_scripts.cp2k.batch single-points --structures {input.structures}"
        " --indices {params.indices} --root {params.root} --listing {output}"
        " --settings {input.settings} --runtime-settings {params.runtime}"
        " --threads {threads} --walltime-min {resources.runtime}"
        " --mpi-launcher {resources.mpi} --mpi-ranks {resources.tasks} > {log} 2>&1"


rule cp2k_failures_check:
    """The failed jobs of one kind (relax, isolated_atom, single_point); fails, naming them,
    when more than dft.failures.max_failed_fraction of that kind failed. The data sets built
    from that kind wait for it."""
    input:
        lambda wildcards: cp2k_outputs(wildcards.job),
    output:
        paths.CP2K_FAILED_JOBS,
    log:
        "logs/cp2k/failures/{job}.log",
    wildcard_constraints:
        job="relax|isolated_atom|single_point",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        max_fraction=config["dft"]["failures"]["max_failed_fraction"],
    shell:
        "python -m workflow_scripts.cp2k.failures check --job {wildcards.job}"
        " --max-failed-fraction {params.max_fraction} --out {output} {input}"
        " > {log} 2>&1"


rule cp2k_failures:
    """Every CP2K job that failed for good: job, host/defect, element or index, kind,
    reason, frames kept."""
    input:
        expand(
            paths.CP2K_FAILED_JOBS,
            job=["relax", "isolated_atom", "single_point"],
        ),
    output:
        report(
            paths.CP2K_FAILURES,
            caption="../report/cp2k_failures.rst",
            category="3. Dataset",
            subcategory="CP2K jobs that failed",
        ),
    log:
        "logs/cp2k/failures.log",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python -m workflow_scripts.cp2k.failures combine --out {output} {input}"
        " > {log} 2>&1"


rule cp2k_check_inputs:
    """Each element's input through `cp2k --check` and CP2K's own setup (basis and potential
    found, valences consistent). Run it before a study: `snakemake cp2k_check_inputs`.
    """
    input:
        settings=section_file("dft"),
    output:
        paths.CP2K_INPUT_CHECK,
    log:
        "logs/cp2k/input_check.log",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        workdir=lambda w, output: Path(output[0]).with_suffix(""),
        elements=isolated_atom_elements(),
        runtime=dft_runtime_file(),
    shell:
        "python -m workflow_scripts.cp2k.inputs check --settings {input.settings}"
        " --runtime-settings {params.runtime}"
        " --elements {params.elements} --workdir {params.workdir}"
        " --report {output} > {log} 2>&1"
