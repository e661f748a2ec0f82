"""Baselines: pretrained models other than the MACE variants, evaluated zero-shot.

Any model with an ASE calculator is a baseline by config (``baselines`` in config.yaml): a
registered name (:mod:`.registry`: CHGNet, SevenNet-0, and models whose weights must be
fetched first) or ``factory: module:callable`` with keyword arguments and a local checkpoint.
:mod:`.predict` writes one baseline's predictions on one test set under the same keys as the
MACE predictions, so the tables, figures and leaderboard treat every model alike.
"""
