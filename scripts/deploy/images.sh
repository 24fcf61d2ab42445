# Sourced by scripts/deploy.sh: steps 4-6, the registry and the images in it. The VM pulls every
# image by the digest its push printed (RUNNER_PIN, AGENT_PIN, CADDY_PIN), never a moving tag.

ensure_registry() {
  step 4 "artifactregistry.googleapis.com must be enabled (step 2)" \
    "Your account needs roles/artifactregistry.admin (or Owner)"
  if ! exists gcloud artifacts repositories describe "$REPO_NAME" --location="$REGION" --project="$PROJECT"; then
    run gcloud artifacts repositories create "$REPO_NAME" --repository-format=docker \
      --location="$REGION" --project="$PROJECT" --description="Agent platform: runner and agent images"
  fi
}

build_images() {
  step 5 "A Docker engine must answer: docker info" \
    "Dependencies installed: npm ci" \
    "Read the [images] messages above (scripts/images.sh)"
  run npm run images
}

push_images() {
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
  push_pinned RUNNER_PIN "$RUNNER_IMAGE"
  push_pinned AGENT_PIN "$AGENT_IMAGE"
  if ((!FLEET)); then push_pinned CADDY_PIN "$CADDY_IMAGE"; fi
}

# push_pinned VAR IMAGE: pushes IMAGE and sets VAR to its digest reference (repo@sha256:...),
# read from docker push's last line ("TAG: digest: sha256:... size: N").
push_pinned() {
  local out
  capture out "$DEPLOY_TAG: digest: sha256:DIGEST size: 0" docker push "$2"
  [[ $out =~ digest:\ (sha256:[0-9A-Za-z]+) ]] || fail "docker push $2 printed no digest"
  printf -v "$1" '%s@%s' "${2%:*}" "${BASH_REMATCH[1]}"
}
