#!/usr/bin/env bash
# Set up, then run the demo workflow end to end (demo/config.yaml, real CP2K and MACE at toy
# size, stand-ins for the data that cannot be downloaded) and build the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
snakemake --profile profiles/demo all "$@"
snakemake --profile profiles/demo --report results/report.html
echo "demo: done; results in results/, report in results/report.html"
