"""MACE training: the foundation model and every trainable variant (workflow_scripts.mace).

The foundation model (paths.FOUNDATION_MODEL, + .json): a mace-torch named model, a .model file
or the demo's stand-in pretrained on the MPtrj pool. Each variant (paths.MODEL, + .json with
the learning rate, heads, mode, files and E0s read back from mace's own outputs). mace's
logs and checkpoints stay in paths.MODEL_WORK_DIR (not an output: a killed run
keeps them and the rerun resumes).
"""

from workflow_scripts.mace import plan as mace_plan


rule mace_foundation_model:
    """The foundation model: the configured file, or the demo's stand-in trained here."""
    input:
        unpack(lambda w: mace_plan.foundation_inputs(config, mptrj_name())),
        settings=section_file("mace"),
    output:
        model=paths.FOUNDATION_MODEL,
        info=paths.FOUNDATION_INFO,
    log:
        "logs/mace/foundation_model.log",
    benchmark:
        paths.benchmark("mace/foundation_model")
    priority: 10
    conda:
        "../envs/mace.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        pool=lambda w, input: mace_plan.cli_flags(
            dict(input.items()), ["pool", "isolated_atoms", "alignment"]
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.mace.foundation resolve"
        " --mace-config {input.settings} {params.pool} --out {output.model}"
        " --info {output.info} --threads {threads} > {log} 2>&1"


rule mace_train:
    """One MACE variant: standard, multihead or from-scratch training, or the zero-shot copy."""
    input:
        unpack(
            lambda w: mace_plan.training_inputs(
                config, w.variant, mptrj_name(), omat24_name()
            )
        ),
        variants=lambda w: variant_file(w.variant),
        settings=section_file("mace"),
    output:
        model=paths.MODEL,
        info=paths.MODEL_INFO,
    log:
        "logs/mace/train_{variant}.log",
    benchmark:
        paths.benchmark("mace/train_{variant}")
    wildcard_constraints:
        variant=mace_plan.name_pattern(mace_plan.trainable_variants(config)),
    priority: 10
    conda:
        "../envs/mace.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=24 * 60,
    params:
        data=lambda w, input: mace_plan.cli_flags(
            dict(input.items()),
            [
                "perovs_train",
                "perovs_valid",
                "mptrj_cp2k",
                "omat24_train",
                "isolated_atoms",
                "replay",
                "foundation",
                "foundation_info",
            ],
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.mace.train run"
        " --variant {wildcards.variant:q} --variants-config {input.variants}"
        " --mace-config {input.settings} {params.data} --out {output.model}"
        " --threads {threads} > {log} 2>&1"
