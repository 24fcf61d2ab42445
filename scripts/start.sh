#!/usr/bin/env bash
# npm start: the whole platform on loopback. Installs what is missing, builds the images, starts
# the runner (with a generated RUNNER_TOKEN) and the Firebase emulators (Auth, Functions,
# Firestore, Hosting), prints the URLs and a ready-to-paste curl. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh

RUNNER_PORT="${RUNNER_PORT:-8081}"
log() { printf '[start] %s\n' "$*"; }

# A bare Debian machine: install the engine, gVisor and what the images need, start the engine.
# Without root, an engine that already answers is enough (what is missing is named).
source scripts/lib/engine.sh
# Until stop_all takes over below: a step that fails first (an engine that does not come up, no
# Java 21, a build error) or Ctrl-C during the build stops the engine we started, if we did.
trap stop_engine EXIT
trap 'exit 130' INT TERM
ensure_packages --or-engine dockerd=docker.io runsc=runsc debootstrap=debootstrap openssl=openssl tar=tar
ensure_engine
# SANDBOX_RUNTIME=auto picks gVisor when the engine has it. Debian 12's runsc (2022-12-19) fails
# `ls -l` and `stat` inside sandboxes (it rejects statx with AT_NO_AUTOMOUNT): say so up front.
if [ -z "${SANDBOX_RUNTIME:-}" ] && command -v runsc >/dev/null && runsc --version 2>/dev/null | grep -q '2022'; then
  log "note: sandboxes run under gVisor $(runsc --version 2>/dev/null | head -1 | awk '{print $3}'), where ls -l and stat fail (statx);"
  log "      a current gVisor release fixes it, or run SANDBOX_RUNTIME=runc npm start"
fi
source scripts/emulator-env.sh

[ -d node_modules/firebase-tools ] || { log "installing dependencies"; npm ci --no-audit --no-fund --ignore-scripts; }
log "building"
npm run build --silent
bash scripts/images.sh

RUNNER_TOKEN="$(node -e 'process.stdout.write(require("crypto").randomBytes(24).toString("hex"))')"
source scripts/lib/emulators.sh

RUNNER_PID=""
RUNNERS="${RUNNERS:-1}"
RUNNER_ID=local
# How long the runner (or fleet) may take to stop: it saves and removes the warm sandboxes, each
# Docker call bounded by the budget's sandbox grace (10 s), so 45 s leaves room for a slow engine.
STOP_WAIT_S=45
# One signal path. A terminal's Ctrl-C sends SIGINT to its whole foreground process group; the
# runner, the fleet and the emulators run in sessions of their own (setsid), so only this script
# gets it and each part is told once, below. (Before, the runner got the terminal's SIGINT and
# then this trap's: the second one stops it at once, mid-cleanup, and paused sandboxes stayed.)
stop_all() {
  trap - TERM EXIT
  trap '' INT # a second Ctrl-C does not cut the cleanup short; it is bounded below
  log "stopping (at most ${STOP_WAIT_S} s)"
  # SIGINT stops a lone runner without draining (SIGTERM would wait for runs in flight); either
  # way it saves and removes its warm sandboxes. The fleet stops its runners itself.
  [ -n "$RUNNER_PID" ] && kill -"$([ "$RUNNERS" = 1 ] && echo INT || echo TERM)" "$RUNNER_PID" 2>/dev/null || true
  stop_emulators
  local waited=0
  while [ -n "$RUNNER_PID" ] && kill -0 "$RUNNER_PID" 2>/dev/null && [ "$waited" -lt $((STOP_WAIT_S * 2)) ]; do
    sleep 0.5
    waited=$((waited + 1))
  done
  if [ -n "$RUNNER_PID" ] && kill -0 "$RUNNER_PID" 2>/dev/null; then
    log "the runner did not stop in ${STOP_WAIT_S} s: killing it and removing its sandboxes"
    kill -KILL -- "-$RUNNER_PID" 2>/dev/null || kill -KILL "$RUNNER_PID" 2>/dev/null || true
    if [ "$RUNNERS" = 1 ]; then
      timeout 30 docker ps -aq --filter "label=dev.agent-platform.runner-id=$RUNNER_ID" --filter label=dev.agent-platform.kind=sandbox \
        | xargs -r timeout 30 docker rm -f -v >/dev/null 2>&1 || true
    fi
  fi
  stop_engine
  exit 0
}
trap stop_all INT TERM EXIT

if [ "$RUNNERS" = 1 ]; then
  log "starting the runner on 127.0.0.1:$RUNNER_PORT"
  HOST=127.0.0.1 PORT="$RUNNER_PORT" RUNNER_TOKEN="$RUNNER_TOKEN" RUNNER_ID="$RUNNER_ID" LOG_REQUESTS=false \
    setsid node runner/dist/main.js >/tmp/agent-platform-runner.log 2>&1 &
  RUNNER_PID=$!
  RUNNER_BASE="http://127.0.0.1:$RUNNER_PORT"
else
  # A local fleet: RUNNERS runner processes behind HAProxy (consistent hashing on the user
  # header), workspaces in the Cloud Storage stand-in (scripts/fleet.ts).
  ensure_packages haproxy=haproxy
  log "starting a fleet of $RUNNERS runners behind HAProxy"
  FLEET_URL_FILE="$(mktemp /tmp/agent-platform-fleet.XXXXXX)"
  RUNNERS="$RUNNERS" RUNNER_TOKEN="$RUNNER_TOKEN" FLEET_URL_FILE="$FLEET_URL_FILE" \
    setsid node scripts/fleet.ts >/tmp/agent-platform-runner.log 2>&1 &
  RUNNER_PID=$!
  for _ in $(seq 1 120); do [ -s "$FLEET_URL_FILE" ] && break; kill -0 "$RUNNER_PID" 2>/dev/null || break; sleep 0.5; done
  [ -s "$FLEET_URL_FILE" ] || { tail -20 /tmp/agent-platform-runner.log; log "the fleet did not start"; exit 1; }
  RUNNER_BASE="$(cat "$FLEET_URL_FILE")"
  rm -f "$FLEET_URL_FILE"
fi

start_emulators "# Written by npm start (emulators only; removed on exit).
RUNNER_URL=$RUNNER_BASE
RUNNER_TOKEN=$RUNNER_TOKEN"
curl -sf "$RUNNER_BASE/readyz" >/dev/null || { tail -20 /tmp/agent-platform-runner.log; log "the runner is not ready"; exit 1; }

cat <<MSG

  The agent platform is running on loopback:
    Hosting (REST API under /api)  http://127.0.0.1:5000        health: http://127.0.0.1:5000/health
    Functions emulator             http://127.0.0.1:5001/demo-agent-platform/us-central1/
    Auth emulator                  http://127.0.0.1:9099
    Firestore emulator             http://127.0.0.1:8080
    Runner$( [ "$RUNNERS" = 1 ] || printf 's (%s, HAProxy)' "$RUNNERS")                         $RUNNER_BASE   (token in functions/.env.local)
    Logs: /tmp/agent-platform-runner.log, $EMU_LOG

  Try it (signs up a test user on the Auth emulator, then sends a message):

    TOKEN=\$(curl -s 'http://127.0.0.1:9099/identitytoolkit.googleapis.com/v1/accounts:signUp?key=any' \\
      -H 'content-type: application/json' -d '{"returnSecureToken":true}' \\
      | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).idToken')
    curl -s http://127.0.0.1:5000/api/conversation -H "authorization: Bearer \$TOKEN" \\
      -H 'content-type: application/json' -d '{"message":"Hello agent"}'

  Ctrl-C stops everything.
MSG
wait "$EMU_PID"
