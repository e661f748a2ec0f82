"""Predictions of every model on every test set, and the metric tables (workflow_scripts.mace).

Predictions (paths.PREDICTIONS) of a MACE variant (mace_predict) or a baseline
(baseline_predict: any ASE calculator, workflow_scripts.baselines); {dataset} is a data-set key
of dataset_file() in common.smk. The metric tables (paths.METRIC): the study's Table 1 (force
MAE) and Table A1, per element and per substituent errors; energy_alignment.{csv,json}:
per-element CP2K/VASP energy offsets
(docs/energy_alignment.md) with which Table A1 compares energies across codes.
"""

import shlex

from workflow_scripts.analysis import energy_alignment
from workflow_scripts.mace import plan as mace_plan


rule mace_predict:
    """One MACE variant's energies, forces and stresses on one test set."""
    input:
        model=lambda w: model_file(w.model),
        data=lambda w: dataset_file(w.dataset),
        evaluation=section_file("evaluation"),
        settings=section_file("mace"),
    output:
        paths.PREDICTIONS,
    log:
        "logs/mace/predict_{model}_{dataset}.log",
    benchmark:
        paths.benchmark("mace/predict_{model}_{dataset}")
    wildcard_constraints:
        model=mace_plan.name_pattern(config["variants"]),
    conda:
        "../envs/mace.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.mace.evaluate mace"
        " --model {input.model} --model-name {wildcards.model:q} --data {input.data}"
        " --out {output} --evaluation-config {input.evaluation}"
        " --mace-config {input.settings} --threads {threads} > {log} 2>&1"


rule baseline_predict:
    """Zero-shot predictions of one baseline (any ASE calculator, in its own environment)."""
    input:
        data=lambda w: dataset_file(w.dataset),
        baseline=lambda w: baseline_file(w.model),
        settings=section_file("mace"),
    output:
        paths.PREDICTIONS,
    log:
        "logs/mace/predict_{model}_{dataset}.log",
    benchmark:
        paths.benchmark("mace/predict_{model}_{dataset}")
    wildcard_constraints:
        model=mace_plan.name_pattern(config["baselines"]),
    conda:
        lambda w: baseline_conda_file(w.model)
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        python=lambda w: baseline_python(w.model),
    shell:
        "OMP_NUM_THREADS={threads} {params.python} -m workflow_scripts.baselines.predict"
        " --model-name {wildcards.model:q} --baseline-config {input.baseline}"
        " --data {input.data} --out {output} --mace-config {input.settings}"
        " --threads {threads} > {log} 2>&1"


rule energy_alignment:
    """Per-element offsets E_VASP - E_CP2K fitted on the CP2K-recomputed MPtrj subset."""
    input:
        reference=dataset_file("mptrj_cp2k_subset"),
    output:
        table=energy_alignment.FIT_CSV,
        fit=energy_alignment.FIT_JSON,
    log:
        "logs/mace/energy_alignment.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        label_source=f"{mptrj_name()} label" if uses_standins() else "VASP",
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.analysis.energy_alignment fit"
        " --reference {input.reference} --label-source {params.label_source:q}"
        " --out {output.table} > {log} 2>&1"


rule mace_metric_tables:
    """Table 1, Table A1, per-element and per-substituent errors of every model."""
    input:
        predictions=mace_plan.prediction_files(
            model_names(), config["evaluation"]["test_sets"]
        ),
        alignment=energy_alignment.fit_files(config),
        variants=section_file("variants"),
        evaluation=section_file("evaluation"),
        baselines=section_file("baselines"),
        dataset=section_file("dataset"),
        reference=section_file("reference"),
        foundation=paths.FOUNDATION_INFO,
    output:
        mace_plan.metric_files(),
    log:
        "logs/mace/metric_tables.log",
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        metrics_dir=lambda w, output: Path(output[0]).parent,
        predictions=mace_plan.prediction_flags(
            model_names(), config["evaluation"]["test_sets"]
        ),
        models=" ".join(shlex.quote(model) for model in model_names()),
        alignment=lambda w, input: (
            f"--energy-alignment {input.alignment}" if input.alignment else ""
        ),
    shell:
        "python -m workflow_scripts.mace.metrics tables {params.predictions}"
        " --models {params.models} --variants-config {input.variants}"
        " --evaluation-config {input.evaluation} --baselines-config {input.baselines}"
        " --dataset-config {input.dataset}"
        " --reference-config {input.reference} --foundation-info {input.foundation}"
        " {params.alignment} --out-dir {params.metrics_dir} > {log} 2>&1"
