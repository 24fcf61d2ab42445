import { z } from 'zod';
import { componentSchema, createdAgentSchema, historySchema } from './agent-protocol.ts';
import { idSchema, runIdSchema } from './ids.ts';
import { REPLY_MAX_CHARS } from './limits.ts';
import { RUN_TIMEOUT_MIN_MS } from './timeouts.ts';

/**
 * The runner's HTTP API: POST /v1/runs (JSON or NDJSON), POST /v1/users/:userId/warm,
 * DELETE /v1/users/:userId/workspace.
 */

/** How a sandbox run ended. Failures of the sandbox are data, not exceptions. */
export const RUN_STATUSES = ['ok', 'error', 'timeout', 'oom', 'output_limit'] as const;
export const runStatusSchema = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof runStatusSchema>;

/** The body of POST /v1/runs. The runner's limits come from its config; requests may only go lower. */
export function runRequestSchema(limits: { maxMessageChars: number; runTimeoutMs: number }) {
  return z.object({
    userId: idSchema,
    conversationId: idSchema,
    message: z
      .string({ error: 'must be a string' })
      .refine((m) => m.trim().length > 0, 'must not be empty')
      .refine(
        (m) => m.length <= limits.maxMessageChars,
        `must be at most ${limits.maxMessageChars} characters`,
      ),
    history: historySchema.default([]),
    timeoutMs: z
      .number({ error: 'must be a number' })
      .int('must be a whole number')
      .min(RUN_TIMEOUT_MIN_MS, `must be at least ${RUN_TIMEOUT_MIN_MS}`)
      .max(limits.runTimeoutMs, `must be at most ${limits.runTimeoutMs} (the runner's cap)`)
      .optional(),
  });
}
export type RunRequest = z.infer<ReturnType<typeof runRequestSchema>>;
/** What a caller sends (history and timeoutMs may be left out). */
export type RunRequestInput = z.input<ReturnType<typeof runRequestSchema>>;

/** Where the time of one run went, in milliseconds. */
export const runTimingsSchema = z.object({
  /** Waiting for the user's turn and a global slot. */
  queueMs: z.number().nonnegative(),
  /** Creating and starting the sandbox (0 when warm). */
  createMs: z.number().nonnegative(),
  /** From sending the request to the agent's result. */
  agentMs: z.number().nonnegative(),
  /** Saving /workspace into the user's volume (0 when the run changed nothing). */
  saveMs: z.number().nonnegative(),
});
export type RunTimings = z.infer<typeof runTimingsSchema>;

/** The body of `200` from POST /v1/runs. */
export const runResultSchema = z.object({
  runId: runIdSchema,
  status: runStatusSchema,
  text: z.string().max(REPLY_MAX_CHARS),
  component: componentSchema.nullable(),
  agent: createdAgentSchema.nullable(),
  /** 0 when the agent answered, 137 when the host killed the sandbox, else the agent's exit code. */
  exitCode: z.number().int().nullable(),
  durationMs: z.number().nonnegative(),
  /** Whether a warm sandbox served the run. */
  warm: z.boolean(),
  timings: runTimingsSchema,
});
export type RunResult = z.infer<typeof runResultSchema>;

/** The error body of every non-2xx runner answer, and of an `error` stream line. */
export const RUNNER_ERROR_CODES = [
  'invalid_request',
  'invalid_json',
  'unsupported_encoding',
  'body_too_large',
  'unauthenticated',
  'not_found',
  'overloaded',
  'workspaces_full',
  'not_ready',
  'internal',
] as const;
export type RunnerErrorCode = (typeof RUNNER_ERROR_CODES)[number];
export const runnerErrorBodySchema = z.object({
  error: z.object({
    code: z.enum(RUNNER_ERROR_CODES),
    message: z.string(),
    field: z.string().optional(),
  }),
});
export type RunnerErrorBody = z.infer<typeof runnerErrorBodySchema>;

/** Media type of the streamed answer to POST /v1/runs. */
export const NDJSON_MEDIA_TYPE = 'application/x-ndjson';

/** One line of the runner's NDJSON stream: text deltas, then one result (or one error). */
export const runStreamLineSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), delta: z.string().max(REPLY_MAX_CHARS) }),
  z.object({ type: z.literal('result'), result: runResultSchema }),
  z.object({ type: z.literal('error'), error: runnerErrorBodySchema.shape.error }),
]);
export type RunStreamLine = z.infer<typeof runStreamLineSchema>;

/** The answer of POST /v1/users/:userId/warm. */
export const warmResponseSchema = z.object({ warm: z.boolean(), created: z.boolean() });
export type WarmResponse = z.infer<typeof warmResponseSchema>;

/** The answer of DELETE /v1/users/:userId/workspace. */
export const deleteWorkspaceResponseSchema = z.object({ deleted: z.boolean() });
export type DeleteWorkspaceResponse = z.infer<typeof deleteWorkspaceResponseSchema>;

/** GET /healthz */
export const healthResponseSchema = z.object({ status: z.literal('ok'), service: z.string() });
