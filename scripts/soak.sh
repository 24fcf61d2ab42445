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
export RUNNER_SOAK_TOKEN="$(openssl rand -hex 24)"
trap stop_emulators EXIT
start_emulators "RUNNER_URL=http://127.0.0.1:$RUNNER_SOAK_PORT
RUNNER_TOKEN=$RUNNER_SOAK_TOKEN
MESSAGES_PER_MINUTE=10000
IP_MESSAGES_PER_MINUTE=100000
RUN_TIMEOUT_MS=5000"
node scripts/soak.ts "$@"
