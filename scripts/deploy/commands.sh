# Sourced by scripts/deploy.sh: how it runs commands, shows files and reports failures. Every
# command is printed before it runs (`+ CMD`); in --dry-run nothing runs and nothing is written,
# and these helpers stand in for what would have happened (see exists, capture, write_script).

STEP_NO=0
STEP_TITLE="start"
STEP_HINT="Check the arguments and the message above."
LAST_CMD="(none)"
TMP_FILES=()

say() { printf '[deploy] %s\n' "$*"; }
warn() { printf '[deploy] warning: %s\n' "$*" >&2; }

# fmt_cmd CMD...: sets CMD_TEXT to CMD as it would be typed, quoting only what needs it.
fmt_cmd() {
  local a out=""
  for a in "$@"; do
    shell_quote "$a"
    out+="${out:+ }$REPLY"
  done
  CMD_TEXT="$out"
}

# announce CMD...: prints `+ CMD` and remembers it for the failure report.
announce() {
  fmt_cmd "$@"
  LAST_CMD="$CMD_TEXT"
  printf '+ %s\n' "$CMD_TEXT"
}

# run CMD...: prints `+ CMD`, then runs it (not in dry-run).
run() {
  announce "$@"
  if ((DRY_RUN)); then return 0; fi
  "$@"
}

# run_secret_stdin CMD...: runs CMD with the model key on its stdin; prints the command, never the key.
run_secret_stdin() {
  fmt_cmd "$@"
  LAST_CMD="$CMD_TEXT"
  printf '+ %s < (MODEL_API_KEY from the environment)\n' "$CMD_TEXT"
  if ((DRY_RUN)); then return 0; fi
  printf '%s' "$MODEL_API_KEY" | "$@"
}

# run_retry CMD...: like run, retrying (IAM changes on a new service account can take a minute).
run_retry() {
  announce "$@"
  if ((DRY_RUN)); then return 0; fi
  local attempt
  for attempt in 1 2 3 4 5 6; do
    if "$@"; then return 0; fi
    if ((attempt < 6)); then
      warn "attempt $attempt failed; retrying in 10 s (new service accounts take a moment to propagate)"
      sleep 10
    fi
  done
  return 1
}

# exists CMD...: prints `+ CMD` and tells whether the resource it describes exists. In dry-run it
# runs nothing and answers "no", so the create command that follows is printed.
exists() {
  announce "$@"
  if ((DRY_RUN)); then
    printf '  -> dry-run: assumed not found\n'
    return 1
  fi
  if "$@" >/dev/null 2>&1; then
    printf '  -> exists\n'
  else
    printf '  -> not found\n'
    return 1
  fi
}

# capture VAR PLACEHOLDER CMD...: runs CMD and stores its output in VAR (PLACEHOLDER in dry-run).
capture() {
  local __var="$1" __placeholder="$2" __out
  shift 2
  announce "$@"
  if ((DRY_RUN)); then
    printf -v "$__var" '%s' "$__placeholder"
    return 0
  fi
  __out="$("$@")"
  printf -v "$__var" '%s' "$__out"
}

# show_file PATH LINE...: prints what is (or in dry-run would be) written.
show_file() {
  local verb="writing"
  if ((DRY_RUN)); then verb="dry-run: would write"; fi
  printf '%s %s:\n' "$verb" "$1"
  printf '    | %s\n' "${@:2}"
}

# write_script VAR LABEL NAME CONTENT: a file outside the repository (a placeholder in dry-run),
# shown as it is written and removed at exit; VAR is set to its path.
write_script() {
  local __path lines
  if ((DRY_RUN)); then
    __path="<temporary file: $3>"
  else
    __path="$(mktemp "${TMPDIR:-/tmp}/agent-runner-$3.XXXXXX")"
    TMP_FILES+=("$__path")
    printf '%s' "$4" >"$__path"
  fi
  mapfile -t lines <<<"${4%$'\n'}"
  show_file "$2 ($__path, outside the repository)" "${lines[@]}"
  printf -v "$1" '%s' "$__path"
}

# render_script VAR LABEL NAME TEMPLATE VALUES: renders TEMPLATE (render.sh) and writes it with
# write_script; a refused template or value stops the deploy at the current step.
render_script() {
  local __text
  render_template "$4" "$5" __text || fail "scripts/deploy/${4##*/} could not be rendered (message above)"
  write_script "$1" "$2" "$3" "$__text"
}

# --- steps and failures -------------------------------------------------------------------------

# step N HINT...: announces step N; HINT lines are printed if the step fails.
step() {
  STEP_NO="$1"
  STEP_TITLE="${STEPS[$1 - 1]}"
  local IFS=$'\n'
  STEP_HINT="  - ${*:2}"
  STEP_HINT="${STEP_HINT//$'\n'/$'\n'  - }"
  printf '\n[deploy] step %s/%s: %s\n' "$STEP_NO" "${#STEPS[@]}" "$STEP_TITLE"
}

skip_step() { # skip_step N REASON
  STEP_NO="$1"
  STEP_TITLE="${STEPS[$1 - 1]}"
  printf '\n[deploy] step %s/%s: %s (skipped: %s)\n' "$1" "${#STEPS[@]}" "$STEP_TITLE" "$2"
}

# step_unless SKIP REASON N FUNCTION: runs FUNCTION (which announces step N) unless SKIP is 1.
step_unless() {
  if (($1)); then skip_step "$3" "$2"; else "$4"; fi
}

fail() { # fail MESSAGE: stops with the current step's guidance.
  printf '\n[deploy] FAILED at step %s/%s: %s\n' "$STEP_NO" "${#STEPS[@]}" "$STEP_TITLE" >&2
  printf '[deploy] %s\n' "$1" >&2
  printf '[deploy] what to check:\n%s\n' "$STEP_HINT" >&2
  exit 1
}

on_error() {
  local code=$?
  # A failing command substitution reports in the parent shell, once.
  if ((BASH_SUBSHELL > 0)); then exit "$code"; fi
  trap - ERR
  printf '\n[deploy] FAILED at step %s/%s: %s (exit code %s)\n' \
    "$STEP_NO" "${#STEPS[@]}" "$STEP_TITLE" "$code" >&2
  printf '[deploy] command: %s\n' "$LAST_CMD" >&2
  printf '[deploy] what to check:\n%s\n' "$STEP_HINT" >&2
  printf '[deploy] Every step is idempotent: fix the cause and run the same command again.\n' >&2
  exit 1
}

cleanup() {
  local f
  for f in "${TMP_FILES[@]}"; do [[ -n $f ]] && rm -f -- "$f"; done
  return 0
}

# In dry-run the tools are never run. Should a bug try, these stop it (and the test notices).
tripped() {
  printf '[deploy] internal error: %s called during --dry-run\n' "$1" >&2
  exit 99
}

install_handlers() {
  trap on_error ERR
  trap cleanup EXIT
  if ((DRY_RUN)); then
    gcloud() { tripped gcloud; }
    docker() { tripped docker; }
    npm() { tripped npm; }
    npx() { tripped npx; }
    node() { tripped node; }
    firebase() { tripped firebase; }
    curl() { tripped curl; }
    mktemp() { tripped mktemp; }
  else
    export CLOUDSDK_CORE_DISABLE_PROMPTS=1
  fi
}
