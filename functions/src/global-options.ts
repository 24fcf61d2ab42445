import { setGlobalOptions } from 'firebase-functions/v2';

// Every function runs as this service account (firebase-tools expands the trailing "@" to
// @<project>.iam.gserviceaccount.com). The runner accepts ID tokens of exactly this email
// (RUNNER_ALLOWED_INVOKERS); scripts/deploy.sh creates it. Must run before any function is defined.
setGlobalOptions({ serviceAccount: 'agent-functions@', region: 'us-central1' });
