#!/usr/bin/env bash
# npm test: every test. First what needs nothing but Node (lint, format, types, the unit tests:
# a broken change fails in a minute), then the build and the images, `npm start` with Ctrl-C
# (scripts/start-stack.test.ts), the Firebase emulators (Auth, Functions, Firestore, Hosting) on
# loopback, every test that needs Docker or the emulators in one node:test run (the browser tests
# drive Debian's Chromium), and the sandbox suites again under gVisor (runsc) when the engine has
# it; the emulators are stopped by PID at the end. Needs a Docker engine, Java >= 21 and Chromium
# (.ci/run provides them). TEST_FILES="a.test.ts b.test.ts" runs only those (after the checks).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh

source scripts/lib/test-files.sh

echo "[test] lint and format check"
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
npm run docs --silent -- --check # docs/configuration.md matches the config tables
node scripts/deploy/param-defaults.ts --check # so do the deploy's copies of the params' defaults
echo "[test] type-check (sources and tests)"
npx tsc -b contract # the others type-check against its declarations
npx tsc -p contract/tsconfig.test.json
npx tsc -p runner/tsconfig.test.json
npx tsc -p functions/tsconfig.test.json
npx tsc -p tsconfig.scripts.json
if [ -z "${TEST_FILES:-}" ]; then
  echo "[test] unit tests (no Docker, no emulators)"
  # shellcheck disable=SC2046 # a list of paths
  node --test --test-timeout=60000 $(unit_tests)
fi

if ! docker info >/dev/null 2>&1; then
  echo "npm test: no Docker engine answers. Start one (or run .ci/run, which installs and starts it); npm run test:unit needs none." >&2
  exit 1
fi
source scripts/emulator-env.sh
source scripts/lib/emulators.sh
echo "[test] build"
npm run build --silent
echo "[test] images"
bash scripts/images.sh

status=0
if [ -z "${TEST_FILES:-}" ]; then
  echo "[test] npm start, then Ctrl-C"
  node --test --test-timeout=600000 scripts/start-stack.test.ts || status=$?
fi

# The functions' integration tests own a runner on this port; the emulated functions find it
# through functions/.env.local.
export RUNNER_TEST_PORT="${RUNNER_TEST_PORT:-18081}"
export RUNNER_TEST_ID="functions-test-$$"
export MESSAGES_PER_MINUTE_TEST=5
start_emulators_for_runner "$RUNNER_TEST_PORT" "MESSAGES_PER_MINUTE=$MESSAGES_PER_MINUTE_TEST
IP_MESSAGES_PER_MINUTE=100000
ENFORCE_APP_CHECK=true
RUN_TIMEOUT_MS=30000"
export RUNNER_TEST_TOKEN="$STACK_RUNNER_TOKEN"

# The sandbox suites run a second time under gVisor (runsc) when the engine has it (.ci/run
# registers it). With TEST_FILES set, only those files run, under runc.
has_runsc=0
if [ -z "${TEST_FILES:-}" ] && docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
  has_runsc=1
fi

echo "[test] tests"
# shellcheck disable=SC2046 # a list of paths
node --test --test-concurrency=1 --test-timeout=300000 ${TEST_FILES:-$(stack_tests)} || status=$?
if [ "$has_runsc" = 1 ]; then
  echo "[test] sandbox suites under gVisor (runsc)"
  SANDBOX_TEST_RUNTIME=runsc node --test --test-concurrency=1 --test-timeout=300000 $SANDBOX_SUITES || status=$?
fi
exit "$status"
