# Sourced by scripts/deploy.sh: the Firebase side, step 3 (the Firestore database) and step 11
# (firebase deploy: functions, Firestore rules and indexes, Hosting).

ensure_firestore_database() {
  step 3 "Firebase must be added to the project: npx firebase projects:addfirebase $PROJECT" \
    "The location ($FIRESTORE_LOCATION) must be a Firestore location; it cannot be changed later (--firestore-location)" \
    "An existing Datastore-mode database cannot hold Firestore rules"
  if ! exists gcloud firestore databases describe --database='(default)' --project="$PROJECT"; then
    run gcloud firestore databases create --database='(default)' --location="$FIRESTORE_LOCATION" \
      --type=firestore-native --project="$PROJECT"
  fi
}

deploy_firebase() {
  step 11 "Logged in to Firebase: npx firebase login (or Application Default Credentials)" \
    "Firebase must be added to the project: npx firebase projects:addfirebase $PROJECT" \
    "Deploying functions that run as $FUNCTIONS_SA needs roles/iam.serviceAccountUser on it" \
    "Build errors about permissions: grant roles/cloudbuild.builds.builder to $PROJECT_NUMBER-compute@developer.gserviceaccount.com" \
    "Functions deleted from the source: non-interactive deploys refuse to delete them; review, then npx firebase functions:delete NAME --project $PROJECT --region $FUNCTIONS_REGION" \
    "'could not set up cleanup policy': npx firebase functions:artifacts:setpolicy --project $PROJECT --location $FUNCTIONS_REGION --days 1 --force, then run this script again" \
    "A param without a value: add it to $ENV_FILE"
  # Non-interactive, so it never waits for an answer. firebase-tools then needs every param in the
  # .env file (step 10), and at the first functions deploy in a region it stops with an error unless
  # --force accepts its one-time Artifact Registry cleanup policy for gcf-artifacts. That repository
  # is created by the first deploy: while it is missing no function exists that --force could delete.
  local deploy=(npx firebase deploy --project "$PROJECT" --only "functions,firestore:rules,firestore:indexes,hosting" --non-interactive)
  if exists gcloud artifacts repositories describe gcf-artifacts --location="$FUNCTIONS_REGION" --project="$PROJECT"; then
    run "${deploy[@]}"
  else
    say "first functions deploy in $FUNCTIONS_REGION (no gcf-artifacts repository): adding --force for firebase-tools' cleanup-policy prompt"
    run "${deploy[@]}" --force
    if ((DRY_RUN)); then printf '  (dry-run: if gcf-artifacts exists, the same command without --force)\n'; fi
  fi
}
