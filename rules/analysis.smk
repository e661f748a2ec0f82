"""Analysis: the study's figures (PNG + the CSV of their numbers) and the report's tables.

Each figure is a PNG with the CSV of its numbers beside it (paths.FIGURE); each is flagged for
`snakemake --report report.html` with a caption from report/.
`analysis_plan.analysis_targets(config, metric_tables)` lists them for the `all` rule.
The leaderboard (every model ranked per test set, from Table A1) is made
here with its bar chart, as findings.{csv,md} is.
"""

from workflow_scripts.analysis import energy_alignment
from workflow_scripts.analysis import plan as analysis_plan
from workflow_scripts.mace import plan as mace_plan

FIGURE_CAPTION = "../report/figure_table.rst"


rule analysis_initial_structures:
    """The initial structure (ionic step 0) of every Perovs-Dopants relaxation (Fig. 2)."""
    input:
        trajectories=[
            paths.fill(paths.TRAJECTORY, host=host, defect=defect)
            for host, defect in defect_pairs()
        ],
    output:
        analysis_plan.initial_structures_file(config["dataset"]["name"]),
    log:
        "logs/analysis/initial_structures.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "python -m workflow_scripts.analysis.embeddings initial --out {output}"
        " {input.trajectories} > {log} 2>&1"


rule analysis_force_shift_density:
    """CP2K-vs-VASP force shift on the CP2K MPtrj subset: density plot and summary."""
    input:
        reference=dataset_file("mptrj_cp2k_subset"),
        predictions=lambda w: analysis_plan.predictions_file(
            analysis_plan.required_model(config, "pretrained"), "mptrj_cp2k_subset"
        ),
        settings=section_file("analysis"),
    output:
        figure=report(
            paths.figure("force_shift_density"),
            caption="../report/force_shift_density.rst",
            category="1. DFT-code shift",
            subcategory="Fig. 1: force distributions",
        ),
        table=report(
            paths.figure("force_shift_density", "csv"),
            caption=FIGURE_CAPTION,
            category="1. DFT-code shift",
            subcategory="Fig. 1: force distributions",
        ),
        summary=report(
            paths.figure("force_shift_density_summary", "csv"),
            caption="../report/force_shift_summary.rst",
            category="1. DFT-code shift",
            subcategory="Fig. 1: force distributions",
        ),
    log:
        "logs/analysis/force_shift_density.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        dataset=mptrj_name(),
        model=lambda w: analysis_plan.required_model(config, "pretrained"),
        label_source=f"{mptrj_name()} label" if uses_standins() else "VASP",
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.analysis.force_shift density"
        " --reference {input.reference} --predictions {input.predictions}"
        " --settings {input.settings} --dataset-name {params.dataset:q}"
        " --model-name {params.model:q} --label-source {params.label_source:q}"
        " --out {output.figure} > {log} 2>&1"


rule analysis_force_shift_periodic_table:
    """The force shift per element on a periodic table."""
    input:
        reference=dataset_file("mptrj_cp2k_subset"),
        settings=section_file("analysis"),
    output:
        figure=report(
            paths.figure("force_shift_periodic_table"),
            caption="../report/force_shift_periodic_table.rst",
            category="1. DFT-code shift",
            subcategory="Fig. A1: per-element force difference",
        ),
        table=report(
            paths.figure("force_shift_periodic_table", "csv"),
            caption=FIGURE_CAPTION,
            category="1. DFT-code shift",
            subcategory="Fig. A1: per-element force difference",
        ),
    log:
        "logs/analysis/force_shift_periodic_table.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        dataset=mptrj_name(),
        label_source=f"{mptrj_name()} label" if uses_standins() else "VASP",
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.analysis.force_shift"
        " periodic-table --reference {input.reference} --settings {input.settings}"
        " --dataset-name {params.dataset:q} --label-source {params.label_source:q}"
        " --out {output.figure} > {log} 2>&1"


rule analysis_embedding_maps:
    """t-SNE and PHATE maps of the data sets in each model's descriptor space."""
    input:
        descriptors=lambda w: analysis_plan.map_descriptor_files(config),
        predictions=lambda w: analysis_plan.map_prediction_files(config),
        settings=section_file("analysis"),
        alignment=energy_alignment.fit_files(config),
    output:
        figure=report(
            paths.figure("embedding_maps"),
            caption="../report/embedding_maps.rst",
            category="2. Embeddings",
            subcategory="Fig. 2: t-SNE and PHATE per model",
        ),
        table=report(
            paths.figure("embedding_maps", "csv"),
            caption=FIGURE_CAPTION,
            category="2. Embeddings",
            subcategory="Fig. 2: t-SNE and PHATE per model",
        ),
    log:
        "logs/analysis/embedding_maps.log",
    benchmark:
        paths.benchmark("analysis/embedding_maps")
    conda:
        "../envs/analysis.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        predictions=lambda w: analysis_plan.prediction_flags(
            analysis_plan.map_prediction_keys(config)
        ),
        descriptors=lambda w: analysis_plan.descriptor_flags(
            analysis_plan.map_descriptor_keys(config)
        ),
        models=lambda w: analysis_plan.model_flags(config),
        datasets=analysis_plan.dataset_flags(config, analysis_plan.MAP_DATASETS),
        error_dataset=analysis_plan.MAP_ERROR_DATASET,
        error_roles=analysis_plan.error_role_flags(),
        energy=lambda w, input: energy_alignment.scale_flags(
            config,
            [
                analysis_plan.required_model(config, r)
                for r in analysis_plan.MAP_ERROR_ROLES
            ],
        )
        + (f" --energy-alignment {input.alignment}" if input.alignment else ""),
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.analysis.embeddings maps"
        " --settings {input.settings} {params.models} {params.datasets}"
        " --error-dataset {params.error_dataset} {params.error_roles} {params.energy}"
        " {params.descriptors}"
        " {params.predictions} --threads {threads}"
        " --out {output.figure} > {log} 2>&1"


rule analysis_dataset_coverage:
    """t-SNE of the Perovs-Dopants frames against the MPtrj pool (coverage)."""
    input:
        descriptors=lambda w: analysis_plan.coverage_descriptor_files(config),
        settings=section_file("analysis"),
    output:
        figure=report(
            paths.figure("dataset_coverage_tsne"),
            caption="../report/dataset_coverage_tsne.rst",
            category="3. Dataset",
            subcategory="Fig. 3b: chemical-space coverage",
        ),
        table=report(
            paths.figure("dataset_coverage_tsne", "csv"),
            caption=FIGURE_CAPTION,
            category="3. Dataset",
            subcategory="Fig. 3b: chemical-space coverage",
        ),
    log:
        "logs/analysis/dataset_coverage_tsne.log",
    conda:
        "../envs/analysis.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        descriptors=lambda w: analysis_plan.descriptor_flags(
            analysis_plan.coverage_descriptor_keys(config)
        ),
        model=lambda w: analysis_plan.required_model(config, "pretrained"),
        datasets=analysis_plan.dataset_flags(config, analysis_plan.COVERAGE_DATASETS),
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.analysis.embeddings coverage"
        " --settings {input.settings} --model {params.model:q} {params.datasets}"
        " {params.descriptors} --threads {threads}"
        " --out {output.figure} > {log} 2>&1"


rule analysis_element_distribution:
    """Element counts of the hosts and substituents (the study's Fig. 1)."""
    input:
        manifest=paths.DEFECT_MANIFEST,
        hosts=expand(paths.HOST, host=host_names()),
        settings=section_file("analysis"),
    output:
        figure=report(
            paths.figure("element_distribution"),
            caption="../report/element_distribution.rst",
            category="3. Dataset",
            subcategory="Fig. 3a: element distribution",
        ),
        table=report(
            paths.figure("element_distribution", "csv"),
            caption=FIGURE_CAPTION,
            category="3. Dataset",
            subcategory="Fig. 3a: element distribution",
        ),
    log:
        "logs/analysis/element_distribution.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dataset=config["dataset"]["name"],
    shell:
        "python -m workflow_scripts.analysis.element_distribution --manifest {input.manifest}"
        " --hosts {input.hosts} --settings {input.settings}"
        " --dataset-name {params.dataset:q} --out {output.figure} > {log} 2>&1"


rule analysis_per_substituent:
    """Force error per substituent for every model, as a table and a chart."""
    input:
        metrics=paths.metric("per_substituent"),
        settings=section_file("analysis"),
    output:
        figure=report(
            paths.figure("per_substituent_errors"),
            caption="../report/per_substituent_errors.rst",
            category="4. Errors",
            subcategory="Errors per substituent",
        ),
        table=report(
            paths.figure("per_substituent_errors", "csv"),
            caption=FIGURE_CAPTION,
            category="4. Errors",
            subcategory="Errors per substituent",
        ),
    log:
        "logs/analysis/per_substituent_errors.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dataset=config["dataset"]["name"],
        test_set=analysis_plan.ERROR_DATASET,
    shell:
        "python -m workflow_scripts.analysis.per_substituent --metrics {input.metrics}"
        " --test-set {params.test_set} --settings {input.settings}"
        " --dataset-name {params.dataset:q} --out {output.figure} > {log} 2>&1"


rule analysis_findings:
    """The studies' findings, each checked on this run's tables (reproduced or not)."""
    input:
        table_a1=paths.metric("tableA1"),
        force_shift=lambda w: analysis_plan.findings_force_shift_files(config),
        descriptors=lambda w: analysis_plan.findings_descriptor_files(config),
        screening=[t for t in screening_targets() if t.endswith("model_comparison.md")],
        variants=section_file("variants"),
        mace=section_file("mace"),
        analysis=section_file("analysis"),
        reference=section_file("reference"),
    output:
        table=report(
            analysis_plan.FINDINGS_FILES[0],
            caption="../report/findings.rst",
            category="0. Findings",
        ),
        markdown=analysis_plan.FINDINGS_FILES[1],
    log:
        "logs/analysis/findings.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        descriptors=lambda w: analysis_plan.descriptor_flags(
            analysis_plan.findings_descriptor_keys(config)
        ),
        force_shift=lambda w, input: (
            f"--force-shift-summary {input.force_shift}" if input.force_shift else ""
        ),
        config_file=" ".join(os.path.relpath(f) for f in workflow.configfiles)
        or "config.yaml",
        labellers=analysis_plan.labeller_flags(config),
        screening=lambda w, input: (
            f"--screening-comparison {input.screening}" if input.screening else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow_scripts.analysis.findings"
        " --table-a1 {input.table_a1} {params.force_shift}"
        " --variants-config {input.variants} --mace-config {input.mace}"
        " --analysis-config {input.analysis} --reference-config {input.reference}"
        " {params.descriptors} --config-file {params.config_file:q}"
        " {params.labellers} {params.screening} --out {output.table} > {log} 2>&1"


rule analysis_leaderboard:
    """Every model ranked on each test set by force and energy MAE, and its bar chart."""
    input:
        table_a1=mace_plan.metric_file("tableA1"),
        variants=section_file("variants"),
        alignment=energy_alignment.fit_files(config),
    output:
        table=analysis_plan.LEADERBOARD_FILES[0],
        markdown=analysis_plan.LEADERBOARD_FILES[1],
        figure=report(
            analysis_plan.LEADERBOARD_FILES[2],
            caption="../report/leaderboard.rst",
            category="4. Errors",
            subcategory="Leaderboard",
        ),
        figure_table=report(
            analysis_plan.LEADERBOARD_FILES[3],
            caption=FIGURE_CAPTION,
            category="4. Errors",
            subcategory="Leaderboard",
        ),
    log:
        "logs/analysis/leaderboard.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        labellers=analysis_plan.labeller_flags(config),
        alignment=lambda w, input: (
            f"--energy-alignment {input.alignment}" if input.alignment else ""
        ),
    shell:
        "python -m workflow_scripts.analysis.leaderboard --table-a1 {input.table_a1}"
        " --variants-config {input.variants} {params.alignment} {params.labellers}"
        " --out {output.table} --figure {output.figure} > {log} 2>&1"


rule analysis_metric_table:
    """One metric table as HTML for the report."""
    input:
        paths.metric("{table}"),
    output:
        report(
            paths.REPORT_TABLE,
            caption="../report/metric_table.rst",
            category="5. Metric tables",
        ),
    log:
        "logs/analysis/metric_table_{table}.log",
    wildcard_constraints:
        table=r"[A-Za-z0-9_]+",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        title=lambda w: w.table.replace("_", " "),
    shell:
        "python -m workflow_scripts.analysis.tables html --csv {input} --title {params.title:q}"
        " --out {output} > {log} 2>&1"
