"""perovs-dopants: doped-perovskite DFT data and MACE finetuning, end to end.

    snakemake --profile profiles/demo all      # laptop demo (demo/config.yaml)
    snakemake --profile profiles/slurm all     # the study (config.yaml) on a SLURM cluster
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/structures.smk"


rule all:
    input:
        defect_structure_files(),
        "results/structures/manifest.csv",
    default_target: True
