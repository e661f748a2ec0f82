"""Descriptors (workflow_scripts.reference.descriptors): per-structure mean MACE descriptors
of the foundation model and of the finetuned variants, on the MPtrj pool, the embedding sample and
the data sets; the FPS replay set (farthest points in the foundation's descriptor space of the
pool) that the multihead finetunes train on; the embedding sample the t-SNE/PHATE maps draw.
"""

from workflow_scripts.analysis import plan as analysis_plan
from workflow_scripts.reference import plan as reference_plan


rule analysis_embedding_sample:
    """A random sample of the MPtrj pool, the background of the embedding maps."""
    input:
        pool=paths.reference_file(mptrj_name(), "pool"),
    output:
        analysis_plan.embedding_sample_file(mptrj_name()),
    log:
        "logs/analysis/embedding_sample.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        size=config["analysis"]["embedding_sample_size"],
        seed=config["analysis"]["seed"],
    shell:
        "python -m workflow_scripts.analysis.embeddings sample --pool {input.pool}"
        " --size {params.size} --seed {params.seed} --out {output} > {log} 2>&1"


rule mace_descriptors:
    """Per-structure mean MACE descriptors; model `foundation` is the foundation model,
    data set `mptrj_pool` the MPtrj pool, others as dataset_file()."""
    input:
        model=lambda w: reference_plan.descriptor_model_file(w.model)
        or model_file(w.model),
        data=lambda w: reference_plan.descriptor_data_file(config, w.dataset)
        or dataset_file(w.dataset),
        settings=section_file("reference"),
    output:
        paths.DESCRIPTORS,
    log:
        "logs/descriptors/{model}/{dataset}.log",
    benchmark:
        paths.benchmark("descriptors/{model}/{dataset}")
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=lambda wildcards: 1440 if wildcards.dataset == "mptrj_pool" else 120,
    params:
        batch_size=config["reference"]["descriptors"]["batch_size"],
        dtype=config["reference"]["descriptors"]["dtype"],
        device=config["reference"]["descriptors"]["device"],
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.reference.descriptors"
        " --model {input.model} --data {input.data} --out {output}"
        " --batch-size {params.batch_size} --dtype {params.dtype} --device {params.device}"
        " --threads {threads} > {log} 2>&1"


rule mptrj_replay_fps:
    """The multihead replay set: farthest points in the foundation's descriptor space."""
    input:
        pool=f"{MPTRJ_DIR}/pool.extxyz",
        descriptors=paths.fill(
            paths.DESCRIPTORS, model="foundation", dataset=reference_plan.POOL
        ),
        settings=section_file("reference"),
    output:
        f"{MPTRJ_DIR}/replay_fps.extxyz",
    log:
        "logs/reference/mptrj_replay_fps.log",
    benchmark:
        paths.benchmark("reference/mptrj_replay_fps")
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=240,
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.reference.fps replay"
        " --pool {input.pool} --descriptors {input.descriptors} --settings {input.settings}"
        " --out {output} > {log} 2>&1"
