#!/usr/bin/env bash
# npm run bench [-- --quick | --long]: builds, makes sure the images exist, starts the emulator
# stack (for the end-to-end sendMessage numbers), runs runner/bench/bench.ts, stops everything.
# BENCH_STACK=0 skips the emulator part.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh
npm run build --silent
bash scripts/images.sh agent
if [ "${BENCH_STACK:-1}" != "0" ]; then
  source scripts/emulator-env.sh
  source scripts/lib/emulators.sh
  export RUNNER_BENCH_PORT="${RUNNER_BENCH_PORT:-18082}"
  export BENCH_STACK=1
  start_emulators_for_runner "$RUNNER_BENCH_PORT" "MESSAGES_PER_MINUTE=10000
IP_MESSAGES_PER_MINUTE=100000
RUN_TIMEOUT_MS=30000"
  export RUNNER_BENCH_TOKEN="$STACK_RUNNER_TOKEN"
else
  unset BENCH_STACK
fi
node runner/bench/bench.ts "$@"
