# Sourced by scripts/deploy.sh: the scripts a runner VM runs, rendered from startup.sh.tmpl and
# shutdown.sh.tmpl (render.sh) and written to temporary files for gcloud's --metadata-from-file.

# fetch_gvisor_checksum: GVISOR_SHA512, from the pinned release's own checksum file.
fetch_gvisor_checksum() {
  local sum
  capture sum "SHA512  runsc" curl -fsSL "$GVISOR_URL/runsc.sha512"
  if ((DRY_RUN)); then
    GVISOR_SHA512=SHA512
  else
    [[ $sum =~ ^([0-9a-f]{128}) ]] || fail "$GVISOR_URL/runsc.sha512 is not a SHA-512 checksum"
    GVISOR_SHA512="${BASH_REMATCH[1]}"
  fi
}

# write_host_scripts: STARTUP_FILE, and for a fleet SHUTDOWN_FILE (the templates say why they
# are as they are).
write_host_scripts() {
  local caddy=1 key_in_secret="" openai="" vertex=""
  if ((FLEET)); then caddy=0; fi
  case "$MODEL_PROVIDER" in
    openai) openai=1 ;;
    vertex) vertex=1 ;;
  esac
  if [[ -n $openai && -n $MODEL_API_KEY ]]; then key_in_secret=1; fi
  local -A host=(
    [DEPLOY_TAG]="$DEPLOY_TAG"
    [REGISTRY_HOST]="$REGISTRY_HOST"
    [GVISOR_RELEASE]="$GVISOR_RELEASE"
    [GVISOR_URL]="$GVISOR_URL"
    [GVISOR_SHA512]="$GVISOR_SHA512"
    [AGENT_PIN]="$AGENT_PIN"
    [RUNNER_PIN]="$RUNNER_PIN"
    [CADDY]="$caddy"
    [CADDY_PIN]="$CADDY_PIN"
    [RUNNER_HOST]="$RUNNER_HOST"
    [FLEET]="$FLEET"
    [STOP_TIMEOUT_S]="$STOP_TIMEOUT_S"
    [BUCKET]="$BUCKET"
    [PROJECT]="$PROJECT"
    [MODEL_KEY_IN_SECRET]="$key_in_secret"
    [MODEL_SECRET]="$MODEL_SECRET"
    [OPENAI]="$openai"
    [MODEL_BASE_URL]="$MODEL_BASE_URL"
    [VERTEX]="$vertex"
    [VERTEX_LOCATION]="$VERTEX_LOCATION"
    [MODEL_ALLOWLIST]="$MODEL_ALLOWLIST"
    [MODEL_DEFAULT]="$MODEL_DEFAULT"
    [RUNNER_AUDIENCE]="$RUNNER_AUDIENCE"
    [FUNCTIONS_SA]="$FUNCTIONS_SA"
  )
  render_script STARTUP_FILE "VM startup script" startup "$DEPLOY_DIR/startup.sh.tmpl" host
  if ((FLEET)); then
    render_script SHUTDOWN_FILE "VM shutdown script" shutdown "$DEPLOY_DIR/shutdown.sh.tmpl" host
  fi
}
