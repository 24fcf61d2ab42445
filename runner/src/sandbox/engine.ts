import {
  AGENT_PROTOCOL_VERSION,
  NO_MODEL_USAGE,
  REPLY_MAX_CHARS,
  TIMEOUT_MARGINS,
  settleBy,
  type AgentComponent,
  type AgentRequest,
  type CreatedAgent,
  type HistoryEntry,
  type ModelUsage,
  type RunAgent,
  type RunStatus,
} from '@agent-platform/contract';
import { ClientGoneError, DeadlineError, WorkspaceBusyError } from '../errors.ts';
import { newModelRun, type ModelGateway } from '../models/model-gateway.ts';
import type { Logger } from '../logs.ts';
import type { Readiness, SandboxBackend, SandboxHandle } from './backend.ts';
import { classify } from './classify.ts';
import { SandboxPool } from './sandbox-pool.ts';

/** The design of the engine is described at the top of backend.ts. */

export interface EngineOptions {
  /** How long an idle sandbox stays warm; 0 disables warm reuse. */
  idleTtlMs: number;
  /** Warm (idle) sandboxes kept at most, all users. */
  maxWarm: number;
  /** How long one sandbox may live, however active; then it is not kept warm again. */
  maxLifetimeMs: number;
  /** Sandboxes younger than this are never reaped (their create call may be in flight). */
  reaperMinAgeMs: number;
  /** An idle sandbox is frozen after this long (0: at once). */
  freezeAfterMs: number;
  /**
   * While the host's available memory is below this, idle sandboxes are removed, least recently
   * used first, so the running ones can always reach their memory limit.
   */
  memoryReserveBytes: number;
  /** The host's available memory now (MemAvailable). */
  availableMemory: () => number;
  /**
   * A run answers by its timeoutMs plus this, whatever the platform does (the budget's
   * sandboxGraceMs; tests shorten it).
   */
  graceMs?: number;
  /** Forwards model requests of code in sandboxes (null: answered 503). */
  models?: ModelGateway | null;
  /** Named in the texts of output_limit and oom results. */
  outputLimitBytes: number;
  memoryBytes: number;
}

/** Added to the reply of a run whose workspace save lost to a newer one (WORKSPACE_STORE=gcs). */
export const WORKSPACE_CONFLICT_NOTE =
  '\n\n[workspace not saved: another runner saved a newer version of this workspace meanwhile]';

/** How often the host's available memory is checked (also after every run). */
const MEMORY_CHECK_MS = 1_000;
/** Memory an idle sandbox is assumed to free when removed, to size one round of evictions. */
export const IDLE_SANDBOX_ESTIMATE_BYTES = 64 * 1024 * 1024;

export interface SandboxRunInput {
  runId: string;
  userId: string;
  conversationId: string;
  message: string;
  history: HistoryEntry[];
  timeoutMs: number;
  /** The run's model (from the allowlist; null: MODEL_DEFAULT) and token budget (default: the runner's). */
  model?: string | null;
  tokenBudget?: number | undefined;
  /** The user's agent the run speaks as (null: the default agent). */
  agent?: RunAgent | null;
  /** Aborted when the client goes away: the run is killed and its sandbox removed. */
  signal: AbortSignal;
  /** Called for each text delta as the agent produces it. */
  onText?: ((delta: string) => void) | undefined;
}

export interface SandboxOutcome {
  status: RunStatus;
  text: string;
  component: AgentComponent | null;
  agent: CreatedAgent | null;
  exitCode: number | null;
  containerId: string;
  warm: boolean;
  timings: { createMs: number; agentMs: number; saveMs: number };
  usage: ModelUsage;
}

export type ReapReason = 'startup' | 'periodic' | 'shutdown';

const now = () => performance.now();
/** Exit code reported when the host killed the sandbox (SIGKILL). */
const KILLED = 137;
/**
 * How long to wait for the exit code of an agent whose stream closed on its own. The stream can
 * close a moment before the platform records the exit; a sandbox that never reports one (a hung
 * engine) must not hold the run, so after this the exit code is unknown (null).
 */
export const LATE_EXIT_WAIT_MS = 5_000;
/** How long shutdown waits for runs in flight: create, kill and removal each have this bound. */
const DRAIN_WAIT_MS = TIMEOUT_MARGINS.sandboxGraceMs;

/**
 * Owns every sandbox of this runner: acquire (warm or new) -> exchange -> save -> release (warm)
 * or retire; prewarm, workspace deletion, readiness, reaping and drain. Callers serialize per
 * user (RunGate), so a user has at most one sandbox.
 */
export class SandboxEngine {
  readonly #backend: SandboxBackend;
  readonly #options: EngineOptions;
  readonly #log: Logger;
  readonly #pool: SandboxPool;
  /** OOM events each sandbox had seen when its last run ended (one that grows meanwhile is replaced). */
  readonly #oomAtRest = new WeakMap<SandboxHandle, number>();
  #reaperTimer: NodeJS.Timeout | null = null;
  #memoryTimer: NodeJS.Timeout | null = null;
  /** The round of memory-pressure evictions in flight. */
  #relieving: Promise<void> | null = null;
  /** Run ids whose sandbox is being created (not yet in the pool). */
  readonly #creating = new Set<string>();
  /** Runs and prewarms in progress (settled promises), for drain(). */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(backend: SandboxBackend, options: EngineOptions, log: Logger) {
    this.#backend = backend;
    this.#options = options;
    this.#log = log;
    this.#pool = new SandboxPool(
      {
        idleTtlMs: options.idleTtlMs,
        maxWarm: options.maxWarm,
        maxLifetimeMs: options.maxLifetimeMs,
        freezeAfterMs: options.freezeAfterMs,
      },
      log,
    );
  }

  /** Set by a graceful shutdown: no new run or prewarm is taken. */
  #draining = false;

  /** Whether runs can be served now; the one readiness check of /readyz and of every run. */
  ready(): Promise<Readiness> {
    if (this.#draining) return Promise.resolve({ ready: false, reason: 'the runner is shutting down' });
    return this.#backend.ready();
  }

  /**
   * A graceful shutdown (SIGTERM: scale-in, preemption, a redeploy): from now on readiness is
   * false, so /readyz answers 503 and new runs get 503 `not_ready` (a balancer sends them
   * elsewhere), while the runs in flight go on. Resolves when they have finished or `deadlineMs`
   * has passed.
   */
  async startDraining(deadlineMs: number): Promise<void> {
    this.#draining = true;
    await this.#inFlightSettled(deadlineMs);
  }

  /** Resolves when the runs and prewarms in flight now have settled, or after `ms`. */
  async #inFlightSettled(ms: number): Promise<void> {
    await settleBy(Promise.all([...this.#inFlight]), AbortSignal.timeout(ms));
  }

  /** Sandboxes kept warm now. */
  /** The model gateway (null: none). */
  get models(): ModelGateway | null {
    return this.#options.models ?? null;
  }

  get warmCount(): number {
    return this.#pool.idleCount;
  }

  /** Live sandboxes by state (for the metrics). */
  sandboxCounts(): { busy: number; idle: number; frozen: number } {
    return { busy: this.#pool.busyCount, idle: this.#pool.idleCount, frozen: this.#pool.frozenCount };
  }

  /**
   * If the host's available memory is below the reserve, removes idle sandboxes (least recently
   * used first, about as many as the shortfall needs at IDLE_SANDBOX_ESTIMATE_BYTES each); one
   * round at a time, the next check sees what it freed. Resolves when the round is done.
   */
  relieveMemory(): Promise<void> {
    if (this.#relieving) return this.#relieving;
    const available = this.#options.availableMemory();
    const shortfall = this.#options.memoryReserveBytes - available;
    if (shortfall <= 0 || this.#pool.idleCount === 0) return Promise.resolve();
    const count = Math.max(1, Math.ceil(shortfall / IDLE_SANDBOX_ESTIMATE_BYTES));
    this.#relieving = this.#pool
      .evict(count, 'host memory low')
      .then((evicted) => this.#log.memoryPressure(available, this.#options.memoryReserveBytes, evicted))
      .catch((err: unknown) => this.#log.unexpected('relieving memory pressure', err))
      .finally(() => (this.#relieving = null));
    return this.#relieving;
  }

  /** Whether the user has a sandbox (warm or serving a run). */
  hasSandbox(userId: string): boolean {
    return this.#pool.hasSandbox(userId);
  }

  async #create(userId: string, runId: string): Promise<SandboxHandle> {
    // Until the pool has it, the reaper knows the sandbox only by its run id: under gVisor a
    // start took over a second, and a periodic pass removed the sandbox of a run being created.
    this.#creating.add(runId);
    try {
      const s = await this.#backend.create({ runId, userId });
      this.#pool.adopt(s);
      return s;
    } finally {
      this.#creating.delete(runId);
    }
  }

  /** Makes sure the user has a warm sandbox (caller holds the user's turn). */
  prewarm(userId: string, runId: string): Promise<{ warm: boolean; created: boolean }> {
    return this.#track(this.#prewarm(userId, runId));
  }

  async #prewarm(userId: string, runId: string): Promise<{ warm: boolean; created: boolean }> {
    if (!this.#pool.enabled) return { warm: false, created: false };
    if (this.#pool.hasSandbox(userId)) return { warm: true, created: false };
    const s = await this.#create(userId, runId);
    this.#oomAtRest.set(s, s.oomEvents());
    await this.#pool.giveBack(s);
    return { warm: true, created: true };
  }

  /** Runs one request in the user's sandbox (caller holds the user's turn). */
  run(input: SandboxRunInput): Promise<SandboxOutcome> {
    return this.#track(this.#run(input));
  }

  /** Keeps an operation in #inFlight until it settles, so drain() can wait for it. */
  #track<T>(op: Promise<T>): Promise<T> {
    const settled = op.then(
      () => undefined,
      () => undefined,
    );
    this.#inFlight.add(settled);
    void settled.finally(() => this.#inFlight.delete(settled));
    return op;
  }

  /**
   * The user's warm sandbox (thawed), or a new one. A warm one that had an OOM kill reported
   * after its run is replaced.
   */
  async #acquire(
    userId: string,
    runId: string,
  ): Promise<{ s: SandboxHandle; warm: boolean; createMs: number }> {
    const t0 = now();
    let sandbox = await this.#pool.takeWarm(userId);
    if (sandbox && sandbox.oomEvents() > (this.#oomAtRest.get(sandbox) ?? 0)) {
      sandbox.markUnhealthy('out of memory after its run');
      await this.#pool.giveBack(sandbox);
      sandbox = null;
    }
    if (sandbox) return { s: sandbox, warm: true, createMs: 0 };
    const s = await this.#create(userId, runId);
    return { s, warm: false, createMs: now() - t0 };
  }

  /**
   * One run, bounded as a whole: it answers by its timeoutMs plus the sandbox grace however the
   * platform behaves (a stalled engine: 503), and at once when its client goes away (the user's
   * turn is free; what the run held is put back or removed in the background, and the reaper is
   * the last resort).
   */
  async #run(input: SandboxRunInput): Promise<SandboxOutcome> {
    const hardDeadline = AbortSignal.timeout(
      input.timeoutMs + (this.#options.graceMs ?? TIMEOUT_MARGINS.sandboxGraceMs),
    );
    const stop = AbortSignal.any([input.signal, hardDeadline]);
    const ended = () =>
      input.signal.aborted
        ? new ClientGoneError('client disconnected')
        : new DeadlineError('the container platform did not answer in time');

    const acquiring = this.#acquire(input.userId, input.runId);
    const got = await settleBy(acquiring, stop);
    if (!got.settled) {
      // Kept warm if it arrives healthy (nothing ran in it), else removed; off the answer's path.
      void this.#track(acquiring.then((a) => this.#pool.giveBack(a.s)).catch(() => undefined));
      throw ended();
    }
    const { s, warm, createMs } = got.value;
    try {
      const oomBefore = s.oomEvents();
      const models = this.#options.models ?? null;
      const modelRun = models ? newModelRun(models.settings, input.model ?? null, input.tokenBudget) : null;
      const request: AgentRequest = {
        protocol: AGENT_PROTOCOL_VERSION,
        runId: input.runId,
        userId: input.userId,
        conversationId: input.conversationId,
        message: input.message,
        history: input.history,
        model: models && modelRun ? models.modelFor(modelRun) : null,
        agent: input.agent ?? null,
      };
      const tAgent = now();
      // Made on the first model request: most runs make none, and the warm path stays as it was.
      let modelSignal: AbortSignal | null = null;
      const modelDeadline = () =>
        (modelSignal ??= AbortSignal.any([input.signal, AbortSignal.timeout(input.timeoutMs)]));
      const x = await s.exchange(request, {
        timeoutMs: input.timeoutMs,
        signal: input.signal,
        onText: input.onText,
        ...(models && modelRun
          ? { onModelRequest: (e, reply) => void models.serve(e, reply, modelRun, modelDeadline()) }
          : {}),
      });
      const agentMs = now() - tAgent;
      if (x.ending === 'aborted') throw new ClientGoneError('client disconnected');

      // Only a run that ran code can change the workspace or hit the memory limit; the agent
      // says so (a lie only costs its own user). Saving before answering means an answered run is
      // persisted, and gives the platform's `oom` event time to arrive.
      let saveMs = 0;
      let saveLost = false;
      if (x.ending === 'result' && x.result?.workspaceChanged !== false) {
        const tSave = now();
        const bytes = await s.save(input.runId, stop);
        saveMs = now() - tSave;
        if (input.signal.aborted) throw new ClientGoneError('client disconnected');
        if (bytes === 'conflict') saveLost = true;
        else if (bytes > 0) this.#log.workspaceSaved(input.runId, s.id, bytes, Math.round(saveMs));
      }
      let exitCode: number | null = x.ending === 'result' ? 0 : KILLED;
      let oom = s.oomEvents() > oomBefore;
      if (x.ending === 'stream-closed') {
        const end = await this.#exited(s);
        exitCode = end.exitCode;
        oom ||= end.oomKilled;
      }
      if (oom) s.markUnhealthy('out of memory'); // removed now; the next run gets a fresh sandbox
      this.#oomAtRest.set(s, s.oomEvents());
      if (x.protocolError) this.#log.agentOutputInvalid(input.runId, s.id, x.protocolError);
      const stderrTail = s.stderrTail();
      if (stderrTail) this.#log.agentStderr(input.runId, s.id, stderrTail);
      // Kept warm (instant) or, if unhealthy or warm reuse is off, removed before answering, unless
      // the platform is too slow for the run's deadline (then the removal goes on without it).
      const release = this.#pool.giveBack(s);
      if (!(await settleBy(release, stop)).settled) void this.#track(release);
      void this.relieveMemory();
      const classified = classify(this.#options, input.timeoutMs, x, oom, exitCode);
      if (saveLost) {
        classified.text = (classified.text + WORKSPACE_CONFLICT_NOTE).slice(0, REPLY_MAX_CHARS);
      }
      return {
        ...classified,
        containerId: s.id,
        warm,
        timings: { createMs, agentMs, saveMs },
        usage: modelRun ? { ...modelRun.usage } : { ...NO_MODEL_USAGE },
      };
    } catch (err) {
      const gone = err instanceof ClientGoneError || input.signal.aborted;
      s.markUnhealthy(gone ? 'client gone' : 'run failed in the runner');
      const removal = this.#pool.giveBack(s);
      if (gone || !(await settleBy(removal, stop)).settled) void this.#track(removal);
      throw gone ? new ClientGoneError('client disconnected') : err;
    }
  }

  /** The agent process ended on its own: the sandbox has exited or is about to. */
  async #exited(s: SandboxHandle): Promise<{ exitCode: number | null; oomKilled: boolean }> {
    const exit = await settleBy(s.waitExit(), AbortSignal.timeout(LATE_EXIT_WAIT_MS));
    return { exitCode: exit.settled ? exit.value : null, oomKilled: await s.oomKilled() };
  }

  /**
   * Runs `fn` on the user's sandbox (warm, or created with the workspace restored), then saves
   * the workspace if `fn` says it changed it, and keeps the sandbox warm (caller holds the
   * user's turn). Bounded like a run: `timeoutMs` plus the grace, and the client's signal.
   */
  withSandbox<T>(
    userId: string,
    runId: string,
    timeoutMs: number,
    signal: AbortSignal,
    fn: (s: SandboxHandle, signal: AbortSignal) => Promise<{ value: T; changed: boolean }>,
  ): Promise<T> {
    return this.#track(this.#withSandbox(userId, runId, timeoutMs, signal, fn));
  }

  async #withSandbox<T>(
    userId: string,
    runId: string,
    timeoutMs: number,
    signal: AbortSignal,
    fn: (s: SandboxHandle, signal: AbortSignal) => Promise<{ value: T; changed: boolean }>,
  ): Promise<T> {
    const stop = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
    const acquiring = this.#acquire(userId, runId);
    const got = await settleBy(acquiring, stop);
    if (!got.settled) {
      void this.#track(acquiring.then((a) => this.#pool.giveBack(a.s)).catch(() => undefined));
      throw signal.aborted
        ? new ClientGoneError('client disconnected')
        : new DeadlineError('the container platform did not answer in time');
    }
    const { s } = got.value;
    try {
      const { value, changed } = await fn(s, stop);
      if (changed) {
        const saved = await s.save(runId, stop);
        // A fleet's rebalance: another runner saved this workspace meanwhile (503, retry).
        if (saved === 'conflict') throw new WorkspaceBusyError();
      }
      await this.#pool.giveBack(s);
      return value;
    } catch (err) {
      if (stop.aborted || err instanceof DeadlineError) s.markUnhealthy('a file operation did not finish');
      await this.#pool.giveBack(s).catch(() => undefined);
      throw err;
    }
  }

  /** Removes the user's warm sandbox and workspace (caller holds the user's turn). */
  async deleteWorkspace(userId: string): Promise<boolean> {
    await this.#pool.discard(userId, 'workspace deleted');
    const existed = await this.#backend.removeWorkspace(userId);
    this.#log.workspaceDeleted(userId);
    return existed;
  }

  /**
   * Removes this runner's sandboxes that no run owns: all of them at start-up and shutdown (a
   * previous process died mid-run), periodically those not in the pool and older than the
   * minimum age. Returns the ids removed.
   */
  async reap(reason: ReapReason): Promise<string[]> {
    const list = await this.#backend.listSandboxes();
    const active = this.#pool.containerIds();
    const nowMs = Date.now();
    const victims = list.filter(
      (c) =>
        reason !== 'periodic' ||
        (!active.has(c.id) &&
          !(c.runId !== null && this.#creating.has(c.runId)) &&
          nowMs - c.createdAtMs >= this.#options.reaperMinAgeMs),
    );
    const removed: string[] = [];
    await Promise.all(
      victims.map(async (c) => {
        try {
          if (await this.#backend.removeSandbox(c.id)) removed.push(c.id);
        } catch (err) {
          this.#log.containerRemoveFailed(c.id, err);
        }
      }),
    );
    this.#log.reaped(removed, reason);
    return removed;
  }

  /**
   * Starts background work: the platform's watchers and the periodic reaper. Resolves once the
   * watchers made their first attempt (readiness needs them).
   */
  start(reaperIntervalMs: number): Promise<void> {
    const started = this.#backend.start();
    this.#reaperTimer = setInterval(() => {
      this.reap('periodic').catch((err: unknown) => this.#log.reaperFailed(err));
    }, reaperIntervalMs);
    this.#reaperTimer.unref();
    this.#memoryTimer = setInterval(() => void this.relieveMemory(), MEMORY_CHECK_MS);
    this.#memoryTimer.unref();
    return started;
  }

  /** Stops background work (runs in flight go on). */
  stop(): void {
    if (this.#reaperTimer) clearInterval(this.#reaperTimer);
    this.#reaperTimer = null;
    if (this.#memoryTimer) clearInterval(this.#memoryTimer);
    this.#memoryTimer = null;
    this.#backend.stop();
  }

  /** Removes every warm sandbox (shutdown). */
  /**
   * Shutdown: waits (at most DRAIN_WAIT_MS) for the runs and prewarms in flight, whose clients
   * were cut off, to remove their sandboxes (one still being created would otherwise appear after
   * the final reap and outlive the runner: seen under gVisor, where start takes ~400 ms), then
   * removes every warm sandbox.
   */
  async drain(): Promise<void> {
    await this.#inFlightSettled(DRAIN_WAIT_MS);
    // Warm sandboxes are saved once more before removal (background work of their users may have
    // changed files since their last run), each within the save's own deadline.
    await this.#pool.drain((s) =>
      s
        .thaw()
        .then(() => s.save('shutdown', AbortSignal.timeout(TIMEOUT_MARGINS.sandboxGraceMs)))
        .then(() => undefined)
        .catch(() => undefined),
    );
  }
}
