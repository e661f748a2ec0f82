"""Hosts -> defect supercells -> manifest (workflow_scripts.structures)."""


rule host_structure:
    """One host as built (prototype, file or Materials Project)."""
    input:
        host_structure_input,
    output:
        json=paths.HOST,
        cif=paths.HOST_CIF,
    log:
        "logs/structures/host_{host}.log",
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # Only what shapes the host cell: a new dopant or a moved checkout reruns nothing.
        spec=lambda wildcards: as_cli_json(host_cell_spec(wildcards.host)),
    shell:
        "python -m workflow_scripts.structures host --name {wildcards.host}"
        " --spec {params.spec} --structure-files {input} --out-json {output.json} --out-cif {output.cif} > {log} 2>&1"


rule relaxed_host:
    """The host with the cell and positions of its CP2K cell relaxation; the lattice change
    is in its properties and in the hosts' manifest."""
    input:
        host=paths.HOST,
        summary=paths.CP2K_HOST_CELL,  # rule cp2k_host_cell
    output:
        json=paths.RELAXED_HOST,
        cif=paths.RELAXED_HOST_CIF,
    log:
        "logs/structures/relaxed_host_{host}.log",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        workdir=lambda wildcards, input: Path(input.summary).parent,
    shell:
        "python -m workflow_scripts.host_cells relaxed --host-json {input.host}"
        " --workdir {params.workdir} --summary {input.summary}"
        " --out-json {output.json} --out-cif {output.cif} > {log} 2>&1"


rule defect_structure:
    """One defect supercell of a relaxed host (substitution or vacancy)."""
    input:
        host=lambda wildcards: supercell_host_file(wildcards.host),
    output:
        json=paths.DEFECT,
        cif=paths.DEFECT_CIF,
    log:
        "logs/structures/{host}/{defect}.log",
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        defect=lambda wildcards: as_cli_json(
            defect_spec(wildcards.host, wildcards.defect).__dict__
        ),
        supercell=lambda wildcards: " ".join(map(str, host_supercell(wildcards.host))),
    shell:
        "python -m workflow_scripts.structures defect --host-json {input.host}"
        " --defect {params.defect} --supercell {params.supercell}"
        " --out-json {output.json} --out-cif {output.cif} > {log} 2>&1"


rule defect_manifest:
    """Every defect supercell with its host, kind, site and species."""
    input:
        defect_structure_files(),
    output:
        paths.DEFECT_MANIFEST,
    log:
        "logs/structures/manifest.log",
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m workflow_scripts.structures manifest --out {output} {input} > {log} 2>&1"


rule host_manifest:
    """Every host with its space group, PBE band gap (and source) and whether the gap is in
    the study's window (materials_project.band_gap). Not an input of any DFT job: a corrected
    gap or window rewrites this table only."""
    input:
        [supercell_host_file(host) for host in host_names()],
    output:
        paths.HOST_MANIFEST,
    log:
        "logs/structures/host_manifest.log",
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        window=" ".join(map(str, config["materials_project"]["band_gap"])),
    shell:
        "python -m workflow_scripts.structures host-manifest --gap-window {params.window}"
        " --out {output} {input} > {log} 2>&1"


rule materials_project_hosts:
    """Query the Materials Project for host perovskites (needs MP_API_KEY); the CIFs it
    writes become hosts of the next run. Run it explicitly: `snakemake materials_project_hosts`.
    """
    input:
        settings=section_file("materials_project"),
    output:
        directory(config["materials_project"]["output_folder"]),
    log:
        "logs/structures/materials_project.log",
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "python -m workflow_scripts.structures materials-project --settings {input.settings}"
        " --out-folder {output} > {log} 2>&1"
