#!/usr/bin/env bash
# Set up everything perovs-dopants needs on a Debian/Ubuntu machine (idempotent; run as root or
# with sudo rights): CP2K from Debian, a .venv with the pinned Python packages (CPU torch first,
# so nothing pulls CUDA wheels), the workflow_scripts package in editable mode, and
# .venv-sevennet for the SevenNet baseline (its e3nn conflicts with mace-torch's).
# Cluster/GPU users: see docs/gpu.md for the CUDA build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
command -v cp2k.psmp >/dev/null 2>&1 || need_apt+=(cp2k)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
    # Keep Debian's default BLAS: libopenblas0-openmp made CP2K 5x slower here.
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need_apt[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    echo "setup: installing torch (CPU) first"
    # TORCH_INDEX_URL lets a machine without a local CPU wheel pick the CPU index.
    .venv/bin/python -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
echo "setup: installing pinned Python packages"
.venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
.venv/bin/python -m pip install -q --no-deps -e .
# The SevenNet baseline's own environment: SevenNet needs e3nn >= 0.5, mace-torch pins 0.4.4.
if [ ! -x .venv-sevennet/bin/python ]; then
    echo "setup: creating .venv-sevennet (SevenNet baseline)"
    python3 -m venv .venv-sevennet
fi
.venv-sevennet/bin/python -m pip install -q --upgrade pip
if ! .venv-sevennet/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv-sevennet/bin/python -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
.venv-sevennet/bin/python -m pip install -q -r requirements-sevennet.txt
# Named profiles (`snakemake --profile slurm all`): links into ~/.config/snakemake, never
# replacing a user's own profile of the same name (then it says how to install under a prefix).
bash scripts/install_profiles.sh || echo "setup: named profiles not all installed (see above)"
echo "setup: done ($(.venv/bin/python --version), $(cp2k.psmp --version 2>/dev/null | head -1))"
