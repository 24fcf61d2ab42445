import { parseEnvTable } from '@agent-platform/contract';
import { availableParallelism, totalmem } from 'node:os';
import { envSchema, MiB } from './config-env.ts';
import type { ModelSettings } from './models/model-gateway.ts';
import { vertexBaseUrl } from './models/provider-auth.ts';
import { IDLE_SANDBOX_ESTIMATE_BYTES } from './sandbox/memory-relief.ts';
import { SHM_BYTES } from './sandbox/sandbox-layout.ts';

export { envDocs, envSchema, type RunnerEnv } from './config-env.ts';
/** Bytes of one provider answer passed back to a sandbox, at most. */
const MODEL_RESPONSE_MAX_BYTES = 4 * MiB;

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
  /** Runs of one client address at once (MAX_RUNS_PER_ADDRESS). */
  maxRunsPerAddress: number;
  /** Runs of anonymous accounts at once, together (MAX_ANONYMOUS_RUNS). */
  maxAnonymousRuns: number;
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
 * Host-sized defaults (envDocs above states them): 2 runs per core, but
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
    // Half the slots each: four accounts holding long runs from one address, or anonymous
    // accounts from many, leave the other half to everyone else (issue 18).
    maxRunsPerAddress: e.MAX_RUNS_PER_ADDRESS ?? Math.ceil(maxConcurrentRuns / 2),
    maxAnonymousRuns: e.MAX_ANONYMOUS_RUNS ?? Math.ceil(maxConcurrentRuns / 2),
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
      defaultMaxTokens: e.MODEL_DEFAULT_MAX_TOKENS,
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
