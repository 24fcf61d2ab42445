# Sourced by scripts/deploy.sh: the names of what it creates, and the pinned versions. Nothing here
# depends on the command line (plan.sh derives the rest).

REPO_NAME=agent-platform          # Artifact Registry repository
FUNCTIONS_SA_NAME=agent-functions # must match setGlobalOptions({ serviceAccount }) in functions/src
RUNNER_SA_NAME=agent-runner
MODEL_SECRET=agent-model-api-key # Secret Manager: an OpenAI-compatible provider's key

# One runner: a VM with a static address and Caddy in front of it.
VM_NAME=agent-runner
VM_TAG=agent-runner # network tag the firewall rule targets
ADDRESS_NAME=agent-runner-ip
FIREWALL_RULE=agent-runner-web
NETWORK=default

# The fleet (--runners): one name for the group, its backend service, URL map, proxy and
# forwarding rule. The runners have no external address; their subnet gets Private Google Access
# (Artifact Registry, Cloud Storage, Google's certificates, Vertex AI).
FLEET_NAME=agent-runners
SUBNET=default # the runners' subnet in REGION: an auto-mode network's
FLEET_TAG=agent-runner-fleet
FLEET_HC_LB=agent-runner-ready      # the balancer's health check: /readyz, quick
FLEET_HC_HEAL=agent-runner-autoheal # autohealing: /readyz too, but only after a minute of 503s
ILB_ADDRESS_NAME=agent-runner-ilb
PROXY_SUBNET=agent-proxy-only
FIREWALL_FROM_LB=agent-runner-from-lb
FIREWALL_HEALTH=agent-runner-health-checks
# Google's health checkers (documented ranges for health checks of Application Load Balancers).
HEALTH_CHECK_RANGES=35.191.0.0/16,130.211.0.0/22
CONNECTOR=agent-functions
NAT_ROUTER=agent-runner-router
NAT_NAME=agent-runner-nat
RUNNER_HEADER=x-agent-user # the runner's RUNNER_USER_HEADER (its default)
COMPUTE_API=https://www.googleapis.com/compute/v1

# Seconds the runner gets to drain at a VM's shutdown: its runs finish within the runner's
# answer budget (50 s for the default 30 s run cap), then warm workspaces are saved. Compute
# Engine gives an on-demand VM's shutdown script 90 s.
STOP_TIMEOUT_S=80

# Caddy (HTTPS in front of the runner) is pulled here once, mirrored into Artifact Registry and
# pinned by digest like the other images: the VM never pulls a moving tag at boot.
CADDY_SOURCE=docker.io/library/caddy:2
# gVisor for the sandboxes: a pinned release; its SHA-512 is fetched once at deploy time (from the
# release's own .sha512 file) and written into the startup script, which checks the binary against
# it at every boot. The runner's SANDBOX_RUNTIME=auto then runs every sandbox under runsc.
GVISOR_RELEASE=20250707.0
GVISOR_URL="https://storage.googleapis.com/gvisor/releases/release/$GVISOR_RELEASE/x86_64"
LOCAL_RUNNER_IMAGE=agent-platform/runner:latest       # built by scripts/images.sh
LOCAL_AGENT_IMAGE=agent-platform/agent-default:latest # built by scripts/images.sh

# The APIs every deploy enables; plan.sh adds those of a model provider or a fleet.
APIS=(run.googleapis.com artifactregistry.googleapis.com compute.googleapis.com cloudscheduler.googleapis.com
  cloudfunctions.googleapis.com cloudbuild.googleapis.com firestore.googleapis.com
  secretmanager.googleapis.com iam.googleapis.com)
# The steps' titles, by number (plan.sh retitles 8-10 for a fleet and the project's .env file).
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
