# Sourced by scripts/deploy.sh: step 9 for a fleet (--runners). A regional managed instance group
# of runners (autoscaled, autohealed on /readyz) behind an internal Application Load Balancer that
# hashes consistently on the user header, and the workspace bucket they share.

ensure_fleet() {
  step 9 "Your account needs roles/compute.instanceAdmin.v1, roles/compute.loadBalancerAdmin, roles/storage.admin and roles/iam.serviceAccountUser on $RUNNER_SA" \
    "The bucket name gs://$BUCKET is global: if another project has it, pass --bucket" \
    "Quota for $MACHINE_TYPE VMs in $REGION (MAX runners: $FLEET_MAX)" \
    "A runner's boot log: gcloud compute instances get-serial-port-output INSTANCE --zone=ZONE --project=$PROJECT" \
    "The balancer's view: gcloud compute backend-services get-health $FLEET_NAME --region=$REGION --project=$PROJECT"
  fetch_gvisor_checksum
  ensure_workspace_bucket
  write_host_scripts
  create_instance_template
  # The balancer's check is quick (a draining or stalled runner stops getting users within 10 s);
  # autohealing waits for a minute of 503s (an engine restart recovers in seconds) and for 300 s
  # after a VM is created (boot, gVisor, image pulls).
  ensure_health_check "$FLEET_HC_LB" 5s 4s 2
  ensure_health_check "$FLEET_HC_HEAL" 10s 5s 6
  ensure_group
  ensure_backend_service
  ensure_balancer_frontend
}

# The workspaces: written and read by the runners' service account only, no public access, no
# soft delete (a workspace is rewritten after every run that changed it; soft-deleted copies would
# be billed for a week each).
ensure_workspace_bucket() {
  if ! exists gcloud storage buckets describe "gs://$BUCKET" --project="$PROJECT"; then
    run gcloud storage buckets create "gs://$BUCKET" --project="$PROJECT" --location="$REGION" \
      --uniform-bucket-level-access --public-access-prevention --soft-delete-duration=0
  fi
  run_retry gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" --project="$PROJECT" \
    --member="serviceAccount:$RUNNER_SA" --role=roles/storage.objectUser --format=none
}

# Instance templates cannot change: one per deploy, named by its tag. Sets TEMPLATE.
create_instance_template() {
  TEMPLATE="agent-runner-$DEPLOY_TAG"
  run gcloud compute instance-templates create "$TEMPLATE" --project="$PROJECT" \
    --machine-type="$MACHINE_TYPE" --image-family=cos-stable --image-project=cos-cloud \
    --boot-disk-size=50GB --boot-disk-type=pd-balanced \
    --service-account="$RUNNER_SA" --scopes="$VM_SCOPES" \
    --tags="$FLEET_TAG" --network="$NETWORK" --no-address \
    --shielded-secure-boot --shielded-vtpm --shielded-integrity-monitoring \
    --metadata=google-logging-enabled=true,google-monitoring-enabled=true,enable-oslogin=TRUE \
    --metadata-from-file=startup-script="$STARTUP_FILE",shutdown-script="$SHUTDOWN_FILE"
}

# ensure_health_check NAME INTERVAL TIMEOUT UNHEALTHY_THRESHOLD: HTTP /readyz on the runner port.
ensure_health_check() {
  if ! exists gcloud compute health-checks describe "$1" --region="$REGION" --project="$PROJECT"; then
    run gcloud compute health-checks create http "$1" --region="$REGION" --project="$PROJECT" \
      --port=8081 --request-path=/readyz --check-interval="$2" --timeout="$3" \
      --healthy-threshold=2 --unhealthy-threshold="$4"
  fi
}

# regional_url KIND NAME: the full URL of a regional resource (as backend services name them).
regional_url() {
  REPLY="$COMPUTE_API/projects/$PROJECT/regions/$REGION/$1/$2"
}

# The group: MIN runners from the new template, or the existing group rolled to it; autohealed,
# autoscaled.
ensure_group() {
  local heal
  regional_url healthChecks "$FLEET_HC_HEAL"
  heal="$REPLY"
  if exists gcloud compute instance-groups managed describe "$FLEET_NAME" --region="$REGION" --project="$PROJECT"; then
    update_group "$heal"
  else
    run gcloud compute instance-groups managed create "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
      --template="$TEMPLATE" --size="$FLEET_MIN" --base-instance-name=agent-runner \
      --health-check="$heal" --initial-delay=300
    if ((DRY_RUN)); then
      printf '  (dry-run: if the group already exists, these run instead of the create:)\n'
      update_group "$heal"
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
}

# update_group HEALTH_CHECK_URL: a rolling update replaces every runner, new ones first (a regional
# group's surge is at least its 3 zones); each old one drains as it goes, and its users move once.
update_group() {
  run gcloud compute instance-groups managed rolling-action start-update "$FLEET_NAME" \
    --region="$REGION" --project="$PROJECT" --version=template="$TEMPLATE" \
    --max-surge=3 --max-unavailable=0
  run gcloud compute instance-groups managed update "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
    --health-check="$1" --initial-delay=300
}

# The backend service: a ring hash on the user header sends each user to one runner, and a runner
# added or removed moves about 1/N of the users. gcloud has no flags for the header hash, so the
# whole service is imported (created or replaced) from backend-service.yaml.tmpl.
ensure_backend_service() {
  local file
  local -A service=([FLEET_NAME]="$FLEET_NAME" [RUNNER_HEADER]="$RUNNER_HEADER" [STOP_TIMEOUT_S]="$STOP_TIMEOUT_S")
  regional_url healthChecks "$FLEET_HC_LB"
  service[HEALTH_CHECK]="$REPLY"
  regional_url instanceGroups "$FLEET_NAME"
  service[INSTANCE_GROUP]="$REPLY"
  render_script file "backend service" backend-service.yaml "$DEPLOY_DIR/backend-service.yaml.tmpl" service
  run gcloud compute backend-services import "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
    --source="$file" --quiet
}

# URL map, proxy and forwarding rule, with global access: the functions' region may differ from
# the runners'.
ensure_balancer_frontend() {
  if ! exists gcloud compute url-maps describe "$FLEET_NAME" --region="$REGION" --project="$PROJECT"; then
    run gcloud compute url-maps create "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
      --default-service="$FLEET_NAME"
  fi
  if ! exists gcloud compute target-http-proxies describe "$FLEET_NAME" --region="$REGION" --project="$PROJECT"; then
    run gcloud compute target-http-proxies create "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
      --url-map="$FLEET_NAME" --url-map-region="$REGION"
  fi
  if ! exists gcloud compute forwarding-rules describe "$FLEET_NAME" --region="$REGION" --project="$PROJECT"; then
    run gcloud compute forwarding-rules create "$FLEET_NAME" --region="$REGION" --project="$PROJECT" \
      --load-balancing-scheme=INTERNAL_MANAGED --network="$NETWORK" --subnet="$SUBNET" \
      --address="$ILB_ADDRESS_NAME" --ports=80 --target-http-proxy="$FLEET_NAME" \
      --target-http-proxy-region="$REGION" --allow-global-access
  fi
}
