"""Reference data: MPtrj and OMat24 (real files, downloads, or offline stand-ins) -> test
subsets, the MPtrj pool and the structures of the CP2K subset (workflow_scripts.reference).
The CP2K subset's single points are in dft.smk, its labelled data set in dataset.smk, the FPS
replay set in descriptors.smk. `snakemake reference_data` builds them all.
"""

from workflow_scripts.reference import plan as reference_plan

MPTRJ_DIR = reference_plan.output_dir(config, "mptrj")
OMAT24_DIR = reference_plan.output_dir(config, "omat24")
REFERENCE = config["reference"]


wildcard_constraints:
    standin=reference_plan.standin_constraint(config),


rule reference_data:
    """Every reference data set (`snakemake reference_data`)."""
    input:
        reference_plan.targets(config),


# --- offline stand-ins (demo): build -> CHGNet labels -> MPtrj JSON / OMat24 .aselmdb -------


rule standin_structures:
    """Offline stand-in structures: bulk cells of the demo's chemistry, rattled and strained."""
    input:
        settings=section_file("reference"),
    output:
        paths.STANDIN_STRUCTURES,
    log:
        "logs/reference/{standin}/structures.log",
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        kind=lambda wildcards: reference_plan.standin_kind(config, wildcards.standin),
    shell:
        "python -m workflow_scripts.reference.standins build --kind {params.kind}"
        " --settings {input.settings} --out {output} > {log} 2>&1"


rule standin_label:
    """The stand-in structures labelled by the configured universal model."""
    input:
        paths.STANDIN_STRUCTURES,
    output:
        paths.STANDIN_LABELLED,
    log:
        "logs/reference/{standin}/label.log",
    benchmark:
        paths.benchmark("reference/{standin}/label")
    conda:
        "../envs/mace.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        device=config["reference"]["descriptors"]["device"],
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.reference.standins label"
        " --structures {input} --out {output} --threads {threads} --device {params.device}"
        " > {log} 2>&1"


rule standin_mptrj_json:
    """The labelled MPtrj stand-in in MPtrj's JSON layout."""
    input:
        paths.STANDIN_LABELLED,
    output:
        paths.fill(paths.STANDIN_SOURCE, suffix="json"),
    log:
        "logs/reference/{standin}/json.log",
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m workflow_scripts.reference.standins mptrj-json --labelled {input}"
        " --out {output} > {log} 2>&1"


rule standin_omat24_aselmdb:
    """The labelled OMat24 stand-in as an OMat24-style .aselmdb."""
    input:
        paths.STANDIN_LABELLED,
    output:
        paths.fill(paths.STANDIN_SOURCE, suffix="aselmdb"),
    log:
        "logs/reference/{standin}/aselmdb.log",
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m workflow_scripts.reference.standins omat24-db --labelled {input}"
        " --out {output} > {log} 2>&1"


# --- the real data: downloads (source: url) ----------------------------------------------


if REFERENCE["mptrj"]["source"] == "url":

    rule fetch_mptrj:
        """MPtrj's JSON downloaded from reference.mptrj.url (checked against its sha256)."""
        output:
            REFERENCE["mptrj"]["path"],
        log:
            "logs/reference/fetch_mptrj.log",
        conda:
            "../envs/mace.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=240,
        params:
            url=REFERENCE["mptrj"]["url"],
            sha256=REFERENCE["mptrj"]["sha256"] or "",
        shell:
            "python -m workflow_scripts.reference.fetch --url {params.url:q} --out {output}"
            " --sha256 '{params.sha256}' --no-progress > {log} 2>&1"


if REFERENCE["omat24"]["source"] == "url":

    rule fetch_omat24:
        """OMat24's .aselmdb folder downloaded from reference.omat24.url (sha256 checked)."""
        output:
            directory(REFERENCE["omat24"]["path"]),
        log:
            "logs/reference/fetch_omat24.log",
        conda:
            "../envs/mace.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=240,
        params:
            url=REFERENCE["omat24"]["url"],
            sha256=REFERENCE["omat24"]["sha256"] or "",
        shell:
            "python -m workflow_scripts.reference.fetch --url {params.url:q} --out {output}"
            " --sha256 '{params.sha256}' --no-progress > {log} 2>&1"


# --- ingestion -----------------------------------------------------------------------------


rule mptrj_ingest:
    """MPtrj's JSON streamed into the pool and the test subset (extxyz)."""
    input:
        source=lambda wildcards: reference_plan.source(config, "mptrj", workflow.dryrun),
        settings=section_file("reference"),
    output:
        test=f"{MPTRJ_DIR}/test.extxyz",
        pool=f"{MPTRJ_DIR}/pool.extxyz",
    log:
        "logs/reference/mptrj_ingest.log",
    benchmark:
        paths.benchmark("reference/mptrj_ingest")
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "python -m workflow_scripts.reference.mptrj ingest --source {input.source}"
        " --settings {input.settings} --test {output.test} --pool {output.pool} > {log} 2>&1"


rule mptrj_cp2k_subset_structures:
    """The MPtrj structures that CP2K recomputes (the force-shift and alignment subset)."""
    input:
        pool=f"{MPTRJ_DIR}/pool.extxyz",
        settings=section_file("reference"),
    output:
        f"{MPTRJ_DIR}/cp2k_subset_structures.extxyz",
    log:
        "logs/reference/mptrj_cp2k_subset_structures.log",
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        # stratified: the Perovs-Dopants elements' CP2K/VASP energy offsets must be determined
        cover=" ".join(dataset_elements()),
        # elements CP2K can compute (docs/elements.md); each has an isolated-atom job
        allowed=" ".join(cp2k_subset_elements()),
    shell:
        "python -m workflow_scripts.reference.mptrj cp2k-subset --pool {input.pool}"
        " --settings {input.settings} --cover-elements {params.cover}"
        " --allowed-elements {params.allowed} --out {output} > {log} 2>&1"


rule omat24_ingest:
    """OMat24's .aselmdb into its train and test subsets (extxyz)."""
    input:
        source=lambda wildcards: reference_plan.source(
            config, "omat24", workflow.dryrun
        ),
        settings=section_file("reference"),
    output:
        train=f"{OMAT24_DIR}/train.extxyz",
        test=f"{OMAT24_DIR}/test.extxyz",
    log:
        "logs/reference/omat24_ingest.log",
    benchmark:
        paths.benchmark("reference/omat24_ingest")
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "python -m workflow_scripts.reference.omat24 ingest --source {input.source}"
        " --settings {input.settings} --train {output.train} --test {output.test} > {log} 2>&1"
