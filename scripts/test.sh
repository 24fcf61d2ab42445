#!/usr/bin/env bash
# npm test: lint, type-check, build, (re)build the images, start the Firebase emulators (Auth,
# Functions, Firestore, Hosting) on loopback, then every test in one node:test run (the browser
# tests drive Debian's Chromium), then the sandbox suites again under gVisor (runsc) when the
# engine has it; stops the emulators by PID at the end. Needs a Docker engine,
# Java >= 21 and Chromium (.ci/run provides them).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh

if ! docker info >/dev/null 2>&1; then
  echo "npm test: no Docker engine answers. Start one (or run .ci/run, which installs and starts it)." >&2
  exit 1
fi
source scripts/emulator-env.sh
source scripts/lib/emulators.sh

echo "[test] lint and format check"
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
npm run docs --silent -- --check # docs/configuration.md matches the config tables
echo "[test] type-check (sources and tests)"
npx tsc -b contract # the others type-check against its declarations
npx tsc -p contract/tsconfig.test.json
npx tsc -p runner/tsconfig.test.json
npx tsc -p functions/tsconfig.test.json
npx tsc -p tsconfig.scripts.json
echo "[test] build"
npm run build --silent
echo "[test] images"
bash scripts/images.sh

# The functions' integration tests own a runner on this port; the emulated functions find it
# through functions/.env.local.
export RUNNER_TEST_PORT="${RUNNER_TEST_PORT:-18081}"
export RUNNER_TEST_TOKEN="$(openssl rand -hex 24)"
export RUNNER_TEST_ID="functions-test-$$"
export MESSAGES_PER_MINUTE_TEST=5
trap stop_emulators EXIT
start_emulators "RUNNER_URL=http://127.0.0.1:$RUNNER_TEST_PORT
RUNNER_TOKEN=$RUNNER_TEST_TOKEN
MESSAGES_PER_MINUTE=$MESSAGES_PER_MINUTE_TEST
IP_MESSAGES_PER_MINUTE=100000
ENFORCE_APP_CHECK=true
RUN_TIMEOUT_MS=30000"

# The sandbox suites run a second time under gVisor (runsc) when the engine has it (.ci/run
# registers it). With TEST_FILES set, only those files run, under runc.
SANDBOX_SUITES="runner/test/hardening.test.ts runner/test/hostile.test.ts runner/test/lifecycle.test.ts runner/test/warm.test.ts runner/test/streaming.test.ts runner/test/stalled-engine.test.ts runner/test/engine-restart.test.ts runner/test/model-gateway.test.ts runner/test/workspace-store.test.ts runner/test/files.test.ts"
has_runsc=0
if [ -z "${TEST_FILES:-}" ] && docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
  has_runsc=1
fi

echo "[test] tests"
status=0
node --test --test-concurrency=1 --test-timeout=300000 ${TEST_FILES:-contract/test/*.test.ts runner/test/*.test.ts functions/test/*.test.ts scripts/*.test.ts web/test/*.test.ts} || status=$?
if [ "$has_runsc" = 1 ]; then
  echo "[test] sandbox suites under gVisor (runsc)"
  SANDBOX_TEST_RUNTIME=runsc node --test --test-concurrency=1 --test-timeout=300000 $SANDBOX_SUITES || status=$?
fi
exit "$status"
