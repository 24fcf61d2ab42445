import type { Logger } from '../logs.ts';
import type { SandboxHandle as Sandbox } from './backend.ts';

export interface PoolLimits {
  /** How long an idle sandbox stays warm; 0 disables warm reuse. */
  idleTtlMs: number;
  /** Warm (idle) sandboxes kept at most, all users; the least recently used is evicted. */
  maxWarm: number;
  /**
   * How long one sandbox may live, however active its user: after a run past this age it is
   * removed instead of kept warm, so no message rhythm keeps a sandbox (and what its user left
   * running in it) alive for ever.
   */
  maxLifetimeMs: number;
  /**
   * An idle sandbox is frozen (every process stopped by the cgroup freezer) after this long, so
   * background work its user left running uses no CPU between runs; thawed when its user's next
   * run takes it. 0 freezes at once.
   */
  freezeAfterMs: number;
}

/**
 * Where a sandbox is in its life. `busy`: held by one operation (a run, a files operation, a
 * prewarm, the shutdown's last save). `idle`, `freezing` and `frozen` are warm (resting): kept
 * for their user's next operation. `retiring`: being removed. A sandbox being created is not in
 * the pool yet (its run id is, for the reaper).
 */
export type SandboxState = 'busy' | 'idle' | 'freezing' | 'frozen' | 'retiring';

/** The transitions there are; any other is a bug and throws. */
const TRANSITIONS: Readonly<Record<SandboxState, readonly SandboxState[]>> = {
  busy: ['idle', 'retiring'],
  idle: ['freezing', 'busy', 'retiring'],
  freezing: ['frozen', 'busy', 'retiring'],
  frozen: ['busy', 'retiring'],
  retiring: [],
};

const RESTING: ReadonlySet<SandboxState> = new Set(['idle', 'freezing', 'frozen']);

/** What the pool keeps about one sandbox. */
interface Entry {
  readonly sandbox: Sandbox;
  state: SandboxState;
  readonly bornAtMs: number;
  /**
   * OOM events the sandbox had seen when it last came to rest (or was created): one that grows
   * by its next take had a process OOM-killed between runs, and is replaced.
   */
  oomAtRest: number;
  /** While resting: its idle expiry. */
  expiry: NodeJS.Timeout | null;
  /** While idle: when it is frozen. */
  freezeTimer: NodeJS.Timeout | null;
  /** The freeze call, from `freezing` on: true once frozen, false if it failed. */
  freezing: Promise<boolean> | null;
  /** The removal, once retiring. */
  retired: Promise<void> | null;
}

/**
 * Every live sandbox of this runner and its state (the engine's, not used outside it). After an
 * operation a healthy sandbox rests (its agent blocked on stdin) for `idleTtlMs`, so the next run
 * of the same user skips container creation; after `freezeAfterMs` resting it is frozen, so
 * nothing in it runs until that next run. Each sandbox belongs to one user and is only ever
 * handed to that user. Callers serialize per user (RunGate), so a user has at most one busy
 * sandbox; a create abandoned by its client may still bring a second one, and then the newer
 * one stays warm.
 */
export class SandboxPool {
  readonly #limits: PoolLimits;
  readonly #log: Logger;
  readonly #entries = new Map<Sandbox, Entry>();
  /** The resting sandbox of each user; insertion order = least recently used first. */
  readonly #resting = new Map<string, Entry>();
  /** Run ids whose sandbox is being created (the reaper spares it). */
  readonly #creating = new Set<string>();

  constructor(limits: PoolLimits, log: Logger) {
    this.#limits = limits;
    this.#log = log;
  }

  /** Whether sandboxes are kept warm at all. */
  get enabled(): boolean {
    return this.#limits.idleTtlMs > 0 && this.#limits.maxWarm > 0;
  }

  /** The state of a sandbox (null: not in the pool, e.g. removed). */
  stateOf(s: Sandbox): SandboxState | null {
    return this.#entries.get(s)?.state ?? null;
  }

  /** Creates a sandbox with `make`, known by `runId` meanwhile; it enters the pool busy. */
  async create(runId: string, make: () => Promise<Sandbox>): Promise<Sandbox> {
    // Until the pool has it, the reaper knows the sandbox only by its run id: under gVisor a
    // start took over a second, and a periodic pass removed the sandbox of a run being created.
    this.#creating.add(runId);
    try {
      const s = await make();
      this.#entries.set(s, {
        sandbox: s,
        state: 'busy',
        bornAtMs: performance.now(),
        oomAtRest: s.oomEvents(),
        expiry: null,
        freezeTimer: null,
        freezing: null,
        retired: null,
      });
      return s;
    } finally {
      this.#creating.delete(runId);
    }
  }

  /**
   * resting -> busy: the user's warm sandbox, thawed, or null when there is none or it is not fit
   * for another run (broken, does not thaw, or had an OOM kill while resting: removed).
   */
  async take(userId: string): Promise<Sandbox | null> {
    const entry = this.#resting.get(userId);
    if (!entry) return null;
    const was = entry.state;
    // Busy from here: the reaper, expiry and eviction leave it alone while it thaws.
    this.#move(entry, 'busy');
    const s = entry.sandbox;
    if (!(await this.#thaw(entry, was))) s.markUnhealthy('did not thaw');
    if (s.oomEvents() > entry.oomAtRest) s.markUnhealthy('out of memory after its run');
    if (!s.isHealthy()) {
      await this.#retire(entry, s.unhealthyReason() ?? 'unhealthy');
      return null;
    }
    return s;
  }

  /**
   * busy -> idle when it is healthy, warm reuse is on and it is young enough; else busy ->
   * retiring (resolves once removed). An OOM kill while it was busy makes it unhealthy. Never
   * rejects.
   */
  async release(s: Sandbox): Promise<void> {
    const entry = this.#entries.get(s);
    if (entry?.state !== 'busy') return;
    if (s.oomEvents() > entry.oomAtRest) s.markUnhealthy('out of memory');
    const reason = !s.isHealthy()
      ? 'unhealthy'
      : !this.enabled
        ? 'warm reuse off'
        : performance.now() - entry.bornAtMs >= this.#limits.maxLifetimeMs
          ? 'lifetime reached'
          : null;
    if (reason) return this.#retire(entry, reason);
    const older = this.#resting.get(s.userId);
    if (older) void this.#retire(older, 'replaced by a newer sandbox of its user');
    entry.oomAtRest = s.oomEvents();
    this.#move(entry, 'idle');
    entry.expiry = setTimeout(() => void this.#retireResting(entry, 'idle expiry'), this.#limits.idleTtlMs);
    entry.expiry.unref();
    if (this.#limits.freezeAfterMs === 0) this.#freeze(entry);
    else entry.freezeTimer = setTimeout(() => this.#freeze(entry), this.#limits.freezeAfterMs).unref();
    // Evict the least recently used beyond the cap, without making this run wait for it.
    while (this.#resting.size > this.#limits.maxWarm) void this.#evictOldest('evicted');
  }

  /** idle -> freezing -> frozen; a freeze that fails retires it (its state is unknown). */
  #freeze(entry: Entry): void {
    entry.freezeTimer = null;
    if (entry.state !== 'idle') return;
    this.#move(entry, 'freezing');
    const s = entry.sandbox;
    entry.freezing = s.freeze().then(
      () => {
        if (entry.state === 'freezing') this.#move(entry, 'frozen');
        return true;
      },
      () => {
        s.markUnhealthy('did not freeze');
        if (entry.state === 'freezing') void this.#retire(entry, 'did not freeze');
        return false;
      },
    );
  }

  /**
   * Undoes what resting did to a sandbox that was `was`: waits for a freeze in flight, thaws a
   * frozen one. False when it did not thaw.
   */
  async #thaw(entry: Entry, was: SandboxState): Promise<boolean> {
    const frozen = was === 'frozen' || (was === 'freezing' && (await entry.freezing));
    if (!frozen) return true;
    try {
      await entry.sandbox.thaw();
      return true;
    } catch {
      return false;
    }
  }

  /** resting -> retiring for the least recently used; false when none rests. */
  #evictOldest(reason: string): Promise<boolean> {
    const first = this.#resting.values().next();
    if (first.done) return Promise.resolve(false);
    return this.#retire(first.value, reason).then(() => true);
  }

  /**
   * Removes up to `count` resting sandboxes, least recently used first (memory pressure on the
   * host); resolves with how many once they are gone.
   */
  async evict(count: number, reason: string): Promise<number> {
    const removals: Promise<boolean>[] = [];
    for (let i = 0; i < count && this.#resting.size > 0; i++) removals.push(this.#evictOldest(reason));
    return (await Promise.all(removals)).filter(Boolean).length;
  }

  /** Removes the user's resting sandbox (e.g. before deleting the workspace it mounts). */
  async discard(userId: string, reason: string): Promise<void> {
    const entry = this.#resting.get(userId);
    if (entry) await this.#retireResting(entry, reason);
  }

  #retireResting(entry: Entry, reason: string): Promise<void> {
    return RESTING.has(entry.state) ? this.#retire(entry, reason) : Promise.resolve();
  }

  /**
   * Shutdown: every resting sandbox is taken (thawed), handed to `before` (e.g. a last save) if it
   * thawed, then removed.
   */
  async drain(before: (s: Sandbox) => Promise<void>): Promise<void> {
    const all = [...this.#resting.values()];
    await Promise.all(
      all.map(async (entry) => {
        const was = entry.state;
        this.#move(entry, 'busy');
        if (await this.#thaw(entry, was)) await before(entry.sandbox).catch(() => undefined);
        await this.#retire(entry, 'shutdown');
      }),
    );
  }

  /** Whether the user has a sandbox, resting or busy. */
  hasSandbox(userId: string): boolean {
    if (this.#resting.has(userId)) return true;
    for (const e of this.#entries.values())
      if (e.state === 'busy' && e.sandbox.userId === userId) return true;
    return false;
  }

  /** Whether the reaper must leave a listed container alone: the pool has it or is creating it. */
  spares(c: { id: string; runId: string | null }): boolean {
    if (c.runId !== null && this.#creating.has(c.runId)) return true;
    for (const s of this.#entries.keys()) if (s.id === c.id) return true;
    return false;
  }

  /** Live sandboxes by state (retiring ones are not counted); `idle` counts every resting one. */
  counts(): { busy: number; idle: number; frozen: number } {
    const n = { busy: 0, idle: 0, frozen: 0 };
    for (const { state } of this.#entries.values()) {
      if (state === 'busy') n.busy++;
      if (RESTING.has(state)) n.idle++;
      if (state === 'freezing' || state === 'frozen') n.frozen++;
    }
    return n;
  }

  /** Sandboxes kept warm now (resting, frozen or not). */
  get idleCount(): number {
    return this.#resting.size;
  }

  /** Moves an entry to `to`, keeping the index of resting sandboxes and the timers in step. */
  #move(entry: Entry, to: SandboxState): void {
    if (!TRANSITIONS[entry.state].includes(to)) {
      throw new Error(`a sandbox cannot go from ${entry.state} to ${to}`);
    }
    const wasResting = RESTING.has(entry.state);
    entry.state = to;
    if (RESTING.has(to)) {
      // Insertion order is recency: a sandbox that comes to rest is the most recently used.
      if (!wasResting) this.#resting.set(entry.sandbox.userId, entry);
      return;
    }
    if (wasResting && this.#resting.get(entry.sandbox.userId) === entry) {
      this.#resting.delete(entry.sandbox.userId);
    }
    if (entry.expiry) clearTimeout(entry.expiry);
    if (entry.freezeTimer) clearTimeout(entry.freezeTimer);
    entry.expiry = null;
    entry.freezeTimer = null;
  }

  /** * -> retiring -> gone: removes the sandbox (once; a second call waits for the first). */
  #retire(entry: Entry, reason: string): Promise<void> {
    if (entry.retired) return entry.retired;
    this.#move(entry, 'retiring');
    const s = entry.sandbox;
    entry.retired = s
      .destroy()
      .catch((err: unknown) => this.#log.unexpected('removing a sandbox', err))
      .then(() => {
        this.#entries.delete(s);
        this.#log.sandboxRetired(s.id, s.userId, reason);
      });
    return entry.retired;
  }
}
