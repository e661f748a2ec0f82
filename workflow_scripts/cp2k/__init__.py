"""The CP2K stage: inputs, custodian-supervised runs, output parsing, trajectories.

Modules, in the order data flows through them:

- :mod:`.basis` picks a basis set and a GTH pseudopotential of matching valence per element
  from CP2K's data files.
- :mod:`.atoms` holds the spin states and SCF strategy of isolated atoms.
- :mod:`.inputs` writes every CP2K input (relaxations, single points, isolated atoms) and checks
  the study inputs with CP2K itself.
- :mod:`.run` runs CP2K under custodian, one fresh directory per attempt, resuming after kills.
- :mod:`.parse` reads CP2K's ``.out`` and trajectory files, strictly.
- :mod:`.trajectory` turns all attempts of a calculation into labelled extxyz frames.

Units: :mod:`.units` holds the one Hartree/Bohr conversion (ASE's CODATA 2014 constants).
"""
