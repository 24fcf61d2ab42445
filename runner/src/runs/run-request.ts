import { z } from 'zod';
import { historyEntrySchema } from '../sandbox/agent-protocol.ts';

/** User and conversation ids: Firebase uids and Firestore ids fit this. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const id = z.string({ error: 'must be a string' }).regex(ID_PATTERN, 'must be 1-128 of [A-Za-z0-9_-]');

export const MAX_HISTORY_ENTRIES = 100;

/** The body of POST /v1/runs. Limits come from the runner's config; requests may only go lower. */
export function runRequestSchema(limits: { maxMessageChars: number; runTimeoutMs: number }) {
  return z.object({
    userId: id,
    conversationId: id,
    message: z
      .string({ error: 'must be a string' })
      .refine((m) => m.trim().length > 0, 'must not be empty')
      .refine(
        (m) => m.length <= limits.maxMessageChars,
        `must be at most ${limits.maxMessageChars} characters`,
      ),
    history: z.array(historyEntrySchema).max(MAX_HISTORY_ENTRIES).default([]),
    timeoutMs: z
      .number({ error: 'must be a number' })
      .int('must be a whole number')
      .min(100, 'must be at least 100')
      .max(limits.runTimeoutMs, `must be at most ${limits.runTimeoutMs} (the runner's cap)`)
      .optional(),
  });
}

export type RunRequest = z.infer<ReturnType<typeof runRequestSchema>>;

export const userIdSchema = id;
