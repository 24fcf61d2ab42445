# Sourced by scripts/deploy.sh: step 10, the functions' params in functions/.env.<project>.
# firebase deploy runs non-interactively, and then every param needs a value in a .env file
# (defaults are only offered at a prompt). The defaults are params.ts's own, from
# param-defaults.env (generated from it by param-defaults.ts, read here with builtins).

# PARAM_NAMES (in the file's order) and PARAM_DEFAULT[NAME].
read_param_defaults() {
  local line file="$DEPLOY_DIR/param-defaults.env"
  PARAM_NAMES=()
  declare -gA PARAM_DEFAULT=()
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^([A-Z][A-Z0-9_]*)=(.*)$ ]]; then
      PARAM_NAMES+=("${BASH_REMATCH[1]}")
      PARAM_DEFAULT[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}"
    fi
  done <"$file"
}

# param_line NAME: sets REPLY to NAME's line: what this deploy decides, else the line the file
# has (kept as the user edited it), else the production value.
param_line() {
  case "$1" in
    RUNNER_URL) REPLY="$1=$RUNNER_URL" ;;
    RUNNER_AUDIENCE) REPLY="$1=$RUNNER_AUDIENCE" ;;
    # The runner is at RUNNER_URL, not a Cloud Run service.
    RUNNER_SERVICE) REPLY="$1=" ;;
    RUNNER_VPC_CONNECTOR)
      # With --skip-runner the runner (one or a fleet) is as the last deploy left it. Otherwise a
      # fleet's functions reach its internal balancer through the VPC connector; one runner needs none.
      if ((SKIP_RUNNER)) && [[ -v EXISTING_ENV_LINE[$1] ]]; then REPLY="${EXISTING_ENV_LINE[$1]}"; elif ((FLEET)); then
        REPLY="$1=$CONNECTOR"
      else
        REPLY="$1="
      fi
      ;;
    *)
      if [[ -v EXISTING_ENV_LINE[$1] ]]; then REPLY="${EXISTING_ENV_LINE[$1]}"; else
        production_param_value "$1"
        REPLY="$1=$REPLY"
      fi
      ;;
  esac
}

# production_param_value NAME: sets REPLY to params.ts's default, except where that default is
# meant for the emulators.
production_param_value() {
  case "$1" in
    # The REST API refuses requests whose Origin is not listed; browsers send Origin on POST.
    CORS_ORIGINS) REPLY="https://$PROJECT.web.app,https://$PROJECT.firebaseapp.com" ;;
    *) REPLY="${PARAM_DEFAULT[$1]}" ;;
  esac
}

write_functions_params() {
  step 10 "$ENV_FILE must be writable" \
    "Values must be plain dotenv lines KEY=value (firebase-tools parses this file)"
  local name lines=(
    "# Params of functions/src/params.ts for project $PROJECT. firebase deploy reads .env, then"
    "# .env.<projectId>. Written by scripts/deploy.sh: RUNNER_URL, RUNNER_AUDIENCE, RUNNER_SERVICE and"
    "# RUNNER_VPC_CONNECTOR are set on every deploy (but --skip-runner's); other lines are kept as you"
    "# edit them."
  )
  local -A written=()
  for name in "${PARAM_NAMES[@]}"; do
    param_line "$name"
    lines+=("$REPLY")
    written[$name]=1
  done
  for name in "${EXISTING_ENV_ORDER[@]}"; do
    [[ -v written[$name] ]] || lines+=("${EXISTING_ENV_LINE[$name]}")
  done
  show_file "$ENV_FILE" "${lines[@]}"
  LAST_CMD="write $ENV_FILE"
  if ((!DRY_RUN)); then printf '%s\n' "${lines[@]}" >"$ENV_FILE"; fi
}
