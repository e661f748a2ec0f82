"""MACE stage: foundation model, training variants, evaluation and metric tables.

Modules: :mod:`.foundation` (resolve or pretrain the foundation model), :mod:`.train`
(``mace_run_train`` command lines per variant and the read-back of what mace really did),
:mod:`.readback` (parsing mace's logs, checkpoints and models), :mod:`.evaluate` (batched
predictions of MACE models), :mod:`.metrics` (errors and the study's tables),
:mod:`.settings` (config sections, devices, threads) and :mod:`.synthetic` (small labelled
frames for tests and benchmarks).
"""
