#!/usr/bin/env bash
# npm test: lint, type-check, build, (re)build the images, then every test in one node:test run.
# Needs a Docker engine; .ci/run installs and starts one on a bare machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh

if ! docker info >/dev/null 2>&1; then
  echo "npm test: no Docker engine answers. Start one (or run .ci/run, which installs and starts it)." >&2
  exit 1
fi

echo "[test] lint and format check"
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
echo "[test] type-check (sources and tests)"
npx tsc -p runner/tsconfig.test.json
echo "[test] build"
npm run build --silent
echo "[test] images"
bash scripts/images.sh

echo "[test] tests"
node --test --test-concurrency=1 --test-timeout=180000 runner/test/*.test.ts
