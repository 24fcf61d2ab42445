import {
  envBool,
  envInt,
  envList,
  MESSAGE_MAX_CHARS,
  OUTPUT_LIMIT_BYTES_DEFAULT,
  RUN_CAP_MIN_MS,
  RUN_TIMEOUT_DEFAULT_MS,
  RUN_TIMEOUT_MAX_MS,
  RUNNER_BODY_BYTES_DEFAULT,
  RUNNER_MESSAGE_CHARS_DEFAULT,
  TOKEN_BUDGET_MAX,
  TOKENS_PER_RUN_DEFAULT,
  type SettingDoc,
} from '@agent-platform/contract';
import { z } from 'zod';

/**
 * The runner's settings as environment variables: each one's name, default, validator and
 * description, in one table (config.ts reads it; docs/configuration.md is generated from it).
 */
export const MiB = 1024 * 1024;

const int = envInt;
const list = envList;

const bool = envBool;

/**
 * Every runner setting: env variable name, default and validator; envDocs below describes each
 * (docs/configuration.md is generated from both: npm run docs).
 */
export const envSchema = z.object({
  PORT: int(0, 65535).default(8081),
  HOST: z.string().min(1).default('0.0.0.0'),
  AGENT_IMAGE: z.string().min(1).default('agent-platform/agent-default:latest'),
  RUNNER_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  RUNNER_AUDIENCE: z.string().min(1).optional(),
  RUNNER_ALLOWED_INVOKERS: list.default([]),
  RUNNER_OIDC_CERTS_URL: z.url().default('https://www.googleapis.com/oauth2/v1/certs'),
  RUNNER_ID: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'must be 1-64 of [a-zA-Z0-9_.-]')
    .default('default'),
  RUN_TIMEOUT_MS: int(RUN_CAP_MIN_MS, RUN_TIMEOUT_MAX_MS).default(RUN_TIMEOUT_DEFAULT_MS),
  SANDBOX_MEMORY_BYTES: int(64 * MiB, 64 * 1024 * MiB).default(512 * MiB),
  SANDBOX_CPUS: z.coerce.number().positive().max(64).default(1),
  SANDBOX_PIDS_LIMIT: int(8, 100_000).default(128),
  SANDBOX_TMP_BYTES: int(1 * MiB, 4096 * MiB).default(32 * MiB),
  SANDBOX_FILE_SIZE_BYTES: int(1 * MiB, 4096 * MiB).default(32 * MiB),
  SANDBOX_NOFILE: int(16, 65_536).default(256),
  SANDBOX_RUNTIME: z
    .string()
    .regex(/^[a-z0-9_.-]+$/)
    .default('auto'),
  WORKSPACE_BYTES: int(1 * MiB, 16_384 * MiB).default(64 * MiB),
  WORKSPACE_INODES: int(64, 1_000_000).default(8192),
  WORKSPACES_DISK_BYTES: int(1 * MiB, 64 * 1024 * 1024 * MiB).default(20 * 1024 * MiB),
  WORKSPACE_STORE: z.enum(['volume', 'gcs']).default('volume'),
  WORKSPACE_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, 'must be a Cloud Storage bucket name')
    .optional(),
  WORKSPACE_STORE_ENDPOINT: z.url().optional(),
  OUTPUT_LIMIT_BYTES: int(4096, 64 * MiB).default(OUTPUT_LIMIT_BYTES_DEFAULT),
  MAX_CONCURRENT_RUNS: int(1, 1024).optional(),
  MAX_QUEUED_RUNS: int(0, 10_000).default(32),
  MAX_QUEUED_PER_USER: int(0, 100).default(2),
  MAX_RUNS_PER_ADDRESS: int(1, 1024).optional(),
  MAX_ANONYMOUS_RUNS: int(1, 1024).optional(),
  MAX_BODY_BYTES: int(1024, 16 * MiB).default(RUNNER_BODY_BYTES_DEFAULT),
  MAX_MESSAGE_CHARS: int(1, MESSAGE_MAX_CHARS).default(RUNNER_MESSAGE_CHARS_DEFAULT),
  WARM_IDLE_TTL_MS: int(0, 86_400_000).default(300_000),
  WARM_MAX_SANDBOXES: int(0, 10_000).optional(),
  WARM_FREEZE_AFTER_MS: int(0, 86_400_000).default(2_000),
  HOST_MEMORY_RESERVE_BYTES: int(0, 64 * 1024 * 1024 * MiB).optional(),
  WARM_MAX_LIFETIME_MS: int(1_000, 7 * 86_400_000).default(3_600_000),
  REAPER_INTERVAL_MS: int(1_000, 86_400_000).default(60_000),
  REAPER_MIN_AGE_MS: int(0, 86_400_000).default(30_000),
  MODEL_PROVIDER: z.enum(['openai', 'vertex']).default('openai'),
  MODEL_BASE_URL: z.url().optional(),
  VERTEX_PROJECT: z
    .string()
    .regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a Google Cloud project id')
    .optional(),
  VERTEX_LOCATION: z
    .string()
    .regex(/^[a-z0-9-]{1,40}$/, 'must be a location such as us-central1 or global')
    .default('us-central1'),
  MODEL_API_KEY: z.string().min(1).optional(),
  MODEL_ALLOWLIST: list.default([]),
  MODEL_DEFAULT: z.string().min(1).max(200).optional(),
  MODEL_CALLS_PER_RUN: int(1, 10_000).default(20),
  MODEL_TOKENS_PER_RUN: int(0, TOKEN_BUDGET_MAX).default(TOKENS_PER_RUN_DEFAULT),
  MODEL_DEFAULT_MAX_TOKENS: int(1, TOKEN_BUDGET_MAX).default(8_192),
  MODEL_CALL_TIMEOUT_MS: int(1_000, 3_600_000).default(120_000),
  LOG_REQUESTS: bool.default(true),
});

/**
 * What docs/configuration.md says of each setting (`npm run docs` generates it from this table and
 * these lines): a one-line description, and the default in words where it is not a constant.
 */
export const envDocs: Record<keyof typeof envSchema.shape, SettingDoc> = {
  PORT: 'TCP port to listen on; 0 picks a free one.',
  HOST: 'Address to bind (npm start binds 127.0.0.1).',
  AGENT_IMAGE: 'Image every sandbox runs.',
  RUNNER_TOKEN: 'Shared secret callers send as a Bearer token, for local development; never logged.',
  RUNNER_AUDIENCE: "Expected aud of Google-signed ID tokens (usually the runner's URL).",
  RUNNER_ALLOWED_INVOKERS: 'Comma-separated emails of the service accounts allowed to call.',
  RUNNER_OIDC_CERTS_URL: "Where Google's token-signing certificates come from (tests use a stand-in).",
  RUNNER_ID: "Label value that scopes this runner's containers, volumes and reaper.",
  RUN_TIMEOUT_MS: "Wall-clock cap of one run, killed from the host; a request's timeoutMs may only lower it.",
  SANDBOX_MEMORY_BYTES: 'Memory of a sandbox, its tmpfs included; swap is set equal (no swap).',
  SANDBOX_CPUS: "CPUs per sandbox (at most the host's).",
  SANDBOX_PIDS_LIMIT:
    "Processes and threads per sandbox (under runsc 512 more for gVisor's own host threads).",
  SANDBOX_TMP_BYTES: "Size of the sandbox's /tmp (tmpfs, noexec).",
  SANDBOX_FILE_SIZE_BYTES: 'Largest file a sandbox may write (RLIMIT_FSIZE).',
  SANDBOX_NOFILE: 'Open files per process (RLIMIT_NOFILE).',
  SANDBOX_RUNTIME: 'Container runtime: auto (runsc if the engine has it, else runc) or one the engine has.',
  WORKSPACE_BYTES: "Bytes a user's /workspace may hold.",
  WORKSPACE_INODES: "Files and directories a user's /workspace may hold.",
  WORKSPACES_DISK_BYTES:
    'Disk for all workspaces, each counted at its largest snapshot; then new users get 507.',
  WORKSPACE_STORE: 'volume: a Docker volume per user on this host; gcs: WORKSPACE_BUCKET, shared by a fleet.',
  WORKSPACE_BUCKET:
    "WORKSPACE_STORE=gcs: the bucket; the runner's account needs object read, create, delete.",
  WORKSPACE_STORE_ENDPOINT: {
    description: 'WORKSPACE_STORE=gcs: the Cloud Storage API endpoint (tests use a local stand-in).',
    defaultText: "Google's",
  },
  OUTPUT_LIMIT_BYTES:
    "The agent's stdout per run, then output_limit; a reply counts twice (deltas and result).",
  MAX_CONCURRENT_RUNS: {
    description: 'Sandboxes running at once, all users.',
    defaultText: "2 per core, at most 64 and what 3/4 of the host's memory holds at SANDBOX_MEMORY_BYTES",
  },
  MAX_QUEUED_RUNS: 'Requests waiting for a slot, all users (then 429).',
  MAX_QUEUED_PER_USER: "Requests of one user waiting behind that user's running one (then 429).",
  MAX_RUNS_PER_ADDRESS: {
    description:
      'Runs of one client address (all its accounts, as the functions name it) running at once; more wait, then 429.',
    defaultText: 'half of MAX_CONCURRENT_RUNS, rounded up',
  },
  MAX_ANONYMOUS_RUNS: {
    description: 'Runs of anonymous accounts running at once, all of them together; more wait, then 429.',
    defaultText: 'half of MAX_CONCURRENT_RUNS, rounded up',
  },
  MAX_BODY_BYTES: 'Largest JSON request body (then 413).',
  MAX_MESSAGE_CHARS: 'Longest message of a run request, in characters.',
  WARM_IDLE_TTL_MS: "How long a user's sandbox stays warm after a run; 0 disables warm reuse.",
  WARM_MAX_SANDBOXES: {
    description: 'Warm (idle) sandboxes kept at most, all users; the least recently used is evicted.',
    // An idle sandbox measured 11 MiB under runc; 64 MiB leaves room for what its tmpfs hold.
    defaultText: "a quarter of the host's memory at 64 MiB a sandbox, between 4 and 1024",
  },
  WARM_FREEZE_AFTER_MS: 'An idle sandbox is frozen (docker pause) after this long; 0: at once.',
  HOST_MEMORY_RESERVE_BYTES: {
    description: "Idle sandboxes are removed, LRU first, while the host's MemAvailable is below this.",
    defaultText: 'MAX_CONCURRENT_RUNS x SANDBOX_MEMORY_BYTES + 512 MiB',
  },
  WARM_MAX_LIFETIME_MS:
    'How long one sandbox may live however active its user; after a run past it, it is replaced.',
  REAPER_INTERVAL_MS: 'How often the reaper looks for orphaned containers.',
  REAPER_MIN_AGE_MS: 'Sandboxes younger than this are never reaped (their create call may be in flight).',
  MODEL_PROVIDER:
    "openai: MODEL_BASE_URL with MODEL_API_KEY; vertex: Vertex AI with the VM's service account.",
  MODEL_BASE_URL: {
    description: 'OpenAI-compatible provider, e.g. https://api.openai.com/v1 (unset: the agent is offline).',
    defaultText: "unset (vertex: Vertex AI's endpoint for the project and location)",
  },
  VERTEX_PROJECT: 'MODEL_PROVIDER=vertex: the project whose Vertex AI serves the models (required then).',
  VERTEX_LOCATION: 'MODEL_PROVIDER=vertex: the Vertex AI location (global too).',
  MODEL_API_KEY: "The provider's key; never enters a sandbox, a log or an answer (refused with vertex).",
  MODEL_ALLOWLIST: 'Comma-separated models a sandbox may use (listed by its /v1/models); empty: any.',
  MODEL_DEFAULT: 'Model used when a request names none.',
  MODEL_CALLS_PER_RUN:
    "Model calls one run may make, the LLM agent's own included (then 429 in the sandbox).",
  MODEL_TOKENS_PER_RUN:
    "Tokens (input + output) one run may use; a run request's tokenBudget may ask for fewer.",
  MODEL_DEFAULT_MAX_TOKENS:
    "The max_tokens the gateway gives a model call that sets no cap (lowered to what is left of the run's budget); providers refuse a cap above their model's output limit, so raise it for models that write or reason longer.",
  MODEL_CALL_TIMEOUT_MS:
    'How long one provider call may take, its answer included (then 504 in the sandbox).',
  LOG_REQUESTS: 'Emit one JSON log line per request.',
};

export type RunnerEnv = z.infer<typeof envSchema>;
