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
  /** Per user: model usage per UTC day (read by the user, written by the functions). */
  usage: 'usage',
  /** Top level: per-address message windows (functions only; clients read nothing). */
  ipWindows: 'ipWindows',
} as const;
