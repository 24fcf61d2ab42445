# Sourced by .ci/run and scripts/start.sh: installs what a bare Debian machine lacks and starts a
# Docker engine when none answers, so either command works on a fresh machine.
#
#   ensure_packages [--or-engine] <command>=<debian package> ...
#                     installs the packages whose command is missing; with --or-engine, a user
#                     without root who has an engine that answers goes on (what is missing is named)
#   ensure_engine     starts dockerd (gVisor's runsc registered) if no engine answers; DOCKERD_PID
#                     is then its PID (the caller stops it on exit)
# Installing and starting an engine need root; without it, a missing piece is named and we fail.
DOCKERD_PID="${DOCKERD_PID:-}"

# dockerd and debootstrap live in /usr/sbin, which a non-root user's PATH on Debian lacks: without
# these (appended, so they shadow nothing) an installed engine would read as missing.
for _sbin in /usr/local/sbin /usr/sbin /sbin; do
  case ":$PATH:" in *":$_sbin:"*) ;; *) PATH="$PATH:$_sbin" ;; esac
done
unset _sbin

ensure_packages() {
  local missing=() pair cmd pkg or_engine=0
  if [ "${1:-}" = --or-engine ]; then or_engine=1; shift; fi
  for pair in "$@"; do
    cmd="${pair%%=*}"
    pkg="${pair#*=}"
    if [[ $cmd == /* ]]; then [ -x "$cmd" ] || missing+=("$pkg"); else command -v "$cmd" >/dev/null || missing+=("$pkg"); fi
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    # npm start on Docker Desktop or as a member of the docker group: the engine is what it needs
    # (the runner's auto picks runc without runsc; images.sh needs debootstrap only offline).
    if ((or_engine)) && docker info >/dev/null 2>&1; then
      echo "[setup] not installed: ${missing[*]} (installing needs root); going on with the Docker engine that answers" >&2
      return 0
    fi
    echo "missing: ${missing[*]} (Debian packages). Install them, or run this as root to have them installed." >&2
    return 1
  fi
  echo "[setup] installing ${missing[*]} from Debian" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_engine() {
  docker info >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "no Docker engine answers, and starting one needs root: start Docker (or run this as root)." >&2
    return 1
  fi
  # Register gVisor (its --network=none: it refuses to start without it); the runner's default
  # SANDBOX_RUNTIME=auto then uses it.
  if command -v runsc >/dev/null; then node scripts/docker-runtimes.mjs /etc/docker/daemon.json; fi
  echo "[setup] starting a Docker engine (log: /tmp/agent-platform-dockerd.log)" >&2
  setsid dockerd >/tmp/agent-platform-dockerd.log 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  tail -30 /tmp/agent-platform-dockerd.log >&2
  echo "the Docker engine did not start" >&2
  return 1
}

# Stops the engine ensure_engine started (if it did), waiting up to 20 s.
stop_engine() {
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
  fi
  DOCKERD_PID=""
}
