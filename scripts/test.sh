#!/usr/bin/env bash
# Set up, then run the whole test suite (real CP2K, real MACE, a real local SLURM cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
python -m pytest "$@"
