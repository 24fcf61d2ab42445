#!/usr/bin/env bash
# npm run bench [-- --quick | --runs N]: builds, makes sure the images exist, runs the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh
npm run build --silent
bash scripts/images.sh agent
node runner/bench/bench.ts "$@"
