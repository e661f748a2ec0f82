"""Dopant screening (workflow_scripts.screening; docs/screening.md), when screening.enabled.

Each host's pristine supercell (the defect named paths.PRISTINE, relaxed by cp2k_relax like a
defect, at exactly its defects' settings) and each element's reference phase (cp2k_reference)
-> the DFT screen set and formation energies (screening_dft) -> every model's screen
(screening_model) -> the comparison, its table and figures.
"""

from workflow_scripts.screening import references as screening_references


ruleorder: pristine_structure > defect_structure


rule pristine_structure:
    """The host supercell without a defect, as the defect supercells are built."""
    input:
        host=lambda wildcards: supercell_host_file(wildcards.host),
    output:
        json=paths.fill(paths.DEFECT, defect=paths.PRISTINE),
        cif=paths.fill(paths.DEFECT_CIF, defect=paths.PRISTINE),
    log:
        "logs/structures/{host}/pristine.log",
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        supercell=lambda wildcards: " ".join(map(str, host_supercell(wildcards.host))),
    shell:
        "python -m workflow_scripts.structures pristine --host-json {input.host}"
        " --host-name {wildcards.host} --supercell {params.supercell}"
        " --out-json {output.json} --out-cif {output.cif} > {log} 2>&1"


rule reference_structure:
    """An element's reference phase (ASE's reference state, or a molecule in a box)."""
    output:
        paths.REFERENCE_STRUCTURE,
    log:
        "logs/screening/reference_structure_{element}.log",
    conda:
        "../envs/structures.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        box=config["screening"]["references"]["molecule_box"],
        structure=lambda w: reference_structure_flag(w.element),
    shell:
        "python -m workflow_scripts.screening.references --element {wildcards.element}"
        " --box {params.box} {params.structure} --out {output} > {log} 2>&1"


# One elemental reference: CELL_OPT with k-points for a solid (a single point when the cell
# is kept and symmetry fixes every position), GEO_OPT at Γ for a molecule. Leaves of the DAG,
# so without the CP2K jobs' priority.
use rule cp2k_host_cell as cp2k_reference with:
    input:
        structure=rules.reference_structure.output[0],
        settings=section_file("dft"),
    output:
        paths.CP2K_REFERENCE,
    log:
        "logs/cp2k/reference/{element}.log",
    benchmark:
        paths.benchmark("cp2k/reference/{element}")
    priority: 0
    params:
        task=lambda w, input: f"{reference_task(w.element)} --structure {input.structure}",


rule screening_dft:
    """The DFT screen: converged defects, pristine hosts and references; formation energies."""
    input:
        manifest=paths.DEFECT_MANIFEST,
        defects=screening_defect_summaries(),
        hosts=screening_host_summaries(),
        references=screening_reference_summaries(),
    output:
        structures=paths.screening("dft_structures.extxyz"),
        formation=report(
            paths.screening("formation_energies.csv"),
            caption="../report/screening_formation.rst",
            category="5. Screening",
        ),
        potentials=paths.screening("chemical_potentials.csv"),
        entries=paths.screening("entries.csv"),
    log:
        "logs/screening/dft.log",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        pairs=screening_pair_flags(),
        held_out=" ".join(config["dataset"]["split"]["held_out_substituents"]),
    shell:
        "python -m workflow_scripts.screening.dft_set --manifest {input.manifest}"
        " {params.pairs} --held-out {params.held_out}"
        " --out-structures {output.structures} --out-formation {output.formation}"
        " --out-potentials {output.potentials} --out-entries {output.entries} > {log} 2>&1"


rule screening_model:
    """One model's screen: single points at the DFT geometries and its own relaxations."""
    input:
        model=lambda w: screening_model_input(w.model),
        structures=rules.screening_dft.output.structures,
        screening=section_file("screening"),
        settings=section_file("mace"),
        evaluation=section_file("evaluation"),
    output:
        paths.SCREENING_MODEL,
    log:
        "logs/screening/model_{model}.log",
    benchmark:
        paths.benchmark("screening/model_{model}")
    wildcard_constraints:
        model=mace_plan.name_pattern(screening_models()),
    conda:
        lambda w: screening_conda_file(w.model)
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        python=lambda w: screening_python(w.model),
        model=lambda w, input: screening_model_flag(w.model, input.model),
    shell:
        "OMP_NUM_THREADS={threads} {params.python} -m workflow_scripts.screening.model_screen"
        " --model-name {wildcards.model:q} {params.model} --structures {input.structures}"
        " --screening-config {input.screening} --mace-config {input.settings}"
        " --evaluation-config {input.evaluation} --threads {threads}"
        " --out {output} > {log} 2>&1"


rule screening_compare:
    """Every model's formation energies, rankings and sites against DFT's."""
    input:
        formation=rules.screening_dft.output.formation,
        entries=rules.screening_dft.output.entries,
        structures=rules.screening_dft.output.structures,
        models=expand(rules.screening_model.output, model=screening_models()),
    output:
        values=paths.screening("model_formation_energies.csv"),
        table=report(
            paths.screening("model_comparison.csv"),
            caption="../report/screening_comparison.rst",
            category="5. Screening",
        ),
        markdown=paths.screening("model_comparison.md"),
    log:
        "logs/screening/compare.log",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=" ".join(
            f"--model {m}={paths.fill(paths.SCREENING_MODEL, model=m)}"
            for m in screening_models()
        ),
        run_label=config["run_label"],
    shell:
        "python -m workflow_scripts.screening.compare --formation {input.formation}"
        " --entries {input.entries} --structures {input.structures} {params.models}"
        " --run-label {params.run_label:q} --out-values {output.values}"
        " --out {output.table} > {log} 2>&1"


rule screening_figure:
    """DFT formation energies per host, site and substituent; every model's parity."""
    input:
        lambda w: {
            "heatmap": rules.screening_dft.output.formation,
            "parity": rules.screening_compare.output.values,
        }[w.figure],
    output:
        figure=report(
            paths.figure("screening_{figure}"),
            caption="../report/screening_figures.rst",
            category="5. Screening",
        ),
        table=paths.figure("screening_{figure}", "csv"),
    log:
        "logs/screening/figure_{figure}.log",
    wildcard_constraints:
        figure="heatmap|parity",
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        run_label=config["run_label"],
    shell:
        "python -m workflow_scripts.screening.figures {wildcards.figure} --table {input}"
        " --run-label {params.run_label:q} --out {output.figure} > {log} 2>&1"
