"""CP2K (workflow_scripts.cp2k): relaxations -> trajectories, isolated atoms -> E0 frames,
MPtrj single points -> CP2K labels of the subset.

Each CP2K job declares only a small summary JSON as output. Its calculation folder
(results/cp2k/...; run_000, run_001, ... inside) is not declared, so a killed or failed job
keeps its files and the rerun resumes from the last complete step.
"""

CP2K = config["dft"]["resources"]
MPTRJ_SUBSET_SIZE = config["reference"]["mptrj"]["cp2k_subset_size"]


rule cp2k_relax:
    input:
        structure="results/structures/{host}/{defect}.json",
        settings=section_file("dft"),
    output:
        "results/cp2k/relax/{host}/{defect}/summary.json",
    log:
        "logs/cp2k/relax/{host}/{defect}.log",
    benchmark:
        "results/benchmarks/cp2k/relax/{host}/{defect}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: CP2K["threads"]
    resources:
        mem_mb=CP2K["mem_mb"],
        runtime=CP2K["relax_runtime_min"],
        mpi=config["dft"]["mpi_launcher"],
        tasks=config["dft"]["mpi_ranks"],
    params:
        workdir=lambda wildcards, output: Path(output[0]).parent,
        runtime=dft_runtime_file(),
    shell:
        "python -m workflow_scripts.cp2k.run relax --structure {input.structure}"
        " --settings {input.settings} --runtime-settings {params.runtime}"
        " --workdir {params.workdir} --summary {output}"
        " --threads {threads} --walltime-min {resources.runtime}"
        " --mpi-launcher {resources.mpi} --mpi-ranks {resources.tasks} > {log} 2>&1"


rule trajectory:
    input:
        summary="results/cp2k/relax/{host}/{defect}/summary.json",
        structure="results/structures/{host}/{defect}.json",
    output:
        "results/trajectories/{host}/{defect}.extxyz",
    log:
        "logs/cp2k/trajectory/{host}/{defect}.log",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        workdir=lambda wildcards, input: Path(input.summary).parent,
        dataset=config["dataset"]["name"],
    shell:
        "python -m workflow_scripts.cp2k.trajectory relax --workdir {params.workdir}"
        " --structure {input.structure} --dataset {params.dataset:q} --out {output}"
        " > {log} 2>&1"


rule cp2k_isolated_atom:
    input:
        settings=section_file("dft"),
    output:
        "results/cp2k/atoms/{element}/summary.json",
    log:
        "logs/cp2k/atoms/{element}.log",
    benchmark:
        "results/benchmarks/cp2k/atoms/{element}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: CP2K["threads"]
    resources:
        mem_mb=CP2K["mem_mb"],
        runtime=CP2K["isolated_atom_runtime_min"],
        mpi=config["dft"]["mpi_launcher"],
        tasks=config["dft"]["mpi_ranks"],
    params:
        workdir=lambda wildcards, output: Path(output[0]).parent,
        runtime=dft_runtime_file(),
    shell:
        "python -m workflow_scripts.cp2k.run isolated-atom --element {wildcards.element}"
        " --settings {input.settings} --runtime-settings {params.runtime}"
        " --workdir {params.workdir} --summary {output}"
        " --threads {threads} --walltime-min {resources.runtime}"
        " --mpi-launcher {resources.mpi} --mpi-ranks {resources.tasks} > {log} 2>&1"


rule isolated_atoms_dataset:
    input:
        expand("results/cp2k/atoms/{element}/summary.json", element=dataset_elements()),
    output:
        "results/dataset/isolated_atoms.extxyz",
    log:
        "logs/cp2k/isolated_atoms.log",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        workdirs=lambda wildcards, input: [Path(s).parent for s in input],
        dataset=config["dataset"]["name"],
    shell:
        "python -m workflow_scripts.cp2k.trajectory atoms --workdirs {params.workdirs}"
        " --dataset {params.dataset:q} --out {output} > {log} 2>&1"


rule cp2k_mptrj_single_point:
    input:
        structures=f"results/reference/{mptrj_name()}/cp2k_subset_structures.extxyz",
        settings=section_file("dft"),
    output:
        "results/cp2k/mptrj_sp/{index}/summary.json",
    log:
        "logs/cp2k/mptrj_sp/{index}.log",
    benchmark:
        "results/benchmarks/cp2k/mptrj_sp/{index}.tsv"
    conda:
        "../envs/cp2k.yaml"
    threads: CP2K["threads"]
    resources:
        mem_mb=CP2K["mem_mb"],
        runtime=CP2K["single_point_runtime_min"],
        mpi=config["dft"]["mpi_launcher"],
        tasks=config["dft"]["mpi_ranks"],
    params:
        workdir=lambda wildcards, output: Path(output[0]).parent,
        runtime=dft_runtime_file(),
    shell:
        "python -m workflow_scripts.cp2k.run single-point --structure {input.structures}"
        " --index {wildcards.index} --settings {input.settings}"
        " --runtime-settings {params.runtime} --workdir {params.workdir}"
        " --summary {output} --threads {threads} --walltime-min {resources.runtime}"
        " --mpi-launcher {resources.mpi} --mpi-ranks {resources.tasks} > {log} 2>&1"


rule mptrj_cp2k_labels:
    input:
        structures=f"results/reference/{mptrj_name()}/cp2k_subset_structures.extxyz",
        summaries=expand(
            "results/cp2k/mptrj_sp/{index}/summary.json",
            index=range(MPTRJ_SUBSET_SIZE),
        ),
    output:
        dataset_file("mptrj_cp2k_subset"),
    log:
        "logs/cp2k/mptrj_cp2k_labels.log",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        workdirs=lambda wildcards, input: [Path(s).parent for s in input.summaries],
    shell:
        "python -m workflow_scripts.cp2k.trajectory mptrj-labels"
        " --structures {input.structures} --workdirs {params.workdirs} --out {output}"
        " > {log} 2>&1"


rule cp2k_check_inputs:
    """Each element's input through `cp2k --check` and CP2K's own setup (basis and potential
    found, valences consistent). Run it before a study: `snakemake cp2k_check_inputs`.
    """
    input:
        settings=section_file("dft"),
    output:
        "results/cp2k/input_check.txt",
    log:
        "logs/cp2k/input_check.log",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        elements=dataset_elements(),
        runtime=dft_runtime_file(),
    shell:
        "python -m workflow_scripts.cp2k.inputs check --settings {input.settings}"
        " --runtime-settings {params.runtime}"
        " --elements {params.elements} --workdir results/cp2k/input_check"
        " --report {output} > {log} 2>&1"
