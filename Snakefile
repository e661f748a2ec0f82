"""perovs-dopants: doped-perovskite DFT data and MACE finetuning, end to end.

snakemake --profile profiles/demo all      # laptop demo (demo/config.yaml)
snakemake --profile profiles/slurm all     # the study (config.yaml) on a SLURM cluster
"""

from snakemake.utils import min_version

min_version("9.0")


# A --configfile replaces config.yaml (also inside cluster jobs, which snakemake re-parses
# with --configfiles but without --replace-workflow-config).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


wildcard_constraints:
    host=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    defect=r"[A-Za-z0-9_.-]+",
    element=r"[A-Z][a-z]?",
    variant=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    model=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    dataset=r"[A-Za-z0-9_]+",
    index=r"\d+",
    batch=r"\d+",


# One module per stage, in the order of the data flow (the MPtrj subset's structures come
# before the CP2K jobs that label them).
include: "rules/common.smk"
include: "rules/structures.smk"
include: "rules/reference.smk"
include: "rules/dft.smk"
include: "rules/dataset.smk"
include: "rules/descriptors.smk"
include: "rules/training.smk"
include: "rules/evaluation.smk"
include: "rules/analysis.smk"
include: "rules/screening.smk"


rule all:
    default_target: True
    input:
        all_targets(),
