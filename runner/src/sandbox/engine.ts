import { TIMEOUT_MARGINS, settleBy } from '@agent-platform/contract';
import { ClientGoneError, DeadlineError } from '../errors.ts';
import type { Logger } from '../logs.ts';
import type { Readiness, SandboxBackend, SandboxHandle } from './backend.ts';
import { InFlight } from './in-flight.ts';
import { MemoryRelief, type MemoryReserve } from './memory-relief.ts';
import { Reaper, type ReapReason } from './reaper.ts';
import type { LeaseRequest, SandboxLease } from './sandbox-lease.ts';
import { SandboxPool, type PoolLimits } from './sandbox-pool.ts';
import { runInSandbox, type SandboxOutcome, type SandboxRunInput } from './sandbox-run.ts';

/** The design of the engine is described at the top of backend.ts. */

export interface EngineOptions extends PoolLimits, MemoryReserve {
  /** Sandboxes younger than this are never reaped (their create call may be in flight). */
  reaperMinAgeMs: number;
  /**
   * A run answers by its timeoutMs plus this, whatever the platform does (the budget's
   * sandboxGraceMs; tests shorten it).
   */
  graceMs?: number;
  /** Named in the texts of output_limit and oom results. */
  outputLimitBytes: number;
  memoryBytes: number;
}

const now = () => performance.now();
/** How long shutdown waits for runs in flight: create, kill and removal each have this bound. */
const DRAIN_WAIT_MS = TIMEOUT_MARGINS.sandboxGraceMs;

/**
 * Owns every sandbox of this runner: leases (warm or new, given back warm or removed), runs,
 * prewarm, workspace deletion, readiness, reaping and drain. Callers serialize per user
 * (RunGate), so a user has at most one sandbox in use.
 */
export class SandboxEngine {
  readonly #backend: SandboxBackend;
  readonly #options: EngineOptions;
  readonly #log: Logger;
  readonly #pool: SandboxPool;
  readonly #memory: MemoryRelief;
  readonly #reaper: Reaper;
  /** Leases and give-backs in progress, for drain(). */
  readonly #inFlight = new InFlight();
  /** Set by a graceful shutdown: readiness is false from then on. */
  #draining = false;

  constructor(backend: SandboxBackend, options: EngineOptions, log: Logger) {
    this.#backend = backend;
    this.#options = options;
    this.#log = log;
    this.#pool = new SandboxPool(options, log);
    this.#memory = new MemoryRelief(this.#pool, options, log);
    this.#reaper = new Reaper(backend, options.reaperMinAgeMs, (c) => this.#pool.spares(c), log);
  }

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
    await this.#inFlight.settled(deadlineMs);
  }

  /** Sandboxes kept warm now. */
  get warmCount(): number {
    return this.#pool.idleCount;
  }

  /** Live sandboxes by state (for the metrics). */
  sandboxCounts(): { busy: number; idle: number; frozen: number } {
    return this.#pool.counts();
  }

  /**
   * If the host's available memory is below the reserve, removes idle sandboxes (least recently
   * used first, about as many as the shortfall needs). Resolves when the round is done.
   */
  relieveMemory(): Promise<void> {
    return this.#memory.relieve();
  }

  /** Whether the user has a sandbox (warm or in use). */
  hasSandbox(userId: string): boolean {
    return this.#pool.hasSandbox(userId);
  }

  /**
   * The user's sandbox for one operation (caller holds the user's turn): the warm one, thawed, or
   * a new one. Rejects with ClientGoneError when the client goes away first, DeadlineError when
   * the lease's timeout passes first; a sandbox that arrives after that is given back (kept warm
   * if healthy: nothing ran in it), off the caller's path.
   */
  async lease(req: LeaseRequest): Promise<SandboxLease> {
    const stop =
      req.timeoutMs === undefined
        ? req.signal
        : AbortSignal.any([req.signal, AbortSignal.timeout(req.timeoutMs)]);
    // Settles once the sandbox is back in the pool (or removed): drain() waits for it.
    const held = Promise.withResolvers<unknown>();
    this.#inFlight.track(held.promise);
    const acquiring = this.#acquire(req.userId, req.runId);
    let got;
    try {
      got = await settleBy(acquiring, stop);
    } catch (err) {
      held.resolve(undefined);
      throw err;
    }
    if (!got.settled) {
      held.resolve(acquiring.then((a) => this.#pool.release(a.sandbox)).catch(() => undefined));
      throw req.signal.aborted
        ? new ClientGoneError('client disconnected')
        : new DeadlineError('the container platform did not answer in time');
    }
    const { sandbox, warm, createMs } = got.value;
    let released: Promise<void> | null = null;
    return {
      sandbox,
      warm,
      createMs,
      signal: stop,
      release: async (unhealthy) => {
        if (!released) {
          if (unhealthy) sandbox.markUnhealthy(unhealthy);
          released = this.#pool.release(sandbox);
          held.resolve(released);
        }
        await settleBy(released, stop);
      },
    };
  }

  async #acquire(
    userId: string,
    runId: string,
  ): Promise<{ sandbox: SandboxHandle; warm: boolean; createMs: number }> {
    const t0 = now();
    const warm = await this.#pool.take(userId);
    if (warm) return { sandbox: warm, warm: true, createMs: 0 };
    const sandbox = await this.#pool.create(runId, () => this.#backend.create({ runId, userId }));
    return { sandbox, warm: false, createMs: now() - t0 };
  }

  /** Makes sure the user has a warm sandbox (caller holds the user's turn). */
  async prewarm(
    userId: string,
    runId: string,
    signal: AbortSignal,
  ): Promise<{ warm: boolean; created: boolean }> {
    if (!this.#pool.enabled) return { warm: false, created: false };
    if (this.#pool.hasSandbox(userId)) return { warm: true, created: false };
    const lease = await this.lease({ userId, runId, signal });
    await lease.release();
    return { warm: true, created: !lease.warm };
  }

  /**
   * Runs one request in the user's sandbox (caller holds the user's turn), bounded as a whole: it
   * answers by its timeoutMs plus the sandbox grace however the platform behaves (a stalled
   * engine: 503), and at once when its client goes away (the user's turn is free; what the run
   * held is put back or removed in the background, and the reaper is the last resort). The
   * sandbox is kept warm (instant) or, if unhealthy or warm reuse is off, removed before the
   * answer, unless the platform is too slow for the run's deadline.
   */
  async run(input: SandboxRunInput): Promise<SandboxOutcome> {
    const lease = await this.lease({
      userId: input.request.userId,
      runId: input.request.runId,
      signal: input.signal,
      timeoutMs: input.timeoutMs + (this.#options.graceMs ?? TIMEOUT_MARGINS.sandboxGraceMs),
    });
    try {
      const outcome = await runInSandbox(lease, input, this.#options, this.#log);
      await lease.release();
      void this.relieveMemory();
      return outcome;
    } catch (err) {
      const gone = err instanceof ClientGoneError || input.signal.aborted;
      await lease.release(gone ? 'client gone' : 'run failed in the runner');
      throw gone ? new ClientGoneError('client disconnected') : err;
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
  reap(reason: ReapReason): Promise<string[]> {
    return this.#reaper.reap(reason);
  }

  /**
   * Starts background work: the platform's watchers, the periodic reaper and the memory check.
   * Resolves once the watchers made their first attempt (readiness needs them).
   */
  start(reaperIntervalMs: number): Promise<void> {
    const started = this.#backend.start();
    this.#reaper.start(reaperIntervalMs);
    this.#memory.start();
    return started;
  }

  /** Stops background work (runs in flight go on). */
  stop(): void {
    this.#reaper.stop();
    this.#memory.stop();
    this.#backend.stop();
  }

  /**
   * Shutdown: waits (at most DRAIN_WAIT_MS) for the leases in flight, whose clients were cut off,
   * to give their sandboxes back (one still being created would otherwise appear after the final
   * reap and outlive the runner: seen under gVisor, where start takes ~400 ms), then removes
   * every warm sandbox. Each is saved once more first (background work of its user may have
   * changed files since its last run), within the save's own deadline.
   */
  async drain(): Promise<void> {
    await this.#inFlight.settled(DRAIN_WAIT_MS);
    await this.#pool.drain((s) =>
      s.save('shutdown', AbortSignal.timeout(TIMEOUT_MARGINS.sandboxGraceMs)).then(() => undefined),
    );
  }
}
