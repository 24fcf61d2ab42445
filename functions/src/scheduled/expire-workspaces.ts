import { onSchedule } from 'firebase-functions/v2/scheduler';
import { deps } from '../deps.ts';

const DAY_MS = 86_400_000;

/**
 * Deletes the workspaces of users who sent no message and warmed no sandbox for
 * WORKSPACE_IDLE_DAYS (default 30): daily, at most 100 a run. Their conversations stay; their
 * next message starts with an empty workspace.
 */
export const expireIdleWorkspaces = onSchedule(
  { schedule: 'every day 03:00', timeoutSeconds: 300 },
  async () => {
    const { config, workspaces } = deps();
    await workspaces.expireIdleWorkspaces(Date.now() - config.workspaceIdleDays * DAY_MS);
  },
);
