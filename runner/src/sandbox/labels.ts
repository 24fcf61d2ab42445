/** Labels on every container and volume the runner creates, so a reaper can find orphans. */
export const LABEL_MANAGED_BY = 'dev.agent-platform.managed-by';
export const LABEL_RUNNER_ID = 'dev.agent-platform.runner-id';
export const LABEL_OWNER = 'dev.agent-platform.owner';
export const LABEL_RUN_ID = 'dev.agent-platform.run-id';
export const LABEL_KIND = 'dev.agent-platform.kind';
export const MANAGED_BY = 'agent-platform-runner';

export function sandboxLabels(runnerId: string, userId: string, runId: string): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_RUNNER_ID]: runnerId,
    [LABEL_OWNER]: userId,
    [LABEL_RUN_ID]: runId,
    [LABEL_KIND]: 'sandbox',
  };
}

export function workspaceLabels(runnerId: string, userId: string): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_RUNNER_ID]: runnerId,
    [LABEL_OWNER]: userId,
    [LABEL_KIND]: 'workspace',
  };
}

/** The anonymous volume of one sandbox (WORKSPACE_STORE=gcs), removed with its container. */
export function sandboxStoreLabels(runnerId: string): Record<string, string> {
  return {
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_RUNNER_ID]: runnerId,
    [LABEL_KIND]: 'sandbox-store',
  };
}

/** Docker `filters` selecting this runner's sandboxes. */
export function sandboxFilter(runnerId: string): Record<string, string[]> {
  return {
    label: [`${LABEL_MANAGED_BY}=${MANAGED_BY}`, `${LABEL_RUNNER_ID}=${runnerId}`, `${LABEL_KIND}=sandbox`],
  };
}
