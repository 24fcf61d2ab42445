# Sourced by scripts/start.sh, test.sh and bench.sh. Starts the Firebase emulators (Auth,
# Functions, Firestore, Hosting) on loopback in their own process group, with the given
# functions/.env.local (read only by the Functions emulator), and stops them by PID.
EMU_PID=""
EMU_LOG=""
_ENV_LOCAL=functions/.env.local

# start_emulators "<contents of functions/.env.local>"
start_emulators() {
  [ -f "$_ENV_LOCAL" ] && mv "$_ENV_LOCAL" "$_ENV_LOCAL.before-test"
  printf '%s\n' "$1" >"$_ENV_LOCAL"
  EMU_LOG="$(mktemp /tmp/agent-platform-emulators.XXXXXX.log)"
  echo "[emulators] starting (log: $EMU_LOG)"
  setsid npx firebase emulators:start --only auth,functions,firestore,hosting --project demo-agent-platform \
    >"$EMU_LOG" 2>&1 &
  EMU_PID=$!
  for _ in $(seq 1 120); do
    grep -q "All emulators ready" "$EMU_LOG" && break
    kill -0 "$EMU_PID" 2>/dev/null || { cat "$EMU_LOG"; echo "the emulators exited" >&2; return 1; }
    sleep 0.5
  done
  grep -q "All emulators ready" "$EMU_LOG" || { cat "$EMU_LOG"; echo "the emulators did not become ready" >&2; return 1; }
  export FIRESTORE_EMULATOR_HOST=127.0.0.1:8080
  export FIREBASE_AUTH_EMULATOR_HOST=127.0.0.1:9099
  export GCLOUD_PROJECT=demo-agent-platform
}

# start_emulators_for_runner PORT "<more .env.local lines>": the emulators, with the emulated
# functions calling a runner that the caller starts on 127.0.0.1:PORT with the token this makes
# (exported as STACK_RUNNER_TOKEN); they are stopped on exit.
start_emulators_for_runner() {
  STACK_RUNNER_TOKEN="$(openssl rand -hex 24)"
  export STACK_RUNNER_TOKEN
  trap stop_emulators EXIT
  start_emulators "RUNNER_URL=http://127.0.0.1:$1
RUNNER_TOKEN=$STACK_RUNNER_TOKEN
$2"
}

stop_emulators() {
  if [ -n "$EMU_PID" ] && kill -0 "$EMU_PID" 2>/dev/null; then
    kill -INT -- "-$EMU_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$EMU_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$EMU_PID" 2>/dev/null || true
  fi
  EMU_PID=""
  rm -f "$_ENV_LOCAL"
  if [ -f "$_ENV_LOCAL.before-test" ]; then mv "$_ENV_LOCAL.before-test" "$_ENV_LOCAL"; fi
  true
}
