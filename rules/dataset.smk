"""Perovs-Dopants data set: trajectories + isolated atoms -> train/valid/test (workflow_scripts.splits).

CP2K jobs that failed for good are left out (failed relaxations by default:
dataset.failed_relaxations; frames with an element whose isolated atom failed always), each
named in the log; the failures checks it waits for stop the run if too many failed.
The same files, with a frame table, a dataset card and checksums, form the artefact folder
results/dataset/{dataset.name}/ (workflow_scripts.dataset_card).
"""


rule dataset_splits:
    input:
        settings=section_file("dataset"),
        isolated_atoms="results/dataset/isolated_atoms.extxyz",
        failed_relax="results/cp2k/failures/relax.csv",
        failed_atoms="results/cp2k/failures/isolated_atom.csv",
        trajectories=[
            f"results/trajectories/{host}/{defect}.extxyz"
            for host, defect in defect_pairs()
        ],
    output:
        train="results/dataset/train.extxyz",
        valid="results/dataset/valid.extxyz",
        test="results/dataset/test.extxyz",
        held_out="results/dataset/held_out.extxyz",
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


DATASET_DIR = f"results/dataset/{config['dataset']['name']}"


rule dataset_artefact:
    """The data set as one folder: splits, isolated atoms, frames.csv, card, SHA256SUMS."""
    input:
        train=rules.dataset_splits.output.train,
        valid=rules.dataset_splits.output.valid,
        test=rules.dataset_splits.output.test,
        held_out=rules.dataset_splits.output.held_out,
        isolated_atoms="results/dataset/isolated_atoms.extxyz",
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
