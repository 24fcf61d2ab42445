# Sourced by scripts/deploy.sh: step 7, the service accounts, their roles, and the model
# provider's access (a role for Vertex AI, or the key in Secret Manager).

ensure_identities() {
  step 7 "Your account needs roles/iam.serviceAccountAdmin and roles/resourcemanager.projectIamAdmin (or Owner)" \
    "A service account created seconds ago may not be visible to IAM yet: run the script again" \
    "iam.googleapis.com must be enabled (step 2)"
  ensure_service_account "$FUNCTIONS_SA_NAME" "Agent platform Cloud Functions (sole runner invoker)"
  # Firestore (Admin SDK) and logs. Calling the runner needs no role: the runner checks the email.
  grant_project_roles "$FUNCTIONS_SA" roles/datastore.user roles/logging.logWriter
  if ((SKIP_RUNNER)); then return 0; fi
  ensure_service_account "$RUNNER_SA_NAME" "Agent platform runner VM"
  # Pull the images (this repository only), write logs and metrics.
  run_retry gcloud artifacts repositories add-iam-policy-binding "$REPO_NAME" --location="$REGION" \
    --project="$PROJECT" --member="serviceAccount:$RUNNER_SA" --role=roles/artifactregistry.reader --format=none
  grant_project_roles "$RUNNER_SA" roles/logging.logWriter roles/monitoring.metricWriter
  # The model provider: Vertex AI through the VM's own identity, or an OpenAI-compatible
  # provider's key in Secret Manager, readable by the runner VM only (a new version per deploy).
  if [[ $MODEL_PROVIDER == vertex ]]; then
    grant_project_roles "$RUNNER_SA" roles/aiplatform.user
  elif [[ $MODEL_PROVIDER == openai && -n $MODEL_API_KEY ]]; then
    ensure_model_secret
  fi
}

# ensure_service_account NAME DISPLAY_NAME
ensure_service_account() {
  if ! exists gcloud iam service-accounts describe "$1@$PROJECT.iam.gserviceaccount.com" --project="$PROJECT"; then
    run gcloud iam service-accounts create "$1" --project="$PROJECT" --display-name="$2"
  fi
}

# grant_project_roles EMAIL ROLE...: project-wide roles of a service account.
grant_project_roles() {
  local role
  for role in "${@:2}"; do
    run_retry gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$1" \
      --role="$role" --condition=None --format=none
  done
}

ensure_model_secret() {
  if ! exists gcloud secrets describe "$MODEL_SECRET" --project="$PROJECT"; then
    run gcloud secrets create "$MODEL_SECRET" --project="$PROJECT" --replication-policy=automatic
  fi
  run_secret_stdin gcloud secrets versions add "$MODEL_SECRET" --project="$PROJECT" --data-file=-
  run_retry gcloud secrets add-iam-policy-binding "$MODEL_SECRET" --project="$PROJECT" \
    --member="serviceAccount:$RUNNER_SA" --role=roles/secretmanager.secretAccessor --format=none
}
