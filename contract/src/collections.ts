/**
 * Names of the Firestore collections (the layout is in firestore.ts). Zod-free, so the web
 * client's bundle does not take in zod for them.
 */
export const COLLECTIONS = {
  users: 'users',
  conversations: 'conversations',
  messages: 'messages',
  agents: 'agents',
  requests: 'requests',
  /** Top level: per-address message windows (functions only; clients read nothing). */
  ipWindows: 'ipWindows',
} as const;
