import { setGlobalOptions } from 'firebase-functions/v2';
import { RUNNER_VPC_CONNECTOR } from './params.ts';

// Every function runs as this service account (firebase-tools expands the trailing "@" to
// @<project>.iam.gserviceaccount.com). The runner accepts ID tokens of exactly this email
// (RUNNER_ALLOWED_INVOKERS); scripts/deploy.sh creates it. Must run before any function is defined.
//
// With a runner fleet the functions reach its internal load balancer through the VPC connector
// RUNNER_VPC_CONNECTOR, for private ranges only. Empty (one runner) means no VPC egress:
// firebase-tools keeps an empty connector as it is and then sets none (build.js, toBackend;
// gcp/cloudfunctionsv2.js, functionFromEndpoint); scripts/deploy.test.ts checks both through that
// code.
setGlobalOptions({
  serviceAccount: 'agent-functions@',
  region: 'us-central1',
  vpcConnector: RUNNER_VPC_CONNECTOR,
  vpcConnectorEgressSettings: 'PRIVATE_RANGES_ONLY',
});
