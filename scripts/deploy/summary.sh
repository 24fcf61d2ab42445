# Sourced by scripts/deploy.sh: step 12, what can be checked right after a deploy, and where
# everything is.

verify_and_summarize() {
  step 12 "Read the warnings above"
  if ((!SKIP_FIREBASE)); then check_deployed_service_account; fi
  if ((!SKIP_RUNNER)) && ((!FLEET)) && ((!DRY_RUN)) && type -P curl >/dev/null; then
    if curl -fsS --max-time 10 "$RUNNER_URL/healthz" >/dev/null 2>&1; then
      say "runner answers $RUNNER_URL/healthz"
    else
      warn "$RUNNER_URL/healthz does not answer yet: the DNS record below must exist, then Caddy needs a minute for the certificate, and the VM a few minutes to boot."
    fi
  fi
  print_summary
}

# The runner accepts only $FUNCTIONS_SA: functions deployed as another account would get 401s.
check_deployed_service_account() {
  local deployed
  # v2 functions are Cloud Run services; `api` is one of them.
  capture deployed "" gcloud run services describe api --region="$FUNCTIONS_REGION" \
    --project="$PROJECT" --format='value(spec.template.spec.serviceAccountName)'
  if ((!DRY_RUN)) && [[ $deployed != "$FUNCTIONS_SA" ]]; then
    warn "the functions run as '${deployed:-the default compute service account}', not $FUNCTIONS_SA."
    warn "The runner accepts only $FUNCTIONS_SA (RUNNER_ALLOWED_INVOKERS) and will answer 401."
    warn "Fix: setGlobalOptions({ serviceAccount: '$FUNCTIONS_SA_NAME@' }) in functions/src, then deploy again."
  fi
}

print_summary() {
  local note=""
  if ((DRY_RUN)); then note=" (dry-run: nothing was deployed)"; fi
  printf '\n'
  say "Summary$note"
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
}
