# Sourced by scripts/deploy.sh: what this deploy will create and where, derived from the options,
# the project's functions/.env.<project> and firebase.json (read with builtins: nothing runs yet).

plan_deploy() {
  plan_scopes_and_apis
  ENV_FILE="functions/.env.$PROJECT"
  STEPS[9]="functions parameters ($ENV_FILE)"
  read_existing_env
  read_param_defaults
  plan_runner_url
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
  read_functions_region
  # Set by the steps (placeholders in dry-run).
  PROJECT_NUMBER="" ARCH="" RUNNER_IP="" ILB_IP="" PROXY_RANGE_IN_USE="" GVISOR_SHA512="" TEMPLATE=""
  STARTUP_FILE="" SHUTDOWN_FILE=""
}

# The VM's access scopes and the APIs, which follow the model provider and the fleet.
plan_scopes_and_apis() {
  # Pull images (Artifact Registry reads with the storage read scope), write logs and metrics.
  # Nothing else: the runner calls no Google API (it checks ID tokens against Google's public
  # certificates), so a compromised runner host holds no broad token.
  VM_SCOPES=storage-ro,logging-write,monitoring-write
  # With a model provider the VM's token needs the cloud-platform scope (Secret Manager and Vertex
  # AI accept no narrower one); its service account's IAM roles then bound it: read one secret, or
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
}

# EXISTING_ENV_LINE[KEY] (and EXISTING_ENV_ORDER): the KEY=... lines of an existing
# functions/.env.<project>, kept by step 10 unless this deploy sets them.
read_existing_env() {
  local line key
  declare -gA EXISTING_ENV_LINE=()
  EXISTING_ENV_ORDER=()
  [[ -f $ENV_FILE ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)= ]]; then
      key="${BASH_REMATCH[1]}"
      [[ -v EXISTING_ENV_LINE[$key] ]] || EXISTING_ENV_ORDER+=("$key")
      EXISTING_ENV_LINE[$key]="$line"
    fi
  done <"$ENV_FILE"
}

# RUNNER_URL (and the ID tokens' audience, the same): the domain of one runner, the internal
# balancer of a fleet (its address is known at step 8), or with --skip-runner what the last deploy
# wrote.
plan_runner_url() {
  if ((FLEET)); then
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
}

# The functions' region: fixed by the source (default us-central1), and by firebase.json's rewrites.
read_functions_region() {
  local line region_re='"region"[[:space:]]*:[[:space:]]*"([a-z0-9-]+)"'
  FUNCTIONS_REGION=us-central1
  [[ -f firebase.json ]] || return 0
  while IFS= read -r line; do
    if [[ $line =~ $region_re ]]; then
      FUNCTIONS_REGION="${BASH_REMATCH[1]}"
      return 0
    fi
  done <firebase.json
}

print_plan() {
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
}
