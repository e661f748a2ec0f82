"""Perovs-Dopants data set: trajectories + isolated atoms -> train/valid/test (workflow_scripts.splits).

CP2K jobs that failed for good are left out (failed relaxations by default:
dataset.failed_relaxations; frames with an element whose isolated atom failed always), each
named in the log; the failures checks it waits for stop the run if too many failed.
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
        " --valid {output.valid} --test {output.test} {input.trajectories} > {log} 2>&1"
