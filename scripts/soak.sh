#!/usr/bin/env bash
# npm run soak [-- --users N --messages M --concurrency C]: builds, makes sure the images exist,
# starts the emulator stack (RUN_TIMEOUT_MS=5000 so the soak's timeouts are short, no practical
# rate limit), runs scripts/soak.ts (which owns the runner, and kills and restarts it midway),
# stops everything. Exits non-zero on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh
npm run build --silent
bash scripts/images.sh agent
source scripts/emulator-env.sh
source scripts/lib/emulators.sh
export RUNNER_SOAK_PORT="${RUNNER_SOAK_PORT:-18084}"
start_emulators_for_runner "$RUNNER_SOAK_PORT" "MESSAGES_PER_MINUTE=10000
IP_MESSAGES_PER_MINUTE=100000
RUN_TIMEOUT_MS=5000"
export RUNNER_SOAK_TOKEN="$STACK_RUNNER_TOKEN"
node scripts/soak.ts "$@"
