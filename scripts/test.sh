#!/usr/bin/env bash
# npm test: lint, type-check, build, (re)build the images, start the Firebase emulators (Auth,
# Functions, Firestore, Hosting) on loopback, then every test in one node:test run; stops the
# emulators by PID at the end. Needs a Docker engine and Java >= 21 (.ci/run provides both).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh

if ! docker info >/dev/null 2>&1; then
  echo "npm test: no Docker engine answers. Start one (or run .ci/run, which installs and starts it)." >&2
  exit 1
fi
source scripts/emulator-env.sh

echo "[test] lint and format check"
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
echo "[test] type-check (sources and tests)"
npx tsc -p runner/tsconfig.test.json
npx tsc -p functions/tsconfig.test.json
npx tsc -p tsconfig.scripts.json
echo "[test] build"
npm run build --silent
echo "[test] images"
bash scripts/images.sh

# The functions' integration tests own a runner on this port; the emulated functions find it
# through functions/.env.local (read by the Functions emulator only).
export RUNNER_TEST_PORT="${RUNNER_TEST_PORT:-18081}"
export RUNNER_TEST_TOKEN="$(openssl rand -hex 24)"
export RUNNER_TEST_ID="functions-test-$$"
export MESSAGES_PER_MINUTE_TEST=5
ENV_LOCAL=functions/.env.local
[ -f "$ENV_LOCAL" ] && mv "$ENV_LOCAL" "$ENV_LOCAL.before-test"
cat >"$ENV_LOCAL" <<ENV
RUNNER_URL=http://127.0.0.1:$RUNNER_TEST_PORT
RUNNER_TOKEN=$RUNNER_TEST_TOKEN
MESSAGES_PER_MINUTE=$MESSAGES_PER_MINUTE_TEST
RUNNER_TIMEOUT_MS=60000
ENV

EMU_LOG="$(mktemp /tmp/agent-platform-emulators.XXXXXX.log)"
EMU_PID=""
cleanup() {
  if [ -n "$EMU_PID" ] && kill -0 "$EMU_PID" 2>/dev/null; then
    kill -INT -- "-$EMU_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$EMU_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$EMU_PID" 2>/dev/null || true
  fi
  rm -f "$ENV_LOCAL"
  [ -f "$ENV_LOCAL.before-test" ] && mv "$ENV_LOCAL.before-test" "$ENV_LOCAL"
  true
}
trap cleanup EXIT

echo "[test] starting the emulators (log: $EMU_LOG)"
setsid npx firebase emulators:start --only auth,functions,firestore,hosting --project demo-agent-platform >"$EMU_LOG" 2>&1 &
EMU_PID=$!
for _ in $(seq 1 120); do
  grep -q "All emulators ready" "$EMU_LOG" && break
  kill -0 "$EMU_PID" 2>/dev/null || { cat "$EMU_LOG"; echo "the emulators exited" >&2; exit 1; }
  sleep 0.5
done
grep -q "All emulators ready" "$EMU_LOG" || { cat "$EMU_LOG"; echo "the emulators did not become ready" >&2; exit 1; }

export FIRESTORE_EMULATOR_HOST=127.0.0.1:8080
export FIREBASE_AUTH_EMULATOR_HOST=127.0.0.1:9099
export GCLOUD_PROJECT=demo-agent-platform

echo "[test] tests"
node --test --test-concurrency=1 --test-timeout=300000 ${TEST_FILES:-runner/test/*.test.ts functions/test/*.test.ts scripts/*.test.ts}
