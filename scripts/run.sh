#!/usr/bin/env bash
# Set up (first time) and run the main job: `kedro run` on the embedded defaults.
# Extra arguments go to kedro run, e.g. scripts/run.sh --pipeline fusion --params preset=fusion_balanced
#
# With 2 or more cores and no --runner given, the seeds and tracks train side by side in two worker
# processes (streamguard.runners.DaskRunner: a local cluster on loopback, the cores split between
# them): tiny models use a second torch thread poorly, so two one-thread workers finish sooner than one
# process with two threads (BENCHMARKS.md, "The main job"). STREAMGUARD_SEQUENTIAL=1,
# or any --runner, runs the Kedro way instead (Kedro-Viz's workflow view needs a sequential run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements.txt
source scripts/offline_env.sh
runner=()
cores=$(nproc 2>/dev/null || echo 1)
if [[ " $* " != *" --runner"* && " $* " != *" -r "* && -z "${STREAMGUARD_SEQUENTIAL:-}" ]] && (( cores >= 2 )); then
  runner=(--runner streamguard.runners.DaskRunner --runner-params "n_workers=2,threads_per_worker=1,dashboard_address=null,warm_start=true")
fi
exec .venv/bin/kedro run "${runner[@]}" "$@"
