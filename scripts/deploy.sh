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

# This script uses only bash builtins until it runs a command for real, so that --dry-run needs
# nothing on PATH. Keep it that way (the test runs it with an empty PATH). Its parts live in
# scripts/deploy/: the option table, the checks, the plan, one file per group of steps, and the
# templates of what the VMs run.
src="${BASH_SOURCE[0]}"
if [[ $src == */* ]]; then ROOT="${src%/*}/.."; else ROOT=..; fi
cd "$ROOT"
ROOT="$PWD"
DEPLOY_DIR="$ROOT/scripts/deploy"

for part in constants render commands options validate plan access identities images network \
  host-scripts runner-vm fleet functions-params firebase summary; do
  # shellcheck source=/dev/null
  source "$DEPLOY_DIR/$part.sh"
done
unset part

init_options
parse_options "$@"
validate_options
plan_deploy
install_handlers
print_plan

# The steps, in order; each announces itself (constants.sh titles them) and says what to check if
# it fails.
check_tools_and_access                                                      # 1
enable_apis                                                                 # 2
step_unless "$SKIP_FIREBASE" --skip-firebase 3 ensure_firestore_database    # 3
step_unless "$SKIP_RUNNER" --skip-runner 4 ensure_registry                  # 4
step_unless "$SKIP_RUNNER" --skip-runner 5 build_images                     # 5
step_unless "$SKIP_RUNNER" --skip-runner 6 push_images                      # 6
ensure_identities                                                           # 7
if ((FLEET)); then
  ensure_fleet_network                                                      # 8
  ensure_fleet                                                              # 9
else
  step_unless "$SKIP_RUNNER" --skip-runner 8 ensure_vm_network
  step_unless "$SKIP_RUNNER" --skip-runner 9 ensure_runner_vm
fi
step_unless "$SKIP_FIREBASE" --skip-firebase 10 write_functions_params      # 10
step_unless "$SKIP_FIREBASE" --skip-firebase 11 deploy_firebase             # 11
verify_and_summarize                                                        # 12
