# Sourced by scripts/deploy.sh: step 1 (the tools, the account's access, and what the functions'
# source must say for the runner to accept them) and step 2 (the APIs).

check_tools_and_access() {
  step 1 "Install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), then run: gcloud auth login" \
    "Check that project $PROJECT exists and your account can see it: gcloud projects describe $PROJECT" \
    "firebase-tools comes with the repository: run npm ci" \
    "Docker must be running for the images (docker info); or use --skip-runner"
  check_tool gcloud "Google Cloud CLI: APIs, IAM, registry, VM"
  if ((!SKIP_FIREBASE)); then
    check_tool npx "runs the repository's firebase-tools"
    if [[ -x node_modules/.bin/firebase ]]; then say "found node_modules/.bin/firebase"; elif ((DRY_RUN)); then
      warn "node_modules/.bin/firebase missing (run npm ci). Dry-run continues."
    else
      fail "node_modules/.bin/firebase missing: run npm ci"
    fi
  fi
  if ((!SKIP_RUNNER)); then
    check_tool docker "builds and pushes the images"
    check_tool curl "fetches the checksum of the pinned gVisor release"
    check_tool npm "npm run images"
  fi
  check_functions_service_account
  check_params_known
  capture PROJECT_NUMBER PROJECT_NUMBER gcloud projects describe "$PROJECT" --format='value(projectNumber)'
  if ((!SKIP_RUNNER)); then run docker info --format '{{.ServerVersion}}'; fi
  if ((!SKIP_FIREBASE)); then run npx --no-install firebase --version; fi
}

check_tool() { # check_tool NAME WHY
  if type -P "$1" >/dev/null; then
    say "found $1"
  elif ((DRY_RUN)); then
    warn "$1 not found on PATH ($2). Dry-run continues; a real deploy needs it."
  else
    fail "$1 not found on PATH ($2)"
  fi
}

# The functions must run as $FUNCTIONS_SA, or the runner (which accepts only that email) answers 401.
check_functions_service_account() {
  local f line sa_re="serviceAccount[\"']?[[:space:]]*:[[:space:]]*[\"'\`]$FUNCTIONS_SA_NAME@"
  shopt -s globstar nullglob
  for f in functions/src/**/*.ts; do
    while IFS= read -r line || [[ -n $line ]]; do
      if [[ $line =~ $sa_re ]]; then
        shopt -u globstar nullglob
        say "functions/src sets serviceAccount '$FUNCTIONS_SA_NAME@'"
        return 0
      fi
    done <"$f"
  done
  shopt -u globstar nullglob
  warn "functions/src does not set the functions' service account. Deployed as-is they run as the" \
    "default compute service account, which is not in RUNNER_ALLOWED_INVOKERS: the runner will answer" \
    "401. Add setGlobalOptions({ serviceAccount: '$FUNCTIONS_SA_NAME@' }) before the functions are" \
    "defined (see the deployment notes in README.md). Step 12 checks the deployed service account."
}

# Every param of functions/src/params.ts needs a value in the .env file (non-interactive deploys
# prompt for none), and step 10 takes the defaults from the file generated from params.ts.
check_params_known() {
  local line name define_re="define[A-Za-z]+\\([\"']([A-Z0-9_]+)[\"']"
  local -A defined=()
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ $define_re ]]; then defined[${BASH_REMATCH[1]}]=1; fi
  done <functions/src/params.ts
  for name in "${!defined[@]}" "${PARAM_NAMES[@]}"; do
    if ! [[ -v defined[$name] && -v PARAM_DEFAULT[$name] ]]; then
      STEP_HINT="  - Regenerate the defaults: node scripts/deploy/param-defaults.ts (then commit scripts/deploy/param-defaults.env)"
      fail "functions/src/params.ts and scripts/deploy/param-defaults.env disagree on the param $name"
    fi
  done
}

enable_apis() {
  step 2 "Billing must be enabled on $PROJECT: gcloud billing projects link $PROJECT --billing-account=ACCOUNT_ID" \
    "Your account needs roles/serviceusage.serviceUsageAdmin (or Owner) on $PROJECT" \
    "Not logged in or token expired: gcloud auth login"
  run gcloud services enable "${APIS[@]}" --project="$PROJECT"
}
