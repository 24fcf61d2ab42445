import type {
  AgentRequest,
  ModelRequestEvent,
  ModelResponseLine,
  ResultEvent,
} from '@agent-platform/contract';

/**
 * The sandbox engine, in layers.
 *
 *   RunService ──(gate)──> SandboxEngine ──lease──> SandboxPool      SandboxBackend ──> SandboxHandle
 *   runs/                  engine.ts                sandbox-pool.ts  docker-backend.ts  docker-sandbox.ts
 *
 * RunService (runs/run-service.ts) admits an operation (the RunGate: the user's turn, a slot),
 * builds what crosses into the sandbox (the agent's request line, the run's use of the model
 * gateway: runs/run-models.ts) and turns the engine's outcome into the answer (usage, the note
 * of a save that lost to another runner). The files API uses a lease directly.
 *
 * SandboxEngine (engine.ts) hands out leases (sandbox-lease.ts): a user's sandbox, warm and
 * thawed or created, held by one operation and given back (kept warm or removed). Getting it,
 * the wait with a deadline and the give-back when the client goes away first are written once,
 * there. A run (sandbox-run.ts) is one exchange in a leased sandbox, the save of /workspace and
 * the classification of what happened (classify.ts) into a RunStatus. The engine also owns
 * prewarm, workspace deletion, readiness, drain, the reaper (reaper.ts: a pure choice of victims)
 * and memory relief (memory-relief.ts). It knows neither Docker nor the model gateway.
 *
 * SandboxPool (sandbox-pool.ts) owns the state of every live sandbox as one state machine:
 * busy (leased) -> idle -> freezing -> frozen, any of them -> retiring -> gone; resting ones
 * expire, are evicted (LRU, memory pressure), discarded or drained. The OOM kills a sandbox had
 * when it came to rest are kept there; one that grew by its next take is replaced. The metrics
 * read the states.
 *
 * SandboxBackend (this file) is what the engine needs from a container platform: create a
 * started sandbox for a user (its workspace ready), readiness, list and remove this runner's
 * sandboxes (the reaper), remove a user's workspace. DockerBackend implements it with dockerode;
 * tests use an in-memory backend with scripted outcomes (runner/test/helpers/in-memory-backend.ts).
 *
 * SandboxHandle is one live sandbox. Its health is its own state: it turns unhealthy when its
 * stream closes, when it writes outside a request, when an exchange ends without a result, or
 * when its holder or the pool says so (markUnhealthy, the first reason kept); nobody sets flags
 * from outside. Both backends speak the agent protocol through the same AgentSession
 * (agent-session.ts). A Docker sandbox keeps its workspace through a WorkspaceStore
 * (workspace-store.ts): the user's Docker volume (volume-store.ts) or a fleet's Cloud Storage
 * bucket (gcs-store.ts); it knows only the interface.
 *
 * Every call to the container platform and the store has a deadline (deadline.ts, from the
 * timeout budget).
 */

/** How one request in a sandbox ended, before classification. */
export type Ending = 'result' | 'stream-closed' | 'timeout' | 'output_limit' | 'protocol_error' | 'aborted';

export interface Exchange {
  ending: Ending;
  result: ResultEvent | null;
  protocolError: string | null;
}

export interface ExchangeOptions {
  timeoutMs: number;
  /** Aborted when the client goes away: the exchange ends as `aborted`. */
  signal: AbortSignal;
  /** Called for each text delta as the agent produces it. */
  onText?: ((delta: string) => void) | undefined;
  /**
   * Called for each model request of code in the sandbox; `reply` writes the answer's lines to
   * the agent while the exchange lasts. Without it, model requests are answered 503.
   */
  onModelRequest?:
    ((request: ModelRequestEvent, reply: (line: ModelResponseLine) => void) => void) | undefined;
}

export interface ExecOptions {
  stdin?: Buffer;
  maxOutBytes: number;
  signal: AbortSignal;
}
export interface ExecResult {
  exitCode: number;
  stdout: Buffer;
  truncated: boolean;
}

/** One live sandbox of one user. */
export interface SandboxHandle {
  /** The container id (what logs and the reaper know it by). */
  readonly id: string;
  readonly userId: string;
  /** False once the sandbox must not serve another request. */
  isHealthy(): boolean;
  /** Why it is unhealthy, or null. */
  unhealthyReason(): string | null;
  /** The sandbox must not be reused (e.g. it hit its memory limit); the first reason is kept. */
  markUnhealthy(reason: string): void;
  /** Sends one request line and reads events until the result, a limit, the timeout or an abort. */
  exchange(request: AgentRequest, opts: ExchangeOptions): Promise<Exchange>;
  /**
   * Saves /workspace into its workspace store if it changed; returns the
   * bytes saved (0: none or failed), or `conflict` when the store holds a newer snapshot saved
   * by another runner (this one is not written). Bounded in time and ended by `signal`; a save
   * that fails or conflicts leaves the sandbox unhealthy.
   */
  save(runId: string, signal: AbortSignal): Promise<number | 'conflict'>;
  /**
   * Runs a command inside the sandbox as the sandbox user (in /workspace, the sandbox's own
   * environment), with `stdin` on its input; returns its exit code and at most `maxOutBytes` of
   * its stdout (`truncated` when it wrote more). Bounded by `signal`.
   */
  exec(argv: string[], opts: ExecOptions): Promise<ExecResult>;
  /** The exit code once the agent process has ended on its own (null: unknown). */
  waitExit(): Promise<number | null>;
  /** Whether the platform recorded an OOM kill of the sandbox (known once it has exited). */
  oomKilled(): Promise<boolean>;
  /** OOM kills seen so far while the sandbox runs (a kill of a child does not stop it). */
  oomEvents(): number;
  /** The end of the agent's stderr (for logs). */
  stderrTail(): string;
  /**
   * Stops every process of the idle sandbox (the cgroup freezer: `docker pause`) until thaw(), so
   * what its user left running uses no CPU between runs. Bounded in time; rejects on failure.
   */
  freeze(): Promise<void>;
  /** Lets a frozen sandbox run again (before its next request). Bounded; rejects on failure. */
  thaw(): Promise<void>;
  /** Removes the sandbox (frozen or not) and forgets everything about it. Safe to call twice. */
  destroy(): Promise<void>;
}

/** Whether runs can be served, and if not, why (a sentence for operators). */
export type Readiness =
  { ready: true; agentImage: string; runtime: string } | { ready: false; reason: string };

/** A sandbox container as listed for the reaper. */
export interface ListedSandbox {
  id: string;
  createdAtMs: number;
  /** The run that created it (its label), so the reaper can spare one still being created. */
  runId: string | null;
}

export interface SandboxBackend {
  /** Creates, attaches and starts a sandbox for the user; it is removed again if a step fails. */
  create(opts: { runId: string; userId: string }): Promise<SandboxHandle>;
  /** Readiness of the platform, the agent image and the sandbox runtime. */
  ready(): Promise<Readiness>;
  /** This runner's sandboxes, running or not. */
  listSandboxes(): Promise<ListedSandbox[]>;
  /** Removes a sandbox by id; false when it was already gone. */
  removeSandbox(id: string): Promise<boolean>;
  /** Deletes the user's persistent workspace; false when there was none. */
  removeWorkspace(userId: string): Promise<boolean>;
  /** Starts background work (e.g. watching OOM events); resolves after its first attempt. */
  start(): Promise<void>;
  /** Stops background work. */
  stop(): void;
}
