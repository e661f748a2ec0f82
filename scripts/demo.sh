#!/usr/bin/env bash
# Set up, then run the demo workflow end to end (demo/config.yaml, real CP2K and MACE at toy
# size, stand-ins for the data that cannot be downloaded) and build the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
snakemake --profile profiles/demo all "$@"
report=$(python -c "from workflow_scripts import paths; print(paths.REPORT)")
snakemake --profile profiles/demo --report "$report"
echo "demo: done; results in $(dirname "$report")/, report in $report"
