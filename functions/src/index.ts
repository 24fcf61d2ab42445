/** Cloud Functions of the agent platform (v2, and one v1 Auth trigger). */
import './global-options.ts';
export * from './http/callables.ts';
export { api } from './http/api.ts';
export { onUserDeleted } from './users/on-user-deleted.ts';
export { sweepPendingMessages } from './scheduled/sweep-pending.ts';
export { expireIdleWorkspaces } from './scheduled/expire-workspaces.ts';
