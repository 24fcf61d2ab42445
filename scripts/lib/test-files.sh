# Sourced by scripts/test.sh and scripts/test-unit.sh: which test files are which. One naming
# rule decides: a pure test (no Docker, no emulators, no network but loopback servers it starts
# itself) is named *.unit.test.ts; every other *.test.ts needs the stack that scripts/test.sh
# brings up.
_TEST_DIRS="contract/test runner/test functions/test web/test scripts"

# The pure tests, one path a word.
unit_tests() {
  local d
  for d in $_TEST_DIRS; do ls "$d"/*.unit.test.ts 2>/dev/null || true; done
}

# The tests that need Docker and the emulators (scripts/start-stack.test.ts brings up a stack of
# its own and runs apart, before the emulators start).
stack_tests() {
  local d f
  for d in $_TEST_DIRS; do
    for f in "$d"/*.test.ts; do
      case "$f" in *.unit.test.ts | scripts/start-stack.test.ts) ;; *) [ -f "$f" ] && echo "$f" ;; esac
    done
  done
}

# The suites that run a second time under gVisor (runsc): the ones whose subject is the sandbox.
SANDBOX_SUITES="runner/test/hardening.test.ts runner/test/hostile.test.ts runner/test/lifecycle.test.ts runner/test/warm.test.ts runner/test/streaming.test.ts runner/test/stalled-engine.test.ts runner/test/engine-restart.test.ts runner/test/model-gateway.test.ts runner/test/workspace-store.test.ts runner/test/files.test.ts runner/test/forged-protocol.test.ts"
