import {
  envBool,
  envInt,
  envList,
  parseEnvTable,
  MESSAGE_MAX_CHARS,
  OUTPUT_LIMIT_BYTES_DEFAULT,
  RUN_CAP_MIN_MS,
  RUN_TIMEOUT_DEFAULT_MS,
  RUN_TIMEOUT_MAX_MS,
  RUNNER_BODY_BYTES_DEFAULT,
  RUNNER_MESSAGE_CHARS_DEFAULT,
  TOKEN_BUDGET_MAX,
  TOKENS_PER_RUN_DEFAULT,
} from '@agent-platform/contract';
import { availableParallelism, totalmem } from 'node:os';
import { z } from 'zod';
import type { ModelSettings } from './models/model-gateway.ts';
import { vertexBaseUrl } from './models/provider-auth.ts';
import { IDLE_SANDBOX_ESTIMATE_BYTES } from './sandbox/engine.ts';
import { SHM_BYTES } from './sandbox/sandbox-layout.ts';

const MiB = 1024 * 1024;
/** Bytes of one provider answer passed back to a sandbox, at most. */
const MODEL_RESPONSE_MAX_BYTES = 4 * MiB;

const int = envInt;
const list = envList;

const bool = envBool;

/**
 * Every runner setting: env variable name, validator, default and a one-line description (the
 * description and, where the default depends on the host, `defaultText` are what
 * docs/configuration.md shows: `npm run docs` regenerates it from this table).
 */
export const envSchema = z.object({
  PORT: int(0, 65535).default(8081).describe('TCP port to listen on; 0 picks a free one.'),
  HOST: z.string().min(1).default('0.0.0.0').describe('Address to bind (npm start binds 127.0.0.1).'),
  AGENT_IMAGE: z
    .string()
    .min(1)
    .default('agent-platform/agent-default:latest')
    .describe('Image every sandbox runs.'),
  RUNNER_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters')
    .optional()
    .describe('Shared secret callers send as a Bearer token, for local development; never logged.'),
  RUNNER_AUDIENCE: z
    .string()
    .min(1)
    .optional()
    .describe("Expected aud of Google-signed ID tokens (usually the runner's URL)."),
  RUNNER_ALLOWED_INVOKERS: list
    .default([])
    .describe('Comma-separated service-account emails allowed to call (required with RUNNER_AUDIENCE).'),
  RUNNER_OIDC_CERTS_URL: z
    .url()
    .default('https://www.googleapis.com/oauth2/v1/certs')
    .describe("Where Google's token-signing certificates are fetched (PEM JSON; tests use a stand-in)."),
  RUNNER_ID: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'must be 1-64 of [a-zA-Z0-9_.-]')
    .default('default')
    .describe("Label value that scopes this runner's containers, volumes and reaper."),
  RUN_TIMEOUT_MS: int(RUN_CAP_MIN_MS, RUN_TIMEOUT_MAX_MS)
    .default(RUN_TIMEOUT_DEFAULT_MS)
    .describe("Wall-clock cap of one run, killed from the host; a request's timeoutMs may only lower it."),
  SANDBOX_MEMORY_BYTES: int(64 * MiB, 64 * 1024 * MiB)
    .default(512 * MiB)
    .describe(
      'Sandbox memory, both tmpfs included (swap set equal: no swap); at least WORKSPACE_BYTES + SANDBOX_TMP_BYTES + 80 MiB.',
    ),
  SANDBOX_CPUS: z.coerce
    .number()
    .positive()
    .max(64)
    .default(1)
    .describe("CPUs per sandbox (at most the host's)."),
  SANDBOX_PIDS_LIMIT: int(8, 100_000)
    .default(128)
    .describe("Processes and threads per sandbox (under runsc 512 more for gVisor's own host threads)."),
  SANDBOX_TMP_BYTES: int(1 * MiB, 4096 * MiB)
    .default(32 * MiB)
    .describe("Size of the sandbox's /tmp (tmpfs, noexec)."),
  SANDBOX_FILE_SIZE_BYTES: int(1 * MiB, 4096 * MiB)
    .default(32 * MiB)
    .describe('Largest file a sandbox may write (RLIMIT_FSIZE).'),
  SANDBOX_NOFILE: int(16, 65_536).default(256).describe('Open files per process (RLIMIT_NOFILE).'),
  SANDBOX_RUNTIME: z
    .string()
    .regex(/^[a-z0-9_.-]+$/)
    .default('auto')
    .describe(
      "Container runtime: auto (gVisor's runsc when the engine has it, else runc; the choice is logged at start) or a runtime the engine has (runc, runsc).",
    ),
  WORKSPACE_BYTES: int(1 * MiB, 16_384 * MiB)
    .default(64 * MiB)
    .describe("Bytes a user's /workspace may hold."),
  WORKSPACE_INODES: int(64, 1_000_000)
    .default(8192)
    .describe("Files and directories a user's /workspace may hold."),
  WORKSPACES_DISK_BYTES: int(1 * MiB, 64 * 1024 * 1024 * MiB)
    .default(20 * 1024 * MiB)
    .describe(
      'Disk the workspaces may take: this over the largest snapshot (WORKSPACE_BYTES + 1 KiB per inode + 1 MiB) of them, then new users get 507 workspaces_full.',
    ),
  WORKSPACE_STORE: z
    .enum(['volume', 'gcs'])
    .default('volume')
    .describe(
      "Where users' workspace snapshots live: volume (a Docker volume per user on this host) or gcs (WORKSPACE_BUCKET in Cloud Storage, shared by a fleet of runners).",
    ),
  WORKSPACE_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, 'must be a Cloud Storage bucket name')
    .optional()
    .describe(
      "WORKSPACE_STORE=gcs: the bucket (required then); the runner's service account needs object read, create and delete on it.",
    ),
  WORKSPACE_STORE_ENDPOINT: z.url().optional().meta({
    description: 'WORKSPACE_STORE=gcs: the Cloud Storage API endpoint (tests use a local stand-in).',
    defaultText: "Google's",
  }),
  OUTPUT_LIMIT_BYTES: int(4096, 64 * MiB)
    .default(OUTPUT_LIMIT_BYTES_DEFAULT)
    .describe(
      "Cap on the agent's stdout (NDJSON) per run, then output_limit; a reply appears twice in it (deltas and result).",
    ),
  MAX_CONCURRENT_RUNS: int(1, 1024).optional().meta({
    description:
      "Sandboxes running at once, all users; more than the host's memory holds at SANDBOX_MEMORY_BYTES is refused at start.",
    defaultText:
      "2 per CPU core, at most 64 and at most what three quarters of the host's memory holds at SANDBOX_MEMORY_BYTES each",
  }),
  MAX_QUEUED_RUNS: int(0, 10_000).default(32).describe('Requests waiting for a slot, all users (then 429).'),
  MAX_QUEUED_PER_USER: int(0, 100)
    .default(2)
    .describe("Requests of one user waiting behind that user's running one (then 429)."),
  MAX_BODY_BYTES: int(1024, 16 * MiB)
    .default(RUNNER_BODY_BYTES_DEFAULT)
    .describe('Largest JSON request body (then 413).'),
  MAX_MESSAGE_CHARS: int(1, MESSAGE_MAX_CHARS)
    .default(RUNNER_MESSAGE_CHARS_DEFAULT)
    .describe('Longest message of a run request, in characters.'),
  WARM_IDLE_TTL_MS: int(0, 86_400_000)
    .default(300_000)
    .describe("How long a user's sandbox stays warm after a run; 0 disables warm reuse."),
  WARM_MAX_SANDBOXES: int(0, 10_000).optional().meta({
    description: 'Warm (idle) sandboxes kept at most, all users; the least recently used is evicted.',
    // An idle sandbox measured 11 MiB under runc; 64 MiB leaves room for what its tmpfs hold.
    defaultText: "a quarter of the host's memory at 64 MiB a sandbox, between 4 and 1024",
  }),
  WARM_FREEZE_AFTER_MS: int(0, 86_400_000)
    .default(2_000)
    .describe(
      "An idle sandbox is frozen (docker pause) after this long, thawed by its user's next run; 0: at once.",
    ),
  HOST_MEMORY_RESERVE_BYTES: int(0, 64 * 1024 * 1024 * MiB)
    .optional()
    .meta({
      description:
        "Idle sandboxes are removed, least recently used first, while the host's available memory (MemAvailable) is below this.",
      // So running sandboxes can always reach their limit.
      defaultText: 'MAX_CONCURRENT_RUNS x SANDBOX_MEMORY_BYTES + 512 MiB',
    }),
  WARM_MAX_LIFETIME_MS: int(1_000, 7 * 86_400_000)
    .default(3_600_000)
    .describe('How long one sandbox may live however active its user; after a run past it, it is replaced.'),
  REAPER_INTERVAL_MS: int(1_000, 86_400_000)
    .default(60_000)
    .describe('How often the reaper looks for orphaned containers.'),
  REAPER_MIN_AGE_MS: int(0, 86_400_000)
    .default(30_000)
    .describe('Sandboxes younger than this are never reaped (their create call may be in flight).'),
  MODEL_PROVIDER: z
    .enum(['openai', 'vertex'])
    .default('openai')
    .describe(
      "openai: any OpenAI-compatible provider at MODEL_BASE_URL with MODEL_API_KEY; vertex: Vertex AI with the VM's service account (VERTEX_PROJECT, VERTEX_LOCATION; no key).",
    ),
  MODEL_BASE_URL: z.url().optional().meta({
    description:
      'OpenAI-compatible provider of the model gateway, e.g. https://api.openai.com/v1; unset: the agent answers offline and model calls in sandboxes get 503.',
    defaultText: "unset (MODEL_PROVIDER=vertex: Vertex AI's endpoint for the project and location)",
  }),
  VERTEX_PROJECT: z
    .string()
    .regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a Google Cloud project id')
    .optional()
    .describe(
      'MODEL_PROVIDER=vertex: the Google Cloud project whose Vertex AI serves the models (required then).',
    ),
  VERTEX_LOCATION: z
    .string()
    .regex(/^[a-z0-9-]{1,40}$/, 'must be a location such as us-central1 or global')
    .default('us-central1')
    .describe('MODEL_PROVIDER=vertex: the Vertex AI location (global too).'),
  MODEL_API_KEY: z
    .string()
    .min(1)
    .optional()
    .describe(
      "The provider's key; never enters a sandbox, a log or an answer. Refused with MODEL_PROVIDER=vertex.",
    ),
  MODEL_ALLOWLIST: list
    .default([])
    .describe('Comma-separated models a sandbox may use (/v1/models in a sandbox lists them); empty: any.'),
  MODEL_DEFAULT: z.string().min(1).max(200).optional().describe('Model used when a request names none.'),
  MODEL_CALLS_PER_RUN: int(1, 10_000)
    .default(20)
    .describe(
      "Model calls one run may make (the LLM agent's own included); then 429 budget_exceeded in the sandbox.",
    ),
  MODEL_TOKENS_PER_RUN: int(0, TOKEN_BUDGET_MAX)
    .default(TOKENS_PER_RUN_DEFAULT)
    .describe("Tokens (input + output) one run may use; a run request's tokenBudget may ask for fewer."),
  MODEL_CALL_TIMEOUT_MS: int(1_000, 3_600_000)
    .default(120_000)
    .describe('How long one provider call may take, its answer included (then 504 in the sandbox).'),
  LOG_REQUESTS: bool.default(true).describe('Emit one JSON log line per request.'),
});

export type RunnerEnv = z.infer<typeof envSchema>;

export interface RunnerConfig {
  port: number;
  host: string;
  agentImage: string;
  runnerToken: string | undefined;
  audience: string | undefined;
  allowedInvokers: string[];
  oidcCertsUrl: string;
  runnerId: string;
  runTimeoutMs: number;
  sandbox: {
    memoryBytes: number;
    nanoCpus: number;
    pidsLimit: number;
    tmpBytes: number;
    fileSizeBytes: number;
    nofile: number;
    /** `auto` or the name of a runtime of the engine; DockerBackend resolves `auto`. */
    runtime: string;
  };
  workspaceBytes: number;
  workspaceInodes: number;
  /** Workspaces this runner holds at most (WORKSPACES_DISK_BYTES over snapshotCapBytes). */
  maxWorkspaces: number;
  /** null: Docker volumes on this host; else the Cloud Storage bucket (and endpoint) of the fleet. */
  workspaceStore: { bucket: string; endpoint: string | undefined } | null;
  /** Bytes of one snapshot at most (WORKSPACE_BYTES plus tar's headers). */
  snapshotMaxBytes: number;
  outputLimitBytes: number;
  maxConcurrentRuns: number;
  maxQueuedRuns: number;
  maxQueuedPerUser: number;
  maxBodyBytes: number;
  maxMessageChars: number;
  reaperIntervalMs: number;
  reaperMinAgeMs: number;
  warmIdleTtlMs: number;
  warmMaxSandboxes: number;
  warmMaxLifetimeMs: number;
  warmFreezeAfterMs: number;
  hostMemoryReserveBytes: number;
  models: ModelSettings;
  logRequests: boolean;
}

/** What the defaults are sized from: the host's memory and cores. */
export interface HostFacts {
  totalMemoryBytes: number;
  cpus: number;
}

export function hostFacts(): HostFacts {
  return { totalMemoryBytes: totalmem(), cpus: availableParallelism() };
}

/**
 * Host-sized defaults (the env table above states them as its defaultText): 2 runs per core, but
 * no more than three quarters of the host's memory holds at SANDBOX_MEMORY_BYTES each.
 */
export function hostDefaults(
  host: HostFacts,
  sandboxMemoryBytes: number,
): { maxConcurrentRuns: number; warmMaxSandboxes: number } {
  return {
    maxConcurrentRuns: Math.max(
      1,
      Math.min(64, 2 * host.cpus, Math.floor((host.totalMemoryBytes * 0.75) / sandboxMemoryBytes)),
    ),
    warmMaxSandboxes: Math.min(
      1024,
      Math.max(4, Math.floor(host.totalMemoryBytes / 4 / IDLE_SANDBOX_ESTIMATE_BYTES)),
    ),
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid runner configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** Reads and validates the runner's configuration; throws ConfigError naming each bad variable. */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  host: HostFacts = hostFacts(),
): RunnerConfig {
  const parsed = parseEnvTable(envSchema, env, ['RUNNER_TOKEN', 'MODEL_API_KEY']);
  if (!parsed.ok) throw new ConfigError(parsed.problems);
  const e = parsed.data;
  const problems: string[] = [];
  const defaults = hostDefaults(host, e.SANDBOX_MEMORY_BYTES);
  const maxConcurrentRuns = e.MAX_CONCURRENT_RUNS ?? defaults.maxConcurrentRuns;
  const runningBytes = maxConcurrentRuns * e.SANDBOX_MEMORY_BYTES;
  if (runningBytes > host.totalMemoryBytes) {
    problems.push(
      `MAX_CONCURRENT_RUNS=${maxConcurrentRuns} x SANDBOX_MEMORY_BYTES=${e.SANDBOX_MEMORY_BYTES}: running sandboxes could take ${runningBytes} bytes, more than the host's ${host.totalMemoryBytes}`,
    );
  }
  if (e.SANDBOX_CPUS > host.cpus) {
    problems.push(`SANDBOX_CPUS=${e.SANDBOX_CPUS}: more than the host's ${host.cpus} CPUs`);
  }
  if (!e.RUNNER_TOKEN && !e.RUNNER_AUDIENCE) {
    problems.push(
      'no authentication configured: set RUNNER_AUDIENCE and RUNNER_ALLOWED_INVOKERS (Google ID tokens), or RUNNER_TOKEN (local development)',
    );
  }
  if (e.RUNNER_AUDIENCE && e.RUNNER_ALLOWED_INVOKERS.length === 0) {
    problems.push('RUNNER_ALLOWED_INVOKERS: must list at least one email when RUNNER_AUDIENCE is set');
  }
  // tmpfs pages (/workspace, /tmp, and 16 MiB of /dev/shm) count against the sandbox's memory
  // cgroup: leave room for the processes.
  const tmpfsBytes = e.WORKSPACE_BYTES + e.SANDBOX_TMP_BYTES + SHM_BYTES;
  if (e.SANDBOX_MEMORY_BYTES < tmpfsBytes + 64 * MiB) {
    problems.push(
      `SANDBOX_MEMORY_BYTES=${e.SANDBOX_MEMORY_BYTES}: must be at least WORKSPACE_BYTES + SANDBOX_TMP_BYTES + 16 MiB (/dev/shm) + 64 MiB (${tmpfsBytes + 64 * MiB}), because both tmpfs count as sandbox memory`,
    );
  }
  const snapshotCap = snapshotCapBytes(e.WORKSPACE_BYTES, e.WORKSPACE_INODES);
  if (e.WORKSPACES_DISK_BYTES < snapshotCap) {
    problems.push(
      `WORKSPACES_DISK_BYTES=${e.WORKSPACES_DISK_BYTES}: must hold at least one workspace snapshot (${snapshotCap} bytes for WORKSPACE_BYTES=${e.WORKSPACE_BYTES} and WORKSPACE_INODES=${e.WORKSPACE_INODES})`,
    );
  }
  if (e.MODEL_PROVIDER === 'vertex' && !e.VERTEX_PROJECT) {
    problems.push('VERTEX_PROJECT: must be set when MODEL_PROVIDER=vertex');
  }
  if (e.MODEL_PROVIDER === 'vertex' && e.MODEL_API_KEY) {
    problems.push('MODEL_API_KEY: Vertex AI uses the service account, not a key; unset it');
  }
  if (e.WORKSPACE_STORE === 'gcs' && !e.WORKSPACE_BUCKET) {
    problems.push('WORKSPACE_BUCKET: must be set when WORKSPACE_STORE=gcs');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const modelBaseUrl =
    e.MODEL_BASE_URL ??
    (e.MODEL_PROVIDER === 'vertex' && e.VERTEX_PROJECT
      ? vertexBaseUrl(e.VERTEX_PROJECT, e.VERTEX_LOCATION)
      : null);
  return {
    port: e.PORT,
    host: e.HOST,
    agentImage: e.AGENT_IMAGE,
    runnerToken: e.RUNNER_TOKEN,
    audience: e.RUNNER_AUDIENCE,
    allowedInvokers: e.RUNNER_ALLOWED_INVOKERS,
    oidcCertsUrl: e.RUNNER_OIDC_CERTS_URL,
    runnerId: e.RUNNER_ID,
    runTimeoutMs: e.RUN_TIMEOUT_MS,
    sandbox: {
      memoryBytes: e.SANDBOX_MEMORY_BYTES,
      nanoCpus: Math.round(e.SANDBOX_CPUS * 1e9),
      pidsLimit: e.SANDBOX_PIDS_LIMIT,
      tmpBytes: e.SANDBOX_TMP_BYTES,
      fileSizeBytes: e.SANDBOX_FILE_SIZE_BYTES,
      nofile: e.SANDBOX_NOFILE,
      runtime: e.SANDBOX_RUNTIME,
    },
    workspaceBytes: e.WORKSPACE_BYTES,
    workspaceInodes: e.WORKSPACE_INODES,
    workspaceStore:
      e.WORKSPACE_STORE === 'gcs' && e.WORKSPACE_BUCKET
        ? { bucket: e.WORKSPACE_BUCKET, endpoint: e.WORKSPACE_STORE_ENDPOINT }
        : null,
    snapshotMaxBytes: snapshotCap,
    maxWorkspaces: Math.floor(
      e.WORKSPACES_DISK_BYTES / snapshotCapBytes(e.WORKSPACE_BYTES, e.WORKSPACE_INODES),
    ),
    outputLimitBytes: e.OUTPUT_LIMIT_BYTES,
    maxConcurrentRuns,
    maxQueuedRuns: e.MAX_QUEUED_RUNS,
    maxQueuedPerUser: e.MAX_QUEUED_PER_USER,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxMessageChars: e.MAX_MESSAGE_CHARS,
    reaperIntervalMs: e.REAPER_INTERVAL_MS,
    reaperMinAgeMs: e.REAPER_MIN_AGE_MS,
    warmIdleTtlMs: e.WARM_IDLE_TTL_MS,
    warmMaxSandboxes: e.WARM_MAX_SANDBOXES ?? defaults.warmMaxSandboxes,
    warmMaxLifetimeMs: e.WARM_MAX_LIFETIME_MS,
    warmFreezeAfterMs: e.WARM_FREEZE_AFTER_MS,
    hostMemoryReserveBytes: e.HOST_MEMORY_RESERVE_BYTES ?? runningBytes + 512 * MiB,
    models: {
      provider: e.MODEL_PROVIDER,
      baseUrl: modelBaseUrl,
      apiKey: e.MODEL_API_KEY,
      allowlist: e.MODEL_ALLOWLIST,
      defaultModel: e.MODEL_DEFAULT ?? null,
      callsPerRun: e.MODEL_CALLS_PER_RUN,
      tokensPerRun: e.MODEL_TOKENS_PER_RUN,
      responseMaxBytes: MODEL_RESPONSE_MAX_BYTES,
      callTimeoutMs: e.MODEL_CALL_TIMEOUT_MS,
    },
    logRequests: e.LOG_REQUESTS,
  };
}

/** A copy of the config safe to log: secrets replaced by whether they are set. */
export function redactedConfig(config: RunnerConfig): Record<string, unknown> {
  return {
    ...config,
    runnerToken: config.runnerToken ? '(set)' : '(unset)',
    models: { ...config.models, apiKey: config.models.apiKey ? '(set)' : '(unset)' },
  };
}

/**
 * The largest workspace snapshot: the tmpfs's bytes plus tar's 512-byte header (and padding) per
 * file, counted as 1 KiB an inode, plus 1 MiB. The save refuses a bigger one.
 */
export function snapshotCapBytes(workspaceBytes: number, workspaceInodes: number): number {
  return workspaceBytes + workspaceInodes * 1024 + MiB;
}
