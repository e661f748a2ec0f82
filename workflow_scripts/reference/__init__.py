"""Reference data sets (MPtrj, OMat24): ingestion, test subsets, FPS replay selection,
descriptors, offline stand-ins and fetching of the real files.

Modules (each has a CLI: ``python -m workflow_scripts.reference.<module> --help``):
``mptrj`` (stream MPtrj JSON to extxyz), ``omat24`` (.aselmdb shards to extxyz), ``fps``
(farthest point sampling), ``descriptors`` (per-structure mean MACE features), ``standins``
(CHGNet-labelled offline stand-ins in the real formats), ``fetch`` (local path or download).
Helpers: ``extxyz`` (byte-preserving frame I/O for large files), ``plan`` (file names for
rules/reference.smk).
"""
