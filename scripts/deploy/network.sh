# Sourced by scripts/deploy.sh: step 8, the network. One runner: a static address and HTTPS open
# to it. A fleet: no external address; an internal balancer's address, its proxy-only subnet, the
# runner port open to the proxies and health checkers only, NAT for a provider on the internet,
# and the functions' VPC connector.

ensure_vm_network() {
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
  ensure_firewall_rule "$FIREWALL_RULE" tcp:80,tcp:443 "$VM_TAG" 0.0.0.0/0 \
    "Agent platform runner: HTTPS via Caddy (80 for ACME)"
}

ensure_fleet_network() {
  step 8 "compute.googleapis.com and vpcaccess.googleapis.com must be enabled (step 2)" \
    "The '$NETWORK' VPC network must exist with its subnet '$SUBNET' in $REGION (an auto-mode network has one)" \
    "A range overlapping a subnet of '$NETWORK': pass another --proxy-subnet-range or --connector-range" \
    "Your account needs roles/compute.networkAdmin and roles/compute.securityAdmin (or Owner)"
  # The runners have no external address. Private Google Access lets them reach Artifact Registry,
  # Cloud Storage, Google's token certificates and Vertex AI all the same.
  run gcloud compute networks subnets update "$SUBNET" --region="$REGION" --project="$PROJECT" \
    --enable-private-ip-google-access
  ensure_proxy_subnet
  ensure_balancer_address
  # The runner's port, to the balancer's proxies and to Google's health checkers only.
  ensure_firewall_rule "$FIREWALL_FROM_LB" tcp:8081 "$FLEET_TAG" "$PROXY_RANGE_IN_USE" \
    "Agent platform runners: from the internal load balancer"
  ensure_firewall_rule "$FIREWALL_HEALTH" tcp:8081 "$FLEET_TAG" "$HEALTH_CHECK_RANGES" \
    "Agent platform runners: Google health checks"
  # An OpenAI-compatible provider is on the internet: the runners reach it through Cloud NAT.
  if [[ $MODEL_PROVIDER == openai ]]; then ensure_nat; fi
  ensure_vpc_connector
}

# ensure_firewall_rule NAME RULES TARGET_TAG SOURCE_RANGES DESCRIPTION: an ingress allow rule.
ensure_firewall_rule() {
  if ! exists gcloud compute firewall-rules describe "$1" --project="$PROJECT"; then
    run gcloud compute firewall-rules create "$1" --project="$PROJECT" --network="$NETWORK" \
      --direction=INGRESS --action=ALLOW --rules="$2" --target-tags="$3" \
      --source-ranges="$4" --description="$5"
  fi
}

# The internal Application Load Balancer's proxies take their addresses from the region's one
# active proxy-only subnet: reused when the network has one, created otherwise. Sets
# PROXY_RANGE_IN_USE.
ensure_proxy_subnet() {
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
}

# The balancer's own internal address: RUNNER_URL and the ID tokens' audience are http://<it>.
ensure_balancer_address() {
  if ! exists gcloud compute addresses describe "$ILB_ADDRESS_NAME" --region="$REGION" --project="$PROJECT"; then
    run gcloud compute addresses create "$ILB_ADDRESS_NAME" --region="$REGION" --project="$PROJECT" \
      --subnet="$SUBNET"
  fi
  capture ILB_IP "ILB_IP" gcloud compute addresses describe "$ILB_ADDRESS_NAME" --region="$REGION" \
    --project="$PROJECT" --format='value(address)'
  RUNNER_URL="http://$ILB_IP"
  RUNNER_AUDIENCE="$RUNNER_URL"
}

ensure_nat() {
  if ! exists gcloud compute routers describe "$NAT_ROUTER" --region="$REGION" --project="$PROJECT"; then
    run gcloud compute routers create "$NAT_ROUTER" --region="$REGION" --project="$PROJECT" --network="$NETWORK"
  fi
  if ! exists gcloud compute routers nats describe "$NAT_NAME" --router="$NAT_ROUTER" --region="$REGION" \
    --project="$PROJECT"; then
    run gcloud compute routers nats create "$NAT_NAME" --router="$NAT_ROUTER" --region="$REGION" \
      --project="$PROJECT" --auto-allocate-nat-external-ips --nat-custom-subnet-ip-ranges="$SUBNET"
  fi
}

# The functions' way into the VPC (their region), for private ranges only (RUNNER_VPC_CONNECTOR).
ensure_vpc_connector() {
  if ! exists gcloud compute networks vpc-access connectors describe "$CONNECTOR" \
    --region="$FUNCTIONS_REGION" --project="$PROJECT"; then
    run gcloud compute networks vpc-access connectors create "$CONNECTOR" --region="$FUNCTIONS_REGION" \
      --project="$PROJECT" --network="$NETWORK" --range="$CONNECTOR_RANGE" \
      --machine-type=e2-micro --min-instances=2 --max-instances=3
  fi
}
