#!/usr/bin/env bash
# npm run test:unit: the fast inner loop. Every pure test (files named *.unit.test.ts: the
# contract, the engine over an in-memory backend, the functions' admission and ledger, the
# gateway's decisions, the web client's rendering, the scripts' checks) in one node:test run.
# No Docker, no emulators, no build but the contract's declarations (the other packages import
# them). `npm test` runs these first, then everything that needs Docker or the emulators.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh
source scripts/lib/test-files.sh
npx tsc -b contract
# shellcheck disable=SC2086 # a list of paths
node --test --test-timeout=60000 $(unit_tests)
