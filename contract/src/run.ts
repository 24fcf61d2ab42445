import { z } from 'zod';
import {
  componentSchema,
  createdAgentSchema,
  historySchema,
  modelNameSchema,
  runAgentSchema,
} from './agent-protocol.ts';
import { idSchema, runIdSchema } from './ids.ts';
import { FILE_PATH_MAX_CHARS, REPLY_MAX_CHARS, TOKEN_BUDGET_MAX } from './limits.ts';
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
/**
 * Whom a run is for, as the runner's gate shares its slots out: the client's address as a hash
 * (the functions' ipWindows key; null: unknown) and whether the account is anonymous. One address,
 * and anonymous accounts together, may hold only a share of a runner's slots at once.
 */
export const runClientSchema = z.object({
  addressKey: z
    .string()
    .regex(/^[0-9a-f]{8,64}$/, 'must be 8 to 64 lowercase hex digits')
    .nullable(),
  anonymous: z.boolean(),
});
export type RunClient = z.infer<typeof runClientSchema>;

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
    /** The model (from the runner's MODEL_ALLOWLIST); default MODEL_DEFAULT. */
    model: modelNameSchema.optional(),
    /**
     * Tokens (input plus output) the run's model calls may use; the runner's MODEL_TOKENS_PER_RUN
     * applies when absent, and caps it when higher.
     */
    tokenBudget: z
      .number({ error: 'must be a number' })
      .int('must be a whole number')
      .min(0, 'must be at least 0')
      .max(TOKEN_BUDGET_MAX, `must be at most ${TOKEN_BUDGET_MAX}`)
      .optional(),
    /** The user's agent the run speaks as (default: the platform's agent). */
    agent: runAgentSchema.optional(),
    /** Whom the run is for, for the runner's fair shares of its run slots (default: unknown). */
    client: runClientSchema.optional(),
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

/** What a run's model calls used (tokens as the provider counted them, or estimated). */
export const modelUsageSchema = z.object({
  /** The model the run's calls used (null: none was made). */
  model: z.string().nullable(),
  calls: z.number().int().nonnegative(),
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  /** The run's budget that refused a model call, if one did. */
  exhausted: z.enum(['tokens', 'calls']).nullable(),
});
export type ModelUsage = z.infer<typeof modelUsageSchema>;
export const NO_MODEL_USAGE: ModelUsage = {
  model: null,
  calls: 0,
  inputTokens: 0,
  outputTokens: 0,
  exhausted: null,
};

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
  usage: modelUsageSchema,
  /** The runner (its RUNNER_ID) that served the run. */
  runnerId: z.string(),
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
  /** 429: the run waited while its client's share of the runner's slots was full (`field`: which share). */
  'share_full',
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

/** GET /v1/models: the models runs may name (for the functions' agent settings). */
export const modelsResponseSchema = z.object({
  /** Whether a provider is configured (without one, model calls answer 503). */
  configured: z.boolean(),
  models: z.array(z.string()),
  default: z.string().nullable(),
});
export type ModelsResponse = z.infer<typeof modelsResponseSchema>;

/** GET /healthz */
export const healthResponseSchema = z.object({
  status: z.literal('ok'),
  service: z.string(),
  /** The runner's RUNNER_ID (which runner of a fleet answered). */
  runnerId: z.string().optional(),
});

/**
 * The header that carries the user id of a runner request, for a load balancer that keeps each
 * user on one runner of a fleet (consistent hashing on it). A runner refuses a request whose
 * header names another user than its body or path.
 */
export const RUNNER_USER_HEADER = 'x-agent-user';

/**
 * A path of a file in a user's workspace, relative to it: no leading `/`, no `.` or `..`
 * segment, no NUL or newline (the runner also refuses one that resolves outside the workspace
 * through a link).
 */
export const filePathSchema = z
  .string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .max(FILE_PATH_MAX_CHARS, `must be at most ${FILE_PATH_MAX_CHARS} characters`)
  .refine((p) => !p.startsWith('/'), 'must be relative to the workspace (no leading /)')
  .refine((p) => !/[\0\n\r]/.test(p), 'must not contain NUL or line breaks')
  .refine(
    (p) => p.split('/').every((seg) => seg !== '..' && seg !== '.'),
    'must not contain . or .. segments',
  )
  .refine((p) => !p.endsWith('/'), 'must name a file, not end with /');

/** One entry of a workspace listing. */
export const fileEntrySchema = z.object({
  path: z.string(),
  type: z.enum(['file', 'dir', 'link', 'other']),
  size: z.number().int().nonnegative(),
  modifiedAt: z.string(),
});
export type FileEntry = z.infer<typeof fileEntrySchema>;

/** GET /v1/users/:userId/files (and the listFiles callable). */
export const filesListSchema = z.object({
  files: z.array(fileEntrySchema),
  /** More entries exist than FILES_LIST_MAX. */
  truncated: z.boolean(),
});
export type FilesList = z.infer<typeof filesListSchema>;
