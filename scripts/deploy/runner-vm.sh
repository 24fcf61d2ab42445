# Sourced by scripts/deploy.sh: step 9 for one runner, a Container-Optimized OS VM with its static
# address, running the runner and Caddy (host-scripts.sh renders what it runs at boot).

ensure_runner_vm() {
  step 9 "Your account needs roles/compute.instanceAdmin.v1 and roles/iam.serviceAccountUser on $RUNNER_SA" \
    "Zone $ZONE must offer $MACHINE_TYPE (try another --zone)" \
    "The VM's boot log: gcloud compute instances get-serial-port-output $VM_NAME --zone=$ZONE --project=$PROJECT"
  fetch_gvisor_checksum
  write_host_scripts
  if exists gcloud compute instances describe "$VM_NAME" --zone="$ZONE" --project="$PROJECT"; then
    update_vm
  else
    create_vm
    if ((DRY_RUN)); then
      printf '  (dry-run: if the VM already exists, these run instead of the create:)\n'
      update_vm
    fi
  fi
}

create_vm() {
  run gcloud compute instances create "$VM_NAME" --zone="$ZONE" --project="$PROJECT" \
    --machine-type="$MACHINE_TYPE" --image-family=cos-stable --image-project=cos-cloud \
    --boot-disk-size=50GB --boot-disk-type=pd-balanced \
    --service-account="$RUNNER_SA" --scopes="$VM_SCOPES" \
    --tags="$VM_TAG" --address="$RUNNER_IP" --network="$NETWORK" \
    --shielded-secure-boot --shielded-vtpm --shielded-integrity-monitoring \
    --metadata=google-logging-enabled=true,google-monitoring-enabled=true,enable-oslogin=TRUE \
    --metadata-from-file=startup-script="$STARTUP_FILE"
}

# New startup script, then a clean stop/start: Docker stops the containers gracefully, the startup
# script pulls the new images and restarts both containers; the runner's reaper removes sandboxes
# of runs that were in flight. The static address stays.
update_vm() {
  run gcloud compute instances add-metadata "$VM_NAME" --zone="$ZONE" --project="$PROJECT" \
    --metadata-from-file=startup-script="$STARTUP_FILE"
  run gcloud compute instances stop "$VM_NAME" --zone="$ZONE" --project="$PROJECT"
  # The scopes follow the model provider (they can change only while the VM is stopped).
  run gcloud compute instances set-service-account "$VM_NAME" --zone="$ZONE" --project="$PROJECT" \
    --service-account="$RUNNER_SA" --scopes="$VM_SCOPES"
  run gcloud compute instances start "$VM_NAME" --zone="$ZONE" --project="$PROJECT"
}
