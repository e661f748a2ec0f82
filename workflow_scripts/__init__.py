"""perovs-dopants: the logic behind the Snakemake workflow, one module per stage.

Rules in ``rules/`` stay thin: they call ``python -m workflow_scripts.<module>`` entry points
or functions defined here. Heavy libraries (pymatgen, torch, mace) are imported inside the
functions that need them so that parsing the Snakefile stays fast.
"""

__version__ = "0.1.0"
