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
import { IDLE_SANDBOX_ESTIMATE_BYTES } from './sandbox/memory-relief.ts';
import { SHM_BYTES } from './sandbox/sandbox-layout.ts';

const MiB = 1024 * 1024;
/** Bytes of one provider answer passed back to a sandbox, at most. */
const MODEL_RESPONSE_MAX_BYTES = 4 * MiB;

const int = envInt;
const list = envList;

const bool = envBool;

/**
 * Every runner setting: env variable name, default and validator. The README's configuration
 * table mirrors this object; keep them together.
 */
const envSchema = z.object({
  /** TCP port (0 picks a free one). Default 8081. */
  PORT: int(0, 65535).default(8081),
  /** Address to bind. Default 0.0.0.0 (in a container); npm start binds 127.0.0.1. */
  HOST: z.string().min(1).default('0.0.0.0'),
  /** Image every sandbox runs. Default agent-platform/agent-default:latest. */
  AGENT_IMAGE: z.string().min(1).default('agent-platform/agent-default:latest'),
  /** Shared secret for local development (>= 16 chars). Default: unset. */
  RUNNER_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Expected `aud` of Google-signed ID tokens (usually the runner's URL). Default: unset. */
  RUNNER_AUDIENCE: z.string().min(1).optional(),
  /** Comma-separated service-account emails allowed to call. Default: empty. */
  RUNNER_ALLOWED_INVOKERS: list.default([]),
  /** Where Google's token-signing certificates are fetched (PEM JSON). */
  RUNNER_OIDC_CERTS_URL: z.url().default('https://www.googleapis.com/oauth2/v1/certs'),
  /** Label value that scopes this runner's containers (and its reaper). Default "default". */
  RUNNER_ID: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'must be 1-64 of [a-zA-Z0-9_.-]')
    .default('default'),
  /** Wall-clock cap of one run, killed from the host. Default 30000 (30 s). */
  RUN_TIMEOUT_MS: int(RUN_CAP_MIN_MS, RUN_TIMEOUT_MAX_MS).default(RUN_TIMEOUT_DEFAULT_MS),
  /** Sandbox memory (swap is set equal, so no swap). Default 512 MiB. */
  SANDBOX_MEMORY_BYTES: int(64 * MiB, 64 * 1024 * MiB).default(512 * MiB),
  /** CPUs per sandbox. Default 1. */
  SANDBOX_CPUS: z.coerce.number().positive().max(64).default(1),
  /** Max processes/threads per sandbox. Default 128. */
  SANDBOX_PIDS_LIMIT: int(8, 100_000).default(128),
  /** Size of the sandbox's /tmp tmpfs. Default 32 MiB. */
  SANDBOX_TMP_BYTES: int(1 * MiB, 4096 * MiB).default(32 * MiB),
  /** Largest file a sandbox may write (RLIMIT_FSIZE). Default 32 MiB. */
  SANDBOX_FILE_SIZE_BYTES: int(1 * MiB, 4096 * MiB).default(32 * MiB),
  /** Open files per process (RLIMIT_NOFILE). Default 256. */
  SANDBOX_NOFILE: int(16, 65_536).default(256),
  /**
   * Container runtime: `auto` (gVisor's runsc when the engine has it, else runc; the choice is
   * logged at start), or a runtime name the engine has (runc, runsc). Default auto.
   */
  SANDBOX_RUNTIME: z
    .string()
    .regex(/^[a-z0-9_.-]+$/)
    .default('auto'),
  /** Bytes a user's /workspace may hold. Default 64 MiB. */
  WORKSPACE_BYTES: int(1 * MiB, 16_384 * MiB).default(64 * MiB),
  /** Files and directories a user's /workspace may hold. Default 8192. */
  WORKSPACE_INODES: int(64, 1_000_000).default(8192),
  /**
   * Disk this runner's workspace volumes may take: it holds at most this over the largest
   * snapshot (WORKSPACE_BYTES + 1 KiB per inode + 1 MiB) workspaces, then refuses new users (507
   * workspaces_full) before the disk fills. Default 21474836480 (20 GiB).
   */
  WORKSPACES_DISK_BYTES: int(1 * MiB, 64 * 1024 * 1024 * MiB).default(20 * 1024 * MiB),
  /**
   * Where users' workspace snapshots live: `volume` (a Docker volume per user on this host) or
   * `gcs` (WORKSPACE_BUCKET in Cloud Storage, shared by a fleet of runners). Default volume.
   */
  WORKSPACE_STORE: z.enum(['volume', 'gcs']).default('volume'),
  /** WORKSPACE_STORE=gcs: the bucket. */
  WORKSPACE_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, 'must be a Cloud Storage bucket name')
    .optional(),
  /** WORKSPACE_STORE=gcs: the Cloud Storage API endpoint (tests: a local stand-in). Default Google's. */
  WORKSPACE_STORE_ENDPOINT: z.url().optional(),
  /** Cap on the agent's stdout (NDJSON) per run; a reply appears twice (deltas and result). Default 4 MiB. */
  OUTPUT_LIMIT_BYTES: int(4096, 64 * MiB).default(OUTPUT_LIMIT_BYTES_DEFAULT),
  /**
   * Sandboxes running at once, all users. Default: 2 per CPU core of the host, at most 64 and at
   * most what three quarters of the host's memory holds at SANDBOX_MEMORY_BYTES each.
   */
  MAX_CONCURRENT_RUNS: int(1, 1024).optional(),
  /** Requests waiting for a slot, all users. Default 32. */
  MAX_QUEUED_RUNS: int(0, 10_000).default(32),
  /** Requests of one user waiting behind that user's running one. Default 2. */
  MAX_QUEUED_PER_USER: int(0, 100).default(2),
  /** Largest JSON body accepted. Default 262144 (256 KiB). */
  MAX_BODY_BYTES: int(1024, 16 * MiB).default(RUNNER_BODY_BYTES_DEFAULT),
  /** Longest `message`, in characters. Default 32000. */
  MAX_MESSAGE_CHARS: int(1, MESSAGE_MAX_CHARS).default(RUNNER_MESSAGE_CHARS_DEFAULT),
  /** How long a user's sandbox stays warm after a run; 0 disables warm reuse. Default 300000 (5 min). */
  WARM_IDLE_TTL_MS: int(0, 86_400_000).default(300_000),
  /**
   * Warm (idle) sandboxes kept at most, all users; the least recently used is evicted. Default:
   * a quarter of the host's memory at 64 MiB a sandbox (an idle one measured 11 MiB under runc),
   * between 4 and 1024.
   */
  WARM_MAX_SANDBOXES: int(0, 10_000).optional(),
  /** An idle sandbox is frozen (docker pause) after this long; 0: at once. Default 2000. */
  WARM_FREEZE_AFTER_MS: int(0, 86_400_000).default(2_000),
  /**
   * Idle sandboxes are removed while the host's available memory (MemAvailable) is below this.
   * Default: MAX_CONCURRENT_RUNS x SANDBOX_MEMORY_BYTES + 512 MiB, so running sandboxes can
   * always reach their limit.
   */
  HOST_MEMORY_RESERVE_BYTES: int(0, 64 * 1024 * 1024 * MiB).optional(),
  /** How long one sandbox may live however active its user (then it is replaced). Default 3600000 (1 h). */
  WARM_MAX_LIFETIME_MS: int(1_000, 7 * 86_400_000).default(3_600_000),
  /** How often the reaper looks for orphaned containers. Default 60000 (60 s). */
  REAPER_INTERVAL_MS: int(1_000, 86_400_000).default(60_000),
  /** Sandboxes younger than this are never reaped (their create call may be in flight). Default 30000. */
  REAPER_MIN_AGE_MS: int(0, 86_400_000).default(30_000),
  /**
   * `openai`: any OpenAI-compatible provider at MODEL_BASE_URL with MODEL_API_KEY; `vertex`: Vertex
   * AI with the VM's service account (VERTEX_PROJECT, VERTEX_LOCATION; no key). Default openai.
   */
  MODEL_PROVIDER: z.enum(['openai', 'vertex']).default('openai'),
  /**
   * OpenAI-compatible provider for the model gateway, e.g. https://api.openai.com/v1 (with
   * MODEL_PROVIDER=vertex: default Vertex AI's endpoint for the project). Default: none.
   */
  MODEL_BASE_URL: z.url().optional(),
  /** MODEL_PROVIDER=vertex: the Google Cloud project whose Vertex AI serves the models. */
  VERTEX_PROJECT: z
    .string()
    .regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a Google Cloud project id')
    .optional(),
  /** MODEL_PROVIDER=vertex: the Vertex AI location. Default us-central1. */
  VERTEX_LOCATION: z
    .string()
    .regex(/^[a-z0-9-]{1,40}$/, 'must be a location such as us-central1 or global')
    .default('us-central1'),
  /** The provider's key; never enters a sandbox, a log or an answer. Default: unset. */
  MODEL_API_KEY: z.string().min(1).optional(),
  /** Comma-separated models a sandbox may use; empty: any. Default: empty. */
  MODEL_ALLOWLIST: list.default([]),
  /** Model used when a request names none. Default: unset. */
  MODEL_DEFAULT: z.string().min(1).max(200).optional(),
  /** Model calls one run may make. Default 20. */
  MODEL_CALLS_PER_RUN: int(1, 10_000).default(20),
  /** Tokens (input + output) one run may use; a run request may ask for fewer. Default 100000. */
  MODEL_TOKENS_PER_RUN: int(0, TOKEN_BUDGET_MAX).default(TOKENS_PER_RUN_DEFAULT),
  /** How long one provider call may take, its answer included. Default 120000 (2 min). */
  MODEL_CALL_TIMEOUT_MS: int(1_000, 3_600_000).default(120_000),
  /** Emit one JSON log line per request. Default true. */
  LOG_REQUESTS: bool.default(true),
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
 * Host-sized defaults (documented in the env table above and the README): 2 runs per core, but
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
