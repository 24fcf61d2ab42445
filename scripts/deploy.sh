#!/usr/bin/env bash
# Deploys the agent platform to one Google Cloud / Firebase project:
#   - the runner on a Compute Engine VM (Container-Optimized OS) that owns its Docker engine,
#     with Caddy in front of it for HTTPS (Let's Encrypt) on the runner's domain;
#   - the runner and agent images to Artifact Registry;
#   - the service accounts: agent-functions@ (the functions run as it; the runner accepts only its
#     Google-signed ID tokens) and agent-runner@ (the VM; pulls images, writes logs);
#   - Cloud Functions, Firestore rules and Hosting with `firebase deploy`, the functions' params in
#     functions/.env.<project> (read by firebase-tools for that project).
# With --runners MIN..MAX it deploys a fleet of runners instead of the one VM: a regional managed
# instance group (autoscaled, autohealed on /readyz) behind an internal Application Load Balancer
# that hashes consistently on the user header, workspaces in a Cloud Storage bucket, and a
# Serverless VPC Access connector through which the functions reach the balancer.
# It does NOT create the DNS record of the runner's domain, the Firebase project, or billing. `--dry-run` prints every command and file it would write, and runs and writes nothing.
# Run `scripts/deploy.sh --help` for the options.
set -Eeuo pipefail

# --- constants ----------------------------------------------------------------------------------
REPO_NAME=agent-platform                 # Artifact Registry repository
FUNCTIONS_SA_NAME=agent-functions        # must match setGlobalOptions({ serviceAccount }) in functions/src
RUNNER_SA_NAME=agent-runner
VM_NAME=agent-runner
VM_TAG=agent-runner                      # network tag the firewall rule targets
ADDRESS_NAME=agent-runner-ip
FIREWALL_RULE=agent-runner-web
NETWORK=default
# The VM's access scopes: pull images (Artifact Registry reads with the storage read scope), write
# logs and metrics. Nothing else: the runner calls no Google API (it checks ID tokens against
# Google's public certificates), so a compromised runner host holds no broad token.
VM_SCOPES=storage-ro,logging-write,monitoring-write
# Caddy (HTTPS in front of the runner) is pulled here once, mirrored into Artifact Registry and
# pinned by digest like the other images: the VM never pulls a moving tag at boot.
CADDY_SOURCE=docker.io/library/caddy:2
# gVisor for the sandboxes: a pinned release; its SHA-512 is fetched once at deploy time (from the
# release's own .sha512 file) and written into the startup script, which checks the binary against
# it at every boot. The runner's SANDBOX_RUNTIME=auto then runs every sandbox under runsc.
GVISOR_RELEASE=20250707.0
GVISOR_URL="https://storage.googleapis.com/gvisor/releases/release/$GVISOR_RELEASE/x86_64"
LOCAL_RUNNER_IMAGE=agent-platform/runner:latest        # built by scripts/images.sh
LOCAL_AGENT_IMAGE=agent-platform/agent-default:latest  # built by scripts/images.sh
# The fleet (--runners): one name for the group, its backend service, URL map, proxy and
# forwarding rule. The runners have no external address; their subnet gets Private Google Access
# (Artifact Registry, Cloud Storage, Google's certificates, Vertex AI).
FLEET_NAME=agent-runners
SUBNET=default                          # the runners' subnet in REGION: an auto-mode network's
FLEET_TAG=agent-runner-fleet
FLEET_HC_LB=agent-runner-ready          # the balancer's health check: /readyz, quick
FLEET_HC_HEAL=agent-runner-autoheal     # autohealing: /readyz too, but only after a minute of 503s
ILB_ADDRESS_NAME=agent-runner-ilb
PROXY_SUBNET=agent-proxy-only
FIREWALL_FROM_LB=agent-runner-from-lb
FIREWALL_HEALTH=agent-runner-health-checks
# Google's health checkers (documented ranges for health checks of Application Load Balancers).
HEALTH_CHECK_RANGES=35.191.0.0/16,130.211.0.0/22
CONNECTOR=agent-functions
NAT_ROUTER=agent-runner-router
NAT_NAME=agent-runner-nat
RUNNER_HEADER=x-agent-user              # the runner's RUNNER_USER_HEADER (its default)
# Seconds the runner gets to drain at a VM's shutdown: its runs finish within the runner's
# answer budget (50 s for the default 30 s run cap), then warm workspaces are saved. Compute
# Engine gives an on-demand VM's shutdown script 90 s.
STOP_TIMEOUT_S=80
APIS=(run.googleapis.com artifactregistry.googleapis.com compute.googleapis.com cloudscheduler.googleapis.com
  cloudfunctions.googleapis.com cloudbuild.googleapis.com firestore.googleapis.com
  secretmanager.googleapis.com iam.googleapis.com)
STEPS=(
  "check tools and access"
  "enable Google Cloud APIs"
  "Firestore database"
  "Artifact Registry repository"
  "build images (npm run images)"
  "tag and push images"
  "service accounts and IAM bindings"
  "static address and firewall rule"
  "runner VM (Container-Optimized OS)"
  "functions parameters"
  "firebase deploy (functions, Firestore rules, Hosting)"
  "verify and summary"
)

# This script uses only bash builtins until it runs a command for real, so that --dry-run needs
# nothing on PATH. Keep it that way (the test runs it with an empty PATH).
src="${BASH_SOURCE[0]}"
if [[ $src == */* ]]; then ROOT="${src%/*}/.."; else ROOT=..; fi
cd "$ROOT"
ROOT="$PWD"
# The VM's scripts and the backend service are templates in scripts/deploy/, rendered by render.sh.
DEPLOY_DIR="$ROOT/scripts/deploy"
source "$DEPLOY_DIR/render.sh"
source "$DEPLOY_DIR/host-scripts.sh"

# Every param of functions/src/params.ts and its default, from scripts/deploy/param-defaults.env
# (generated from params.ts by param-defaults.ts). firebase deploy runs non-interactively, and then
# every param needs a value in a .env file (defaults are only offered at a prompt).
PARAM_NAMES=()
declare -A PARAM_DEFAULT=()
while IFS= read -r line || [[ -n $line ]]; do
  if [[ $line =~ ^([A-Z][A-Z0-9_]*)=(.*)$ ]]; then
    PARAM_NAMES+=("${BASH_REMATCH[1]}")
    PARAM_DEFAULT[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}"
  fi
done <scripts/deploy/param-defaults.env

# The command line: one table of options (options.sh) drives the parser, the format checks, the
# help and the plan's options line; validate.sh adds derived defaults and cross-option rules.
MODEL_SECRET=agent-model-api-key
source "$DEPLOY_DIR/options.sh"
source "$DEPLOY_DIR/validate.sh"
init_options
parse_options "$@"
validate_options

# With a model provider the VM's token needs the cloud-platform scope (Secret Manager and Vertex AI
# accept no narrower one); its service account's IAM roles then bound it: read one secret, or
# call Vertex AI, plus what it had (pull images, write logs and metrics).
if [[ -n $MODEL_PROVIDER ]]; then VM_SCOPES=cloud-platform; fi
if [[ $MODEL_PROVIDER == vertex ]]; then APIS+=(aiplatform.googleapis.com); fi
if ((FLEET)); then
  # The fleet's runners also read and write the workspace bucket (IAM: that bucket only).
  [[ $VM_SCOPES == cloud-platform ]] || VM_SCOPES=storage-rw,logging-write,monitoring-write
  APIS+=(vpcaccess.googleapis.com storage.googleapis.com)
  STEPS[7]="network: internal address, proxy-only subnet, firewall, VPC connector"
  STEPS[8]="runner fleet: bucket, instance template, group, autoscaler, internal load balancer"
fi

ENV_FILE="functions/.env.$PROJECT"
STEPS[9]="functions parameters ($ENV_FILE)"
# Reads KEY=... lines of an existing functions/.env.<project> (builtins only; nothing is written).
declare -A EXISTING_ENV_LINE=()
EXISTING_ENV_ORDER=()
if [[ -f $ENV_FILE ]]; then
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)= ]]; then
      key="${BASH_REMATCH[1]}"
      [[ -v EXISTING_ENV_LINE[$key] ]] || EXISTING_ENV_ORDER+=("$key")
      EXISTING_ENV_LINE[$key]="$line"
    fi
  done <"$ENV_FILE"
fi

if ((FLEET)); then
  # The internal balancer's address, reserved (or read) at step 8.
  RUNNER_URL="http://ILB_ADDRESS"
elif [[ -n $RUNNER_DOMAIN ]]; then
  RUNNER_URL="https://$RUNNER_DOMAIN"
elif ((SKIP_RUNNER)) && [[ -v EXISTING_ENV_LINE[RUNNER_URL] ]]; then
  RUNNER_URL="${EXISTING_ENV_LINE[RUNNER_URL]#*=}"
  RUNNER_URL="${RUNNER_URL%\"}"
  RUNNER_URL="${RUNNER_URL#\"}"
  RUNNER_URL="${RUNNER_URL%/}"
  # https://<domain> (one runner), or http://<internal address> (a fleet's internal balancer).
  if ! [[ $RUNNER_URL =~ ^https://[^/]+$ || $RUNNER_URL =~ ^http://[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
    usage_error "RUNNER_URL in $ENV_FILE is '$RUNNER_URL', not https://<domain> or a fleet's http://<internal address>; pass --runner-domain or --runners"
  fi
else
  usage_error "--runner-domain (one runner) or --runners (a fleet) is required: the functions call the runner at https://<runner-domain>, which is also the audience of their ID tokens (with --skip-runner, RUNNER_URL may come from $ENV_FILE)"
fi
RUNNER_AUDIENCE="$RUNNER_URL"
RUNNER_HOST="${RUNNER_URL#https://}"

FUNCTIONS_SA="$FUNCTIONS_SA_NAME@$PROJECT.iam.gserviceaccount.com"
RUNNER_SA="$RUNNER_SA_NAME@$PROJECT.iam.gserviceaccount.com"
REGISTRY_HOST="$REGION-docker.pkg.dev"
REGISTRY="$REGISTRY_HOST/$PROJECT/$REPO_NAME"
TZ=UTC printf -v DEPLOY_TAG '%(%Y%m%d-%H%M%S)T' -1
RUNNER_IMAGE="$REGISTRY/runner:$DEPLOY_TAG"
AGENT_IMAGE="$REGISTRY/agent-default:$DEPLOY_TAG"
CADDY_IMAGE="$REGISTRY/caddy:$DEPLOY_TAG"
# The digest references the VM pulls (set by step 6; shown as @sha256:DIGEST in a dry run).
RUNNER_PIN="" AGENT_PIN="" CADDY_PIN=""
HOSTING_URL="https://$PROJECT.web.app"

# The functions' region: fixed by the source (default us-central1), and by firebase.json's rewrites.
FUNCTIONS_REGION=us-central1
if [[ -f firebase.json ]]; then
  region_re='"region"[[:space:]]*:[[:space:]]*"([a-z0-9-]+)"'
  while IFS= read -r line; do
    if [[ $line =~ $region_re ]]; then FUNCTIONS_REGION="${BASH_REMATCH[1]}"; break; fi
  done <firebase.json
fi

# --- output and error handling ------------------------------------------------------------------
STEP_NO=0
STEP_TITLE="start"
STEP_HINT="Check the arguments and the message above."
LAST_CMD="(none)"
TMP_FILES=()
# Set by `capture` (placeholders in dry-run).
PROJECT_NUMBER="" ARCH="" RUNNER_IP="" DEPLOYED_SA=""

say() { printf '[deploy] %s\n' "$*"; }
warn() { printf '[deploy] warning: %s\n' "$*" >&2; }

# Formats a command for display, quoting only what needs it. Sets CMD_TEXT.
fmt_cmd() {
  local a out=""
  for a in "$@"; do
    shell_quote "$a"
    out+="${out:+ }$REPLY"
  done
  CMD_TEXT="$out"
}

# run CMD...: prints `+ CMD`, then runs it (not in dry-run).
run() {
  fmt_cmd "$@"
  LAST_CMD="$CMD_TEXT"
  printf '+ %s\n' "$CMD_TEXT"
  if ((DRY_RUN)); then return 0; fi
  "$@"
}

# run_retry CMD...: like run, retrying (IAM changes on a new service account can take a minute).
# run_secret_stdin CMD...: runs CMD with the model key on its stdin; prints the command, never the key.
run_secret_stdin() {
  fmt_cmd "$@"
  LAST_CMD="$CMD_TEXT"
  printf '+ %s < (MODEL_API_KEY from the environment)\n' "$CMD_TEXT"
  if ((DRY_RUN)); then return 0; fi
  printf '%s' "$MODEL_API_KEY" | "$@"
}

run_retry() {
  fmt_cmd "$@"
  LAST_CMD="$CMD_TEXT"
  printf '+ %s\n' "$CMD_TEXT"
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
  fmt_cmd "$@"
  LAST_CMD="$CMD_TEXT"
  printf '+ %s\n' "$CMD_TEXT"
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
  fmt_cmd "$@"
  LAST_CMD="$CMD_TEXT"
  printf '+ %s\n' "$CMD_TEXT"
  if ((DRY_RUN)); then
    printf -v "$__var" '%s' "$__placeholder"
    return 0
  fi
  __out="$("$@")"
  printf -v "$__var" '%s' "$__out"
}

# show_file PATH CONTENT: prints what is (or in dry-run would be) written.
show_file() {
  local verb="writing"
  if ((DRY_RUN)); then verb="dry-run: would write"; fi
  printf '%s %s:\n' "$verb" "$1"
  printf '    | %s\n' "${@:2}"
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
trap on_error ERR

cleanup() {
  local f
  for f in "${TMP_FILES[@]}"; do [[ -n $f ]] && rm -f -- "$f"; done
  return 0
}
trap cleanup EXIT

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

if ((DRY_RUN)); then
  # Belt and braces: in dry-run these tools are never run. If a bug tried, it stops here.
  for tool in gcloud docker npm npx node firebase curl mktemp; do
    eval "$tool() { printf '[deploy] internal error: $tool called during --dry-run\n' >&2; exit 99; }"
  done
else
  export CLOUDSDK_CORE_DISABLE_PROMPTS=1
fi

# --- plan ---------------------------------------------------------------------------------------
say "project:          $PROJECT"
say "region / zone:    $REGION / $ZONE$ZONE_NOTE"
if ((FLEET)); then
  say "runners:          $FLEET_MIN..$FLEET_MAX VMs ($MACHINE_TYPE) in $REGION, workspaces in gs://$BUCKET"
  say "runner URL:       http://<internal address $ILB_ADDRESS_NAME, step 8> (ID-token audience)"
else
  say "runner URL:       $RUNNER_URL (ID-token audience)"
fi
say "functions SA:     $FUNCTIONS_SA (RUNNER_ALLOWED_INVOKERS)"
say "runner VM SA:     $RUNNER_SA"
say "images:           $RUNNER_IMAGE"
say "                  $AGENT_IMAGE"
say "functions region: $FUNCTIONS_REGION (set by the functions source and firebase.json)"
options_line
say "options:          $REPLY"
if ((DRY_RUN)); then say "DRY RUN: commands are printed, nothing is run and no file is written."; fi

# --- 1. tools and access ------------------------------------------------------------------------
step 1 "Install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), then run: gcloud auth login" \
  "Check that project $PROJECT exists and your account can see it: gcloud projects describe $PROJECT" \
  "firebase-tools comes with the repository: run npm ci" \
  "Docker must be running for the images (docker info); or use --skip-runner"

check_tool() { # check_tool NAME WHY
  if type -P "$1" >/dev/null; then
    say "found $1"
  elif ((DRY_RUN)); then
    warn "$1 not found on PATH ($2). Dry-run continues; a real deploy needs it."
  else
    fail "$1 not found on PATH ($2)"
  fi
}
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

# The functions must run as $FUNCTIONS_SA, or the runner (which accepts only that email) answers 401.
sa_re="serviceAccount[\"']?[[:space:]]*:[[:space:]]*[\"'\`]$FUNCTIONS_SA_NAME@"
sa_in_source=0
shopt -s globstar nullglob
for f in functions/src/**/*.ts; do
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ $sa_re ]]; then sa_in_source=1; break 2; fi
  done <"$f"
done
shopt -u globstar nullglob
if ((sa_in_source)); then
  say "functions/src sets serviceAccount '$FUNCTIONS_SA_NAME@'"
else
  warn "functions/src does not set the functions' service account. Deployed as-is they run as the" \
    "default compute service account, which is not in RUNNER_ALLOWED_INVOKERS: the runner will answer" \
    "401. Add setGlobalOptions({ serviceAccount: '$FUNCTIONS_SA_NAME@' }) before the functions are" \
    "defined (see the deployment notes in README.md). Step 12 checks the deployed service account."
fi

# Every param in functions/src/params.ts must have a default here (non-interactive deploys need
# values), and param-defaults.env must name no other.
define_re="define[A-Za-z]+\\([\"']([A-Z0-9_]+)[\"']"
declare -A DEFINED_PARAM=()
while IFS= read -r line || [[ -n $line ]]; do
  if [[ $line =~ $define_re ]]; then DEFINED_PARAM[${BASH_REMATCH[1]}]=1; fi
done <functions/src/params.ts
for p in "${!DEFINED_PARAM[@]}" "${PARAM_NAMES[@]}"; do
  if ! [[ -v DEFINED_PARAM[$p] && -v PARAM_DEFAULT[$p] ]]; then
    STEP_HINT="  - Regenerate the defaults: node scripts/deploy/param-defaults.ts (then commit scripts/deploy/param-defaults.env)"
    fail "functions/src/params.ts and scripts/deploy/param-defaults.env disagree on the param $p"
  fi
done

capture PROJECT_NUMBER PROJECT_NUMBER gcloud projects describe "$PROJECT" --format='value(projectNumber)'
if ((!SKIP_RUNNER)); then run docker info --format '{{.ServerVersion}}'; fi
if ((!SKIP_FIREBASE)); then run npx --no-install firebase --version; fi

# --- 2. APIs ------------------------------------------------------------------------------------
step 2 "Billing must be enabled on $PROJECT: gcloud billing projects link $PROJECT --billing-account=ACCOUNT_ID" \
  "Your account needs roles/serviceusage.serviceUsageAdmin (or Owner) on $PROJECT" \
  "Not logged in or token expired: gcloud auth login"
run gcloud services enable "${APIS[@]}" --project="$PROJECT"

# --- 3. Firestore database ----------------------------------------------------------------------
if ((SKIP_FIREBASE)); then skip_step 3 "--skip-firebase"; else
  step 3 "Firebase must be added to the project: npx firebase projects:addfirebase $PROJECT" \
    "The location ($FIRESTORE_LOCATION) must be a Firestore location; it cannot be changed later (--firestore-location)" \
    "An existing Datastore-mode database cannot hold Firestore rules"
  if ! exists gcloud firestore databases describe --database='(default)' --project="$PROJECT"; then
    run gcloud firestore databases create --database='(default)' --location="$FIRESTORE_LOCATION" \
      --type=firestore-native --project="$PROJECT"
  fi
fi

# --- 4. Artifact Registry -----------------------------------------------------------------------
if ((SKIP_RUNNER)); then skip_step 4 "--skip-runner"; else
  step 4 "artifactregistry.googleapis.com must be enabled (step 2)" \
    "Your account needs roles/artifactregistry.admin (or Owner)"
  if ! exists gcloud artifacts repositories describe "$REPO_NAME" --location="$REGION" --project="$PROJECT"; then
    run gcloud artifacts repositories create "$REPO_NAME" --repository-format=docker \
      --location="$REGION" --project="$PROJECT" --description="Agent platform: runner and agent images"
  fi
fi

# --- 5. build images ----------------------------------------------------------------------------
if ((SKIP_RUNNER)); then skip_step 5 "--skip-runner"; else
  step 5 "A Docker engine must answer: docker info" \
    "Dependencies installed: npm ci" \
    "Read the [images] messages above (scripts/images.sh)"
  run npm run images
fi

# --- 6. push images -----------------------------------------------------------------------------
if ((SKIP_RUNNER)); then skip_step 6 "--skip-runner"; else
  step 6 "Docker must be allowed to push: gcloud auth configure-docker $REGISTRY_HOST" \
    "Your account needs roles/artifactregistry.writer on $REPO_NAME" \
    "The VM is x86_64: build the images on an amd64 machine"
  capture ARCH amd64 docker image inspect --format '{{.Architecture}}' "$LOCAL_RUNNER_IMAGE"
  if [[ $ARCH != amd64 ]]; then
    fail "$LOCAL_RUNNER_IMAGE is built for $ARCH, but the VM ($MACHINE_TYPE) is amd64"
  fi
  run gcloud auth configure-docker "$REGISTRY_HOST" --quiet
  # Caddy fronts the one runner only; a fleet sits behind Google's internal load balancer.
  if ((!FLEET)); then run docker pull "$CADDY_SOURCE"; fi
  run docker tag "$LOCAL_RUNNER_IMAGE" "$RUNNER_IMAGE"
  run docker tag "$LOCAL_AGENT_IMAGE" "$AGENT_IMAGE"
  if ((!FLEET)); then run docker tag "$CADDY_SOURCE" "$CADDY_IMAGE"; fi
  # push_pinned VAR IMAGE: pushes IMAGE and sets VAR to its digest reference (repo@sha256:...),
  # read from docker push's last line ("TAG: digest: sha256:... size: N").
  push_pinned() {
    local out
    capture out "$DEPLOY_TAG: digest: sha256:DIGEST size: 0" docker push "$2"
    [[ $out =~ digest:\ (sha256:[0-9A-Za-z]+) ]] || fail "docker push $2 printed no digest"
    printf -v "$1" '%s@%s' "${2%:*}" "${BASH_REMATCH[1]}"
  }
  push_pinned RUNNER_PIN "$RUNNER_IMAGE"
  push_pinned AGENT_PIN "$AGENT_IMAGE"
  if ((!FLEET)); then push_pinned CADDY_PIN "$CADDY_IMAGE"; fi
fi

# --- 7. service accounts and IAM ----------------------------------------------------------------
step 7 "Your account needs roles/iam.serviceAccountAdmin and roles/resourcemanager.projectIamAdmin (or Owner)" \
  "A service account created seconds ago may not be visible to IAM yet: run the script again" \
  "iam.googleapis.com must be enabled (step 2)"
if ! exists gcloud iam service-accounts describe "$FUNCTIONS_SA" --project="$PROJECT"; then
  run gcloud iam service-accounts create "$FUNCTIONS_SA_NAME" --project="$PROJECT" \
    --display-name="Agent platform Cloud Functions (sole runner invoker)"
fi
# Firestore (Admin SDK) and logs. Calling the runner needs no role: the runner checks the email.
for role in roles/datastore.user roles/logging.logWriter; do
  run_retry gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$FUNCTIONS_SA" \
    --role="$role" --condition=None --format=none
done
if ((!SKIP_RUNNER)); then
  if ! exists gcloud iam service-accounts describe "$RUNNER_SA" --project="$PROJECT"; then
    run gcloud iam service-accounts create "$RUNNER_SA_NAME" --project="$PROJECT" \
      --display-name="Agent platform runner VM"
  fi
  # Pull the images (this repository only), write logs and metrics.
  run_retry gcloud artifacts repositories add-iam-policy-binding "$REPO_NAME" --location="$REGION" \
    --project="$PROJECT" --member="serviceAccount:$RUNNER_SA" --role=roles/artifactregistry.reader --format=none
  for role in roles/logging.logWriter roles/monitoring.metricWriter; do
    run_retry gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$RUNNER_SA" \
      --role="$role" --condition=None --format=none
  done
  # The model provider: Vertex AI through the VM's own identity, or an OpenAI-compatible
  # provider's key in Secret Manager, readable by the runner VM only (a new version per deploy).
  if [[ $MODEL_PROVIDER == vertex ]]; then
    run_retry gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$RUNNER_SA" \
      --role=roles/aiplatform.user --condition=None --format=none
  elif [[ $MODEL_PROVIDER == openai && -n $MODEL_API_KEY ]]; then
    if ! exists gcloud secrets describe "$MODEL_SECRET" --project="$PROJECT"; then
      run gcloud secrets create "$MODEL_SECRET" --project="$PROJECT" --replication-policy=automatic
    fi
    run_secret_stdin gcloud secrets versions add "$MODEL_SECRET" --project="$PROJECT" --data-file=-
    run_retry gcloud secrets add-iam-policy-binding "$MODEL_SECRET" --project="$PROJECT" \
      --member="serviceAccount:$RUNNER_SA" --role=roles/secretmanager.secretAccessor --format=none
  fi
fi

# --- 8. network ---------------------------------------------------------------------------------
if ((SKIP_RUNNER)); then skip_step 8 "--skip-runner"; elif ((!FLEET)); then
  step 8 "compute.googleapis.com must be enabled (step 2); the '$NETWORK' VPC network must exist" \
    "Quota for static external addresses in $REGION" \
    "Your account needs roles/compute.networkAdmin and roles/compute.securityAdmin (or Owner)"
  if ! exists gcloud compute addresses describe "$ADDRESS_NAME" --region="$REGION" --project="$PROJECT"; then
    run gcloud compute addresses create "$ADDRESS_NAME" --region="$REGION" --project="$PROJECT"
  fi
  capture RUNNER_IP "STATIC_IP" gcloud compute addresses describe "$ADDRESS_NAME" --region="$REGION" \
    --project="$PROJECT" --format='value(address)'
  # 443 for the runner's API through Caddy, 80 for Let's Encrypt's HTTP challenge and redirects.
  # The runner's own port 8081 stays on the VM (Docker network and 127.0.0.1): not opened.
  if ! exists gcloud compute firewall-rules describe "$FIREWALL_RULE" --project="$PROJECT"; then
    run gcloud compute firewall-rules create "$FIREWALL_RULE" --project="$PROJECT" --network="$NETWORK" \
      --direction=INGRESS --action=ALLOW --rules=tcp:80,tcp:443 --target-tags="$VM_TAG" \
      --source-ranges=0.0.0.0/0 --description="Agent platform runner: HTTPS via Caddy (80 for ACME)"
  fi
else
  step 8 "compute.googleapis.com and vpcaccess.googleapis.com must be enabled (step 2)" \
    "The '$NETWORK' VPC network must exist with its subnet '$SUBNET' in $REGION (an auto-mode network has one)" \
    "A range overlapping a subnet of '$NETWORK': pass another --proxy-subnet-range or --connector-range" \
    "Your account needs roles/compute.networkAdmin and roles/compute.securityAdmin (or Owner)"
  # The runners have no external address. Private Google Access lets them reach Artifact Registry,
  # Cloud Storage, Google's token certificates and Vertex AI all the same.
  run gcloud compute networks subnets update "$SUBNET" --region="$REGION" --project="$PROJECT" \
    --enable-private-ip-google-access
  # The internal Application Load Balancer's proxies take their addresses from the region's one
  # active proxy-only subnet: reused when the network has one, created otherwise.
  capture PROXY_RANGE_IN_USE "" gcloud compute networks subnets list --project="$PROJECT" \
    --network="$NETWORK" --regions="$REGION" --filter='purpose=REGIONAL_MANAGED_PROXY AND role=ACTIVE' \
    --format='value(ipCidrRange)'
  PROXY_RANGE_IN_USE="${PROXY_RANGE_IN_USE%%$'\n'*}"
  if [[ -z $PROXY_RANGE_IN_USE ]]; then
    run gcloud compute networks subnets create "$PROXY_SUBNET" --project="$PROJECT" --region="$REGION" \
      --network="$NETWORK" --purpose=REGIONAL_MANAGED_PROXY --role=ACTIVE --range="$PROXY_SUBNET_RANGE"
    PROXY_RANGE_IN_USE="$PROXY_SUBNET_RANGE"
  else
    say "the region's active proxy-only subnet is $PROXY_RANGE_IN_USE: reusing it"
  fi
  # The balancer's own internal address: RUNNER_URL and the ID tokens' audience are http://<it>.
  if ! exists gcloud compute addresses describe "$ILB_ADDRESS_NAME" --region="$REGION" --project="$PROJECT"; then
    run gcloud compute addresses create "$ILB_ADDRESS_NAME" --region="$REGION" --project="$PROJECT" \
      --subnet="$SUBNET"
  fi
  capture ILB_IP "ILB_IP" gcloud compute addresses describe "$ILB_ADDRESS_NAME" --region="$REGION" \
    --project="$PROJECT" --format='value(address)'
  RUNNER_URL="http://$ILB_IP"
  RUNNER_AUDIENCE="$RUNNER_URL"
  # The runner's port, to the balancer's proxies and to Google's health checkers only.
  if ! exists gcloud compute firewall-rules describe "$FIREWALL_FROM_LB" --project="$PROJECT"; then
    run gcloud compute firewall-rules create "$FIREWALL_FROM_LB" --project="$PROJECT" --network="$NETWORK" \
      --direction=INGRESS --action=ALLOW --rules=tcp:8081 --target-tags="$FLEET_TAG" \
      --source-ranges="$PROXY_RANGE_IN_USE" --description="Agent platform runners: from the internal load balancer"
  fi
  if ! exists gcloud compute firewall-rules describe "$FIREWALL_HEALTH" --project="$PROJECT"; then
    run gcloud compute firewall-rules create "$FIREWALL_HEALTH" --project="$PROJECT" --network="$NETWORK" \
      --direction=INGRESS --action=ALLOW --rules=tcp:8081 --target-tags="$FLEET_TAG" \
      --source-ranges="$HEALTH_CHECK_RANGES" --description="Agent platform runners: Google health checks"
  fi
  # An OpenAI-compatible provider is on the internet: the runners reach it through Cloud NAT.
  if [[ $MODEL_PROVIDER == openai ]]; then
    if ! exists gcloud compute routers describe "$NAT_ROUTER" --region="$REGION" --project="$PROJECT"; then
      run gcloud compute routers create "$NAT_ROUTER" --region="$REGION" --project="$PROJECT" --network="$NETWORK"
    fi
    if ! exists gcloud compute routers nats describe "$NAT_NAME" --router="$NAT_ROUTER" --region="$REGION" \
      --project="$PROJECT"; then
      run gcloud compute routers nats create "$NAT_NAME" --router="$NAT_ROUTER" --region="$REGION" \
        --project="$PROJECT" --auto-allocate-nat-external-ips --nat-custom-subnet-ip-ranges="$SUBNET"
    fi
  fi
  # The functions' way into the VPC (their region), for private ranges only (RUNNER_VPC_CONNECTOR).
  if ! exists gcloud compute networks vpc-access connectors describe "$CONNECTOR" \
    --region="$FUNCTIONS_REGION" --project="$PROJECT"; then
    run gcloud compute networks vpc-access connectors create "$CONNECTOR" --region="$FUNCTIONS_REGION" \
      --project="$PROJECT" --network="$NETWORK" --range="$CONNECTOR_RANGE" \
      --machine-type=e2-micro --min-instances=2 --max-instances=3
  fi
fi

# --- 9. runner VM or fleet ----------------------------------------------------------------------
# write_script VAR LABEL NAME CONTENT: a file outside the repository (a placeholder in dry-run),
# shown as it is written; VAR is set to its path.
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
if ((SKIP_RUNNER)); then skip_step 9 "--skip-runner"; else
  if ((FLEET)); then
    step 9 "Your account needs roles/compute.instanceAdmin.v1, roles/compute.loadBalancerAdmin, roles/storage.admin and roles/iam.serviceAccountUser on $RUNNER_SA" \
      "The bucket name gs://$BUCKET is global: if another project has it, pass --bucket" \
      "Quota for $MACHINE_TYPE VMs in $REGION (MAX runners: $FLEET_MAX)" \
      "A runner's boot log: gcloud compute instances get-serial-port-output INSTANCE --zone=ZONE --project=$PROJECT" \
      "The balancer's view: gcloud compute backend-services get-health $FLEET_NAME --region=$REGION --project=$PROJECT"
  else
    step 9 "Your account needs roles/compute.instanceAdmin.v1 and roles/iam.serviceAccountUser on $RUNNER_SA" \
      "Zone $ZONE must offer $MACHINE_TYPE (try another --zone)" \
      "The VM's boot log: gcloud compute instances get-serial-port-output $VM_NAME --zone=$ZONE --project=$PROJECT"
  fi
  fetch_gvisor_checksum
  if ((FLEET)); then
    # The workspaces: written and read by the runners' service account only, no public access,
    # no soft delete (a workspace is rewritten after every run that changed it; soft-deleted
    # copies would be billed for a week each).
    if ! exists gcloud storage buckets describe "gs://$BUCKET" --project="$PROJECT"; then
      run gcloud storage buckets create "gs://$BUCKET" --project="$PROJECT" --location="$REGION" \
        --uniform-bucket-level-access --public-access-prevention --soft-delete-duration=0
    fi
    run_retry gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" --project="$PROJECT" \
      --member="serviceAccount:$RUNNER_SA" --role=roles/storage.objectUser --format=none
  fi
  write_host_scripts
  if ((FLEET)); then
    # Instance templates cannot change: one per deploy, named by its tag.
    TEMPLATE="agent-runner-$DEPLOY_TAG"
    run gcloud compute instance-templates create "$TEMPLATE" --project="$PROJECT" \
      --machine-type="$MACHINE_TYPE" --image-family=cos-stable --image-project=cos-cloud \
      --boot-disk-size=50GB --boot-disk-type=pd-balanced \
      --service-account="$RUNNER_SA" --scopes="$VM_SCOPES" \
      --tags="$FLEET_TAG" --network="$NETWORK" --no-address \
      --shielded-secure-boot --shielded-vtpm --shielded-integrity-monitoring \
      --metadata=google-logging-enabled=true,google-monitoring-enabled=true,enable-oslogin=TRUE \
      --metadata-from-file=startup-script="$STARTUP_FILE",shutdown-script="$SHUTDOWN_FILE"
    # Health checks: the balancer's is quick (a draining or stalled runner stops getting users
    # within 10 s); autohealing waits for a minute of 503s (an engine restart recovers in seconds)
    # and for 300 s after a VM is created (boot, gVisor, image pulls).
    if ! exists gcloud compute health-checks describe "$FLEET_HC_LB" --region="$REGION" --project="$PROJECT"; then
      run gcloud compute health-checks create http "$FLEET_HC_LB" --region="$REGION" --project="$PROJECT" \
        --port=8081 --request-path=/readyz --check-interval=5s --timeout=4s \
        --healthy-threshold=2 --unhealthy-threshold=2
    fi
    if ! exists gcloud compute health-checks describe "$FLEET_HC_HEAL" --region="$REGION" --project="$PROJECT"; then
      run gcloud compute health-checks create http "$FLEET_HC_HEAL" --region="$REGION" --project="$PROJECT" \
        --port=8081 --request-path=/readyz --check-interval=10s --timeout=5s \
        --healthy-threshold=2 --unhealthy-threshold=6
    fi
    REGION_PATH="projects/$PROJECT/regions/$REGION"
    COMPUTE_API="https://www.googleapis.com/compute/v1"
    update_group() {
      # A rolling update replaces every runner, new ones first (a regional group's surge is at
      # least its 3 zones); each old one drains as it goes, and its users move once.
      run gcloud compute instance-groups managed rolling-action start-update "$FLEET_NAME" \
        --region="$REGION" --project="$PROJECT" --version=template="$TEMPLATE" \
        --max-surge=3 --max-unavailable=0
      run gcloud compute instance-groups managed update "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
        --health-check="$COMPUTE_API/$REGION_PATH/healthChecks/$FLEET_HC_HEAL" --initial-delay=300
    }
    if exists gcloud compute instance-groups managed describe "$FLEET_NAME" --region="$REGION" --project="$PROJECT"; then
      update_group
    else
      run gcloud compute instance-groups managed create "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
        --template="$TEMPLATE" --size="$FLEET_MIN" --base-instance-name=agent-runner \
        --health-check="$COMPUTE_API/$REGION_PATH/healthChecks/$FLEET_HC_HEAL" --initial-delay=300
      if ((DRY_RUN)); then
        printf '  (dry-run: if the group already exists, these run instead of the create:)\n'
        update_group
      fi
    fi
    run gcloud compute instance-groups managed set-named-ports "$FLEET_NAME" --region="$REGION" \
      --project="$PROJECT" --named-ports=http:8081
    # Scale on CPU (sandboxes are CPU-bound); scale in one runner per 10 minutes at most, since
    # each one removed cold-starts its users once elsewhere.
    run gcloud compute instance-groups managed set-autoscaling "$FLEET_NAME" --region="$REGION" \
      --project="$PROJECT" --min-num-replicas="$FLEET_MIN" --max-num-replicas="$FLEET_MAX" \
      --target-cpu-utilization=0.6 --cool-down-period=300 \
      --scale-in-control=max-scaled-in-replicas=1,time-window=600
    # The backend service: a ring hash on the user header sends each user to one runner, and a
    # runner added or removed moves about 1/N of the users. gcloud has no flags for the header
    # hash, so the whole service is imported (created or replaced) from backend-service.yaml.tmpl.
    declare -A BACKEND_SERVICE=([FLEET_NAME]="$FLEET_NAME" [RUNNER_HEADER]="$RUNNER_HEADER" [STOP_TIMEOUT_S]="$STOP_TIMEOUT_S"
      [HEALTH_CHECK]="$COMPUTE_API/$REGION_PATH/healthChecks/$FLEET_HC_LB"
      [INSTANCE_GROUP]="$COMPUTE_API/$REGION_PATH/instanceGroups/$FLEET_NAME")
    render_script BACKEND_SERVICE_FILE "backend service" backend-service.yaml "$DEPLOY_DIR/backend-service.yaml.tmpl" BACKEND_SERVICE
    run gcloud compute backend-services import "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
      --source="$BACKEND_SERVICE_FILE" --quiet
    if ! exists gcloud compute url-maps describe "$FLEET_NAME" --region="$REGION" --project="$PROJECT"; then
      run gcloud compute url-maps create "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
        --default-service="$FLEET_NAME"
    fi
    if ! exists gcloud compute target-http-proxies describe "$FLEET_NAME" --region="$REGION" --project="$PROJECT"; then
      run gcloud compute target-http-proxies create "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
        --url-map="$FLEET_NAME" --url-map-region="$REGION"
    fi
    # Global access: the functions' region may differ from the runners'.
    if ! exists gcloud compute forwarding-rules describe "$FLEET_NAME" --region="$REGION" --project="$PROJECT"; then
      run gcloud compute forwarding-rules create "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
        --load-balancing-scheme=INTERNAL_MANAGED --network="$NETWORK" --subnet="$SUBNET" \
        --address="$ILB_ADDRESS_NAME" --ports=80 --target-http-proxy="$FLEET_NAME" \
        --target-http-proxy-region="$REGION" --allow-global-access
    fi
  else
    update_vm() {
      # New startup script, then a clean stop/start: Docker stops the containers gracefully, the
      # startup script pulls the new images and restarts both containers; the runner's reaper
      # removes sandboxes of runs that were in flight. The static address stays.
      run gcloud compute instances add-metadata "$VM_NAME" --zone="$ZONE" --project="$PROJECT" \
        --metadata-from-file=startup-script="$STARTUP_FILE"
      run gcloud compute instances stop "$VM_NAME" --zone="$ZONE" --project="$PROJECT"
      # The scopes follow the model provider (they can change only while the VM is stopped).
      run gcloud compute instances set-service-account "$VM_NAME" --zone="$ZONE" --project="$PROJECT" \
        --service-account="$RUNNER_SA" --scopes="$VM_SCOPES"
      run gcloud compute instances start "$VM_NAME" --zone="$ZONE" --project="$PROJECT"
    }
    create_vm() {
      run gcloud compute instances create "$VM_NAME" --zone="$ZONE" --project="$PROJECT" \
        --machine-type="$MACHINE_TYPE" --image-family=cos-stable --image-project=cos-cloud \
        --boot-disk-size=50GB --boot-disk-type=pd-balanced \
        --service-account="$RUNNER_SA" --scopes="$VM_SCOPES" \
        --tags="$VM_TAG" --address="$RUNNER_IP" --network="$NETWORK" \
        --shielded-secure-boot --shielded-vtpm --shielded-integrity-monitoring \
        --metadata=google-logging-enabled=true,google-monitoring-enabled=true,enable-oslogin=TRUE \
        --metadata-from-file=startup-script="$STARTUP_FILE"
    }
    if exists gcloud compute instances describe "$VM_NAME" --zone="$ZONE" --project="$PROJECT"; then
      update_vm
    else
      create_vm
      if ((DRY_RUN)); then
        printf '  (dry-run: if the VM already exists, these run instead of the create:)\n'
        update_vm
      fi
    fi
  fi
fi

# --- 10. functions params -----------------------------------------------------------------------
param_default() { # param_default NAME: the production value of a param without one in the file
  case "$1" in
    RUNNER_URL) printf '%s' "$RUNNER_URL" ;;
    RUNNER_AUDIENCE) printf '%s' "$RUNNER_AUDIENCE" ;;
    RUNNER_SERVICE) printf '' ;;
    # A fleet's functions reach its internal balancer through the VPC connector; one runner needs none.
    RUNNER_VPC_CONNECTOR) if ((FLEET)); then printf '%s' "$CONNECTOR"; fi ;;
    # The REST API refuses requests whose Origin is not listed; browsers send Origin on POST.
    CORS_ORIGINS) printf 'https://%s.web.app,https://%s.firebaseapp.com' "$PROJECT" "$PROJECT" ;;
    # params.ts's own default (its CORS_ORIGINS default is the emulators').
    *) printf '%s' "${PARAM_DEFAULT[$1]}" ;;
  esac
}
if ((SKIP_FIREBASE)); then skip_step 10 "--skip-firebase"; else
  step 10 "$ENV_FILE must be writable" \
    "Values must be plain dotenv lines KEY=value (firebase-tools parses this file)"
  ENV_LINES=(
    "# Params of functions/src/params.ts for project $PROJECT. firebase deploy reads .env, then"
    "# .env.<projectId>. Written by scripts/deploy.sh: RUNNER_URL, RUNNER_AUDIENCE, RUNNER_SERVICE and"
    "# RUNNER_VPC_CONNECTOR are set on every deploy (but --skip-runner's); other lines are kept as you"
    "# edit them."
  )
  declare -A WRITTEN=()
  for p in "${PARAM_NAMES[@]}"; do
    case "$p" in
      RUNNER_URL | RUNNER_AUDIENCE | RUNNER_SERVICE) ENV_LINES+=("$p=$(param_default "$p")") ;;
      # With --skip-runner the runner (one or a fleet) is as the last deploy left it.
      RUNNER_VPC_CONNECTOR)
        if ((SKIP_RUNNER)) && [[ -v EXISTING_ENV_LINE[$p] ]]; then ENV_LINES+=("${EXISTING_ENV_LINE[$p]}"); else
          ENV_LINES+=("$p=$(param_default "$p")")
        fi
        ;;
      *)
        if [[ -v EXISTING_ENV_LINE[$p] ]]; then ENV_LINES+=("${EXISTING_ENV_LINE[$p]}"); else
          ENV_LINES+=("$p=$(param_default "$p")")
        fi
        ;;
    esac
    WRITTEN[$p]=1
  done
  for key in "${EXISTING_ENV_ORDER[@]}"; do
    [[ -v WRITTEN[$key] ]] || ENV_LINES+=("${EXISTING_ENV_LINE[$key]}")
  done
  show_file "$ENV_FILE" "${ENV_LINES[@]}"
  LAST_CMD="write $ENV_FILE"
  if ((!DRY_RUN)); then printf '%s\n' "${ENV_LINES[@]}" >"$ENV_FILE"; fi
fi

# --- 11. firebase deploy ------------------------------------------------------------------------
if ((SKIP_FIREBASE)); then skip_step 11 "--skip-firebase"; else
  step 11 "Logged in to Firebase: npx firebase login (or Application Default Credentials)" \
    "Firebase must be added to the project: npx firebase projects:addfirebase $PROJECT" \
    "Deploying functions that run as $FUNCTIONS_SA needs roles/iam.serviceAccountUser on it" \
    "Build errors about permissions: grant roles/cloudbuild.builds.builder to $PROJECT_NUMBER-compute@developer.gserviceaccount.com" \
    "Functions deleted from the source: non-interactive deploys refuse to delete them; review, then npx firebase functions:delete NAME --project $PROJECT --region $FUNCTIONS_REGION" \
    "'could not set up cleanup policy': npx firebase functions:artifacts:setpolicy --project $PROJECT --location $FUNCTIONS_REGION --days 1 --force, then run this script again" \
    "A param without a value: add it to $ENV_FILE"
  # Non-interactive, so it never waits for an answer. firebase-tools then needs every param in the
  # .env file (step 10), and at the first functions deploy in a region it stops with an error unless
  # --force accepts its one-time Artifact Registry cleanup policy for gcf-artifacts. That repository
  # is created by the first deploy: while it is missing no function exists that --force could delete.
  DEPLOY_CMD=(npx firebase deploy --project "$PROJECT" --only "functions,firestore:rules,firestore:indexes,hosting" --non-interactive)
  if exists gcloud artifacts repositories describe gcf-artifacts --location="$FUNCTIONS_REGION" --project="$PROJECT"; then
    run "${DEPLOY_CMD[@]}"
  else
    say "first functions deploy in $FUNCTIONS_REGION (no gcf-artifacts repository): adding --force for firebase-tools' cleanup-policy prompt"
    run "${DEPLOY_CMD[@]}" --force
    if ((DRY_RUN)); then printf '  (dry-run: if gcf-artifacts exists, the same command without --force)\n'; fi
  fi
fi

# --- 12. verify and summary ---------------------------------------------------------------------
step 12 "Read the warnings above"
if ((!SKIP_FIREBASE)); then
  # v2 functions are Cloud Run services; `api` is one of them.
  capture DEPLOYED_SA "" gcloud run services describe api --region="$FUNCTIONS_REGION" \
    --project="$PROJECT" --format='value(spec.template.spec.serviceAccountName)'
  if ((!DRY_RUN)) && [[ $DEPLOYED_SA != "$FUNCTIONS_SA" ]]; then
    warn "the functions run as '${DEPLOYED_SA:-the default compute service account}', not $FUNCTIONS_SA."
    warn "The runner accepts only $FUNCTIONS_SA (RUNNER_ALLOWED_INVOKERS) and will answer 401."
    warn "Fix: setGlobalOptions({ serviceAccount: '$FUNCTIONS_SA_NAME@' }) in functions/src, then deploy again."
  fi
fi
if ((!SKIP_RUNNER)) && ((!FLEET)) && ((!DRY_RUN)) && type -P curl >/dev/null; then
  if curl -fsS --max-time 10 "$RUNNER_URL/healthz" >/dev/null 2>&1; then
    say "runner answers $RUNNER_URL/healthz"
  else
    warn "$RUNNER_URL/healthz does not answer yet: the DNS record below must exist, then Caddy needs a minute for the certificate, and the VM a few minutes to boot."
  fi
fi

summary_note=""
if ((DRY_RUN)); then summary_note=" (dry-run: nothing was deployed)"; fi
printf '\n'
say "Summary$summary_note"
say "  Hosting:    $HOSTING_URL (also https://$PROJECT.firebaseapp.com)"
say "  Functions:  region $FUNCTIONS_REGION; REST API $HOSTING_URL/api/..., callables via the Firebase SDK"
say "  Runner:     $RUNNER_URL (Google ID tokens, audience $RUNNER_AUDIENCE, invoker $FUNCTIONS_SA)"
if ((FLEET)); then
  say "  Runners:    group $FLEET_NAME in $REGION, $FLEET_MIN..$FLEET_MAX VMs, template $TEMPLATE"
  say "              behind the internal load balancer $RUNNER_URL (hash on $RUNNER_HEADER), reached through"
  say "              the VPC connector $CONNECTOR; workspaces in gs://$BUCKET"
  printf '\n'
  say "The runners need a few minutes to boot (gVisor, image pulls). Check:"
  say "  gcloud compute backend-services get-health $FLEET_NAME --region=$REGION --project=$PROJECT"
  say "  gcloud compute instance-groups managed list-instances $FLEET_NAME --region=$REGION --project=$PROJECT"
elif ((!SKIP_RUNNER)); then
  say "  Runner VM:  $VM_NAME in $ZONE, static IP $RUNNER_IP, image $RUNNER_IMAGE"
  printf '\n'
  say "Not done by this script:"
  say "  - DNS: create an A record  $RUNNER_HOST -> $RUNNER_IP  (Caddy then obtains a Let's Encrypt certificate)."
  say "  - A Google load balancer with a managed certificate instead of Caddy (see README, Deployment)."
  say "  Check: curl $RUNNER_URL/healthz ; logs: gcloud compute instances get-serial-port-output $VM_NAME --zone=$ZONE --project=$PROJECT"
fi
