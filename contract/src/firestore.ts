import { z } from 'zod';
import { agentToolSchema, createdAgentSchema, storedComponentSchema } from './agent-protocol.ts';
import { sendResultSchema } from './callables.ts';
import { FUNCTIONS_ERROR_CODES } from './errors.ts';
import { idSchema } from './ids.ts';
import { AGENT_TOOLS } from './protocol.ts';
import { modelUsageSchema, runStatusSchema } from './run.ts';

/**
 * The Firestore documents, as the functions write them and clients read them:
 *
 *   users/{uid}                                   rate window (functions only)
 *   users/{uid}/conversations/{cid}               ConversationDoc
 *   users/{uid}/conversations/{cid}/messages/{mid} MessageDoc
 *   users/{uid}/agents/{aid}                      AgentDoc
 *   users/{uid}/requests/{requestId}              RequestDoc (idempotency)
 *   users/{uid}/usage/{YYYY-MM-DD}                UsageDoc (model usage per UTC day)
 *   ipWindows/{ipHash}                            IpWindowDoc (messages per client address)
 *
 * Timestamps are the SDK's own Timestamp class (admin and web differ), so they are checked by
 * shape; on write they are server timestamps.
 */
export interface TimestampLike {
  toMillis(): number;
  toDate(): Date;
}
const timestampSchema = z.custom<TimestampLike>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { toMillis?: unknown }).toMillis === 'function',
  'must be a timestamp',
);
/** A timestamp that may still be pending (a server timestamp not yet written). */
const maybeTimestamp = timestampSchema.nullable().catch(null);

const rateWindowSchema = z.object({ windowStartMs: z.number(), count: z.number().int().nonnegative() });
/**
 * users/{uid}: the per-user rate windows (messages; sandbox warm-ups and workspace deletions), the
 * messages being answered now (message id -> its lease, epoch ms; an entry past its lease no
 * longer counts), and when the user was last active (for the workspace expiry).
 */
export const userDocSchema = z.object({
  rate: rateWindowSchema.optional(),
  sandboxOpsRate: rateWindowSchema.optional(),
  /** The files API's calls (FILE_OPS_PER_MINUTE). */
  fileOpsRate: rateWindowSchema.optional(),
  activeRuns: z.record(z.string(), z.number()).optional(),
  lastActiveAt: maybeTimestamp.optional(),
  /** The user may have a workspace on the runner (set by activity, cleared by the expiry). */
  workspaceActive: z.boolean().optional(),
  /**
   * Tokens reserved for the messages being answered now (message id -> tokens), counted against
   * the day's budget until their usage is stored; an entry without an activeRuns lease is stale.
   */
  tokenReservations: z.record(z.string(), z.number().int().nonnegative()).optional(),
  /** This user's daily token budget, set by an operator (default: MODEL_TOKENS_PER_USER_PER_DAY). */
  tokensPerDay: z.number().int().nonnegative().optional(),
});
/** ipWindows/{first 32 hex of the SHA-256 of the client IP}: messages from one address. */
export const ipWindowDocSchema = z.object({ rate: rateWindowSchema.optional() });
export type UserDoc = z.infer<typeof userDocSchema>;

export const conversationDocSchema = z.object({
  title: z.string(),
  createdAt: maybeTimestamp,
  updatedAt: maybeTimestamp,
  messageCount: z.number().int().nonnegative(),
  /** Next free seq: each message reserves two (itself and its reply). */
  nextSeq: z.number().int().nonnegative(),
  lastMessagePreview: z.string(),
  /** The user's agent the conversation is with (absent or null: the default agent). */
  agentId: idSchema.nullable().optional(),
});
export type ConversationDoc = z.infer<typeof conversationDocSchema>;

/** A user message is pending, then done or failed; an agent message carries its run's status. */
export const USER_MESSAGE_STATUSES = ['pending', 'done', 'failed'] as const;
export const userMessageStatusSchema = z.enum(USER_MESSAGE_STATUSES);
export type UserMessageStatus = z.infer<typeof userMessageStatusSchema>;

export const messageDocSchema = z.object({
  seq: z.number().int().nonnegative(),
  role: z.enum(['user', 'agent']),
  text: z.string(),
  status: z.union([userMessageStatusSchema, runStatusSchema]),
  component: storedComponentSchema.nullable(),
  runId: z.string().nullable(),
  requestId: z.string().nullable(),
  createdAt: maybeTimestamp,
  /** Why a user message failed: the error code its sender got. */
  error: z.enum(FUNCTIONS_ERROR_CODES).optional(),
  /** A pending user message: past this its function is gone, and it counts as failed. */
  leaseExpiresAt: maybeTimestamp.optional(),
  /** An agent message: what its run's model calls used. */
  usage: modelUsageSchema.optional(),
});
export type MessageDoc = z.infer<typeof messageDocSchema>;

/**
 * An agent of the user's: made with createAgent (conversationId and runId null) or by a run's
 * create_agent. Documents from before agents had a model and tools read as the defaults.
 */
export const agentDocSchema = createdAgentSchema.extend({
  model: z.string().nullable().default(null),
  tools: z.array(agentToolSchema).default([...AGENT_TOOLS]),
  conversationId: idSchema.nullable(),
  runId: z.string().nullable(),
  createdAt: maybeTimestamp,
  updatedAt: maybeTimestamp.optional(),
});
export type AgentDoc = z.infer<typeof agentDocSchema>;

/** users/{uid}/usage/{YYYY-MM-DD}: model usage of one UTC day, added to by each run. */
export const usageDocSchema = z.object({
  calls: z.number().int().nonnegative().default(0),
  inputTokens: z.number().int().nonnegative().default(0),
  outputTokens: z.number().int().nonnegative().default(0),
  runs: z.number().int().nonnegative().default(0),
});
export type UsageDoc = z.infer<typeof usageDocSchema>;

export const REQUEST_STATES = ['pending', 'done', 'failed'] as const;
export const requestDocSchema = z.object({
  state: z.enum(REQUEST_STATES),
  conversationId: idSchema,
  userMessageId: idSchema,
  /**
   * What the request asked, so a replay of its requestId with another message or conversation is
   * refused instead of answered with this one's result: the SHA-256 (hex) of the message, and the
   * conversation it named (null: it started one).
   */
  messageSha256: z.string().length(64),
  askedConversationId: idSchema.nullable(),
  createdAt: maybeTimestamp,
  result: sendResultSchema.optional(),
  errorCode: z.enum(FUNCTIONS_ERROR_CODES).optional(),
  /** While pending: past this, a retry with the same requestId runs again (once). */
  leaseExpiresAt: maybeTimestamp.optional(),
});
export type RequestDoc = z.infer<typeof requestDocSchema>;
