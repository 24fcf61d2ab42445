import { FUNCTION_TIMEOUT_S } from '@agent-platform/contract';
import * as v1 from 'firebase-functions/v1';
import { deps } from '../deps.ts';
import { RUNNER_VPC_CONNECTOR } from '../params.ts';

/**
 * When a Firebase user is deleted, everything kept for them goes too: their workspace on the
 * runner (its Docker volume, and a warm sandbox) and their documents in Firestore (conversations
 * with their messages, agents, request records, rate windows). Cloud Functions v2 has no Auth
 * deletion trigger, so this one is v1; it runs as the same service account as the others (the
 * runner accepts only that email) in the same region, on the same VPC connector. It is retried on failure (Cloud Functions
 * retries a failed event for up to 7 days): the deletion is idempotent, and an event dropped
 * after one failure would leave the user's workspace and documents for ever.
 */
export const onUserDeleted = v1
  .region('us-central1')
  .runWith({
    serviceAccount: 'agent-functions@',
    memory: '256MB',
    timeoutSeconds: FUNCTION_TIMEOUT_S,
    failurePolicy: true,
    // A fleet's internal balancer is reached through the VPC connector (see global-options.ts; a
    // connector's default egress is private ranges only). Empty for one runner: no connector.
    vpcConnector: RUNNER_VPC_CONNECTOR,
  })
  .auth.user()
  .onDelete(async (user) => {
    const { workspaces } = deps();
    await workspaces.deleteUserData(user.uid);
  });
