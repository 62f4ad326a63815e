#!/usr/bin/env bash
# Set up (first time) and run the main job: `kedro run` on the embedded defaults.
# Extra arguments go to kedro run, e.g. scripts/run.sh --pipeline fusion --params preset=fusion_balanced
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements.txt
source scripts/offline_env.sh
exec .venv/bin/kedro run "$@"
