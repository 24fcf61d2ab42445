# Sourced by scripts/deploy.sh: the options' derived defaults, their formats (the table's match=)
# and the rules that involve more than one option. Every refusal exits 2 (usage_error).
# Sets, besides the options' own variables: ZONE_NOTE, FLEET (0 or 1), FLEET_MIN, FLEET_MAX.

validate_options() {
  if [[ -z $PROJECT ]]; then usage_error "--project is required (the Google Cloud / Firebase project id)"; fi
  if [[ $PROJECT == demo-* ]]; then
    usage_error "project '$PROJECT' is a demo- project: those exist only in the Firebase emulators and cannot be deployed to. Use a real project id."
  fi
  derive_option_defaults
  check_option_formats
  check_zone
  check_fleet
  check_model_provider
}

# The defaults that depend on other options.
derive_option_defaults() {
  ZONE_NOTE=""
  if [[ -z $ZONE ]]; then
    if [[ $REGION == us-central1 ]]; then ZONE=us-central1-a; else
      ZONE="$REGION-b"
      ZONE_NOTE=" (derived from --region; pass --zone to choose)"
    fi
  fi
  FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-$REGION}"
  RUNNER_DOMAIN="${RUNNER_DOMAIN,,}"
  FLEET=0
  if [[ -n $RUNNERS ]]; then
    FLEET=1
    BUCKET="${BUCKET:-$PROJECT-agent-workspaces}"
    PROXY_SUBNET_RANGE="${PROXY_SUBNET_RANGE:-10.127.0.0/23}"
    CONNECTOR_RANGE="${CONNECTOR_RANGE:-10.8.0.0/28}"
  fi
  if [[ $MODEL_PROVIDER == vertex ]]; then VERTEX_LOCATION="${VERTEX_LOCATION:-$REGION}"; fi
}

check_zone() {
  if [[ ${ZONE%-*} != "$REGION" ]]; then usage_error "zone '$ZONE' is not in region '$REGION'"; fi
}

# --runners MIN..MAX (its format checked), and the options that go with a fleet only.
check_fleet() {
  FLEET_MIN=1 FLEET_MAX=1
  if ((!FLEET)); then
    if [[ -n $BUCKET$PROXY_SUBNET_RANGE$CONNECTOR_RANGE ]]; then
      usage_error "--bucket, --proxy-subnet-range and --connector-range are for a fleet (--runners)"
    fi
    return 0
  fi
  FLEET_MIN=$((10#${RUNNERS%..*}))
  FLEET_MAX=$((10#${RUNNERS#*..}))
  if ((FLEET_MIN < 1 || FLEET_MAX > 100 || FLEET_MIN > FLEET_MAX)); then
    usage_error "invalid --runners '$RUNNERS': need 1 <= MIN <= MAX <= 100"
  fi
  if [[ -n $RUNNER_DOMAIN ]]; then
    usage_error "--runner-domain is for the one runner behind Caddy; a fleet is reached at its internal load balancer's address (drop --runner-domain)"
  fi
  if ((SKIP_RUNNER)); then
    usage_error "--runners sets up the runner fleet and cannot go with --skip-runner (to deploy only the functions of a fleet, use --skip-runner alone)"
  fi
  if [[ $BUCKET == goog* ]]; then option_error --bucket "$BUCKET"; fi
  if [[ ${CONNECTOR_RANGE#*/} != 28 ]]; then usage_error "--connector-range must be a /28 (a VPC connector's size)"; fi
  if ((10#${PROXY_SUBNET_RANGE#*/} > 26)); then
    usage_error "--proxy-subnet-range must be a /26 or larger (Google's minimum)"
  fi
}

# The model options that belong to one provider.
check_model_provider() {
  case "$MODEL_PROVIDER" in
    "")
      if [[ -n $MODEL_BASE_URL$MODEL_ALLOWLIST$MODEL_DEFAULT$VERTEX_LOCATION ]]; then
        usage_error "--model-base-url, --model-allowlist, --model-default and --vertex-location need --model-provider"
      fi
      ;;
    openai)
      if [[ -z $MODEL_BASE_URL ]]; then
        usage_error "--model-provider openai needs --model-base-url https://... (e.g. https://api.openai.com/v1)"
      fi
      if [[ -n $VERTEX_LOCATION ]]; then usage_error "--vertex-location is for --model-provider vertex"; fi
      ;;
    vertex)
      if [[ -n $MODEL_BASE_URL ]]; then usage_error "--model-base-url is for --model-provider openai"; fi
      if [[ -n $MODEL_API_KEY ]]; then
        usage_error "MODEL_API_KEY is set, but Vertex AI uses the VM's service account, not a key: unset it"
      fi
      ;;
  esac
}
