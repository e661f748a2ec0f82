"""Analysis stage: the study's figures, each a PNG with the CSV of its numbers beside it.

One module per figure family, each with a CLI (``python -m workflow_scripts.analysis.<module>``):

- :mod:`.force_shift` — CP2K vs VASP vs foundation-model forces (Fig. 1) and the per-element
  periodic table of mean |ΔF| (Fig. A1);
- :mod:`.embeddings` — MPtrj embedding sample, t-SNE/PHATE maps (Fig. 2), dataset coverage
  t-SNE (Fig. 3b);
- :mod:`.element_distribution` — host and substituent elements (Fig. 3a);
- :mod:`.per_substituent` — per-substituent energy/force errors;
- :mod:`.energy_alignment` — per-element CP2K/VASP energy offsets, fitted on the
  CP2K-recomputed MPtrj subset, that put energies of the two codes on one scale;
- :mod:`.tables` — metric tables as HTML for the Snakemake report.

:mod:`.plan` holds the light, parse-time helpers the rule module uses.
"""
