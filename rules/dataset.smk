"""Data sets from the CP2K jobs: each relaxation's trajectory, the isolated atoms' E0 frames,
the CP2K labels of the MPtrj subset (workflow_scripts.cp2k.trajectory), and the Perovs-Dopants
train/valid/test split (workflow_scripts.splits).

CP2K jobs that failed for good are left out (failed relaxations by default:
dataset.failed_relaxations; frames with an element whose isolated atom failed always), each
named in the log; the failures checks it waits for stop the run if too many failed.
The same files, with a frame table, a dataset card and checksums, form the artefact folder
named after dataset.name (paths.DATASET_ARTEFACT; workflow_scripts.dataset_card).
"""


rule trajectory:
    """One relaxation's frames as extxyz, in mace-torch's keys and eV/Å units."""
    input:
        summary=paths.CP2K_RELAX,
        structure=paths.DEFECT,
    output:
        paths.TRAJECTORY,
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
        " --structure {input.structure} --summary {input.summary}"
        " --dataset {params.dataset:q} --out {output} > {log} 2>&1"


rule isolated_atoms_dataset:
    """The isolated atoms' CP2K energies as E0 frames (config_type IsolatedAtom)."""
    input:
        summaries=cp2k_outputs("isolated_atom"),
        failures=paths.fill(paths.CP2K_FAILED_JOBS, job="isolated_atom"),
    output:
        paths.ISOLATED_ATOMS,
    log:
        "logs/cp2k/isolated_atoms.log",
    conda:
        "../envs/cp2k.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        workdirs=lambda wildcards, input: [Path(s).parent for s in input.summaries],
        dataset=config["dataset"]["name"],
    shell:
        "python -m workflow_scripts.cp2k.trajectory atoms --workdirs {params.workdirs}"
        " --dataset {params.dataset:q} --out {output} > {log} 2>&1"


rule mptrj_cp2k_labels:
    """The MPtrj subset relabelled by CP2K: frames from the single-point listings."""
    input:
        structures=paths.reference_file(mptrj_name(), "cp2k_subset_structures"),
        batches=cp2k_outputs("single_point"),
        failures=paths.fill(paths.CP2K_FAILED_JOBS, job="single_point"),
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
    shell:
        "python -m workflow_scripts.cp2k.trajectory mptrj-labels"
        " --structures {input.structures} --batches {input.batches} --out {output}"
        " > {log} 2>&1"


rule dataset_splits:
    """The 8:1:1 (configurable) split of the relaxation frames, plus held-out dopants."""
    input:
        settings=section_file("dataset"),
        isolated_atoms=paths.ISOLATED_ATOMS,
        failed_relax=paths.fill(paths.CP2K_FAILED_JOBS, job="relax"),
        failed_atoms=paths.fill(paths.CP2K_FAILED_JOBS, job="isolated_atom"),
        trajectories=[
            paths.fill(paths.TRAJECTORY, host=host, defect=defect)
            for host, defect in defect_pairs()
        ],
    output:
        train=paths.split("train"),
        valid=paths.split("valid"),
        test=paths.split("test"),
        held_out=paths.HELD_OUT,
    log:
        "logs/dataset/splits.log",
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "python -m workflow_scripts.splits --settings {input.settings}"
        " --isolated-atoms {input.isolated_atoms} --train {output.train}"
        " --failures {input.failed_relax} --failures {input.failed_atoms}"
        " --valid {output.valid} --test {output.test} --held-out {output.held_out}"
        " {input.trajectories} > {log} 2>&1"


DATASET_DIR = paths.fill(paths.DATASET_ARTEFACT, name=config["dataset"]["name"])


rule dataset_artefact:
    """The data set as one folder: splits, isolated atoms, frames.csv, card, SHA256SUMS."""
    input:
        train=rules.dataset_splits.output.train,
        valid=rules.dataset_splits.output.valid,
        test=rules.dataset_splits.output.test,
        held_out=rules.dataset_splits.output.held_out,
        isolated_atoms=paths.ISOLATED_ATOMS,
        dft=section_file("dft"),
        settings=section_file("dataset"),
    output:
        train=f"{DATASET_DIR}/train.extxyz",
        valid=f"{DATASET_DIR}/valid.extxyz",
        test=f"{DATASET_DIR}/test.extxyz",
        held_out=f"{DATASET_DIR}/held_out.extxyz",
        isolated_atoms=f"{DATASET_DIR}/isolated_atoms.extxyz",
        frames=f"{DATASET_DIR}/frames.csv",
        card=f"{DATASET_DIR}/README.md",
        checksums=f"{DATASET_DIR}/SHA256SUMS",
    log:
        "logs/dataset/artefact.log",
    conda:
        "../envs/mace.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        name=config["dataset"]["name"],
        out_dir=lambda wildcards, output: Path(output.card).parent,
    shell:
        "python -m workflow_scripts.dataset_card --train {input.train} --valid {input.valid}"
        " --test {input.test} --held-out {input.held_out}"
        " --isolated-atoms {input.isolated_atoms}"
        " --dft-settings {input.dft} --dataset-settings {input.settings}"
        " --name {params.name:q} --out-dir {params.out_dir:q} > {log} 2>&1"
