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

/** What the pool keeps about an idle sandbox. */
interface Idle {
  expiry: NodeJS.Timeout;
  freezeTimer: NodeJS.Timeout | null;
  /** The freeze call in flight or done: true once frozen, false if it failed. */
  freezing: Promise<boolean> | null;
}

/**
 * Warm sandboxes (part of the engine, not used outside it): after a run, a user's sandbox stays
 * alive (its agent blocked on stdin) for `idleTtlMs`, so that the next run of the same user skips
 * container creation; after `freezeAfterMs` idle it is frozen, so nothing in it runs until that
 * next run. Each sandbox belongs to one user and is only ever handed to that user. Callers
 * serialize per user (RunGate), so a user has at most one sandbox, idle or busy.
 */
export class SandboxPool {
  readonly #limits: PoolLimits;
  readonly #log: Logger;
  readonly #idle = new Map<string, Sandbox>(); // insertion order = least recently used first
  readonly #busy = new Map<string, Sandbox>();
  readonly #state = new Map<Sandbox, Idle>();
  /** When each sandbox was adopted (created). */
  readonly #bornAtMs = new WeakMap<Sandbox, number>();

  constructor(limits: PoolLimits, log: Logger) {
    this.#limits = limits;
    this.#log = log;
  }

  /** Whether sandboxes are kept warm at all. */
  get enabled(): boolean {
    return this.#limits.idleTtlMs > 0 && this.#limits.maxWarm > 0;
  }

  /**
   * The user's warm sandbox, thawed, if it is healthy, else null (a broken one, or one that does
   * not thaw, is removed).
   */
  async takeWarm(userId: string): Promise<Sandbox | null> {
    const s = this.#idle.get(userId);
    if (!s) return null;
    this.#idle.delete(userId);
    const freezing = this.#forget(s);
    // Busy from here: the reaper leaves it alone while it thaws.
    this.#busy.set(userId, s);
    if (freezing && (await freezing)) {
      try {
        await s.thaw();
      } catch {
        s.markUnhealthy('did not thaw');
      }
    }
    if (!s.isHealthy()) {
      this.#busy.delete(userId);
      await this.#retire(s, s.unhealthyReason() ?? 'unhealthy');
      return null;
    }
    return s;
  }

  /** Registers a freshly created sandbox as in use. */
  adopt(s: Sandbox): void {
    this.#busy.set(s.userId, s);
    this.#bornAtMs.set(s, performance.now());
  }

  hasSandbox(userId: string): boolean {
    return this.#idle.has(userId) || this.#busy.has(userId);
  }

  /** After a run: keep the sandbox warm if it is healthy and warm reuse is on, else remove it. */
  async giveBack(s: Sandbox): Promise<void> {
    if (this.#busy.get(s.userId) === s) this.#busy.delete(s.userId);
    if (!s.isHealthy() || !this.enabled) {
      await this.#retire(s, s.isHealthy() ? 'warm reuse off' : 'unhealthy');
      return;
    }
    const ageMs = performance.now() - (this.#bornAtMs.get(s) ?? performance.now());
    if (ageMs >= this.#limits.maxLifetimeMs) {
      await this.#retire(s, 'lifetime reached');
      return;
    }
    this.#idle.delete(s.userId);
    this.#idle.set(s.userId, s);
    const idle: Idle = {
      expiry: setTimeout(() => void this.#expire(s), this.#limits.idleTtlMs).unref(),
      freezeTimer: null,
      freezing: null,
    };
    this.#state.set(s, idle);
    if (this.#limits.freezeAfterMs === 0) this.#freeze(s, idle);
    else idle.freezeTimer = setTimeout(() => this.#freeze(s, idle), this.#limits.freezeAfterMs).unref();
    // Evict the least recently used beyond the cap, without making this run wait for it.
    while (this.#idle.size > this.#limits.maxWarm) void this.#evictOldest('evicted');
  }

  #freeze(s: Sandbox, idle: Idle): void {
    idle.freezeTimer = null;
    if (this.#state.get(s) !== idle) return;
    idle.freezing = s.freeze().then(
      () => true,
      () => {
        // Not frozen, state unknown: it is not kept.
        s.markUnhealthy('did not freeze');
        if (this.#idle.get(s.userId) === s) {
          this.#idle.delete(s.userId);
          this.#forget(s);
          void this.#retire(s, 'did not freeze');
        }
        return false;
      },
    );
  }

  /** Removes the least recently used idle sandbox; false when there is none. */
  #evictOldest(reason: string): Promise<boolean> {
    const first = this.#idle.entries().next();
    if (first.done) return Promise.resolve(false);
    const [user, oldest] = first.value;
    this.#idle.delete(user);
    this.#forget(oldest);
    return this.#retire(oldest, reason).then(() => true);
  }

  /**
   * Removes up to `count` idle sandboxes, least recently used first (memory pressure on the
   * host); resolves with how many once they are gone.
   */
  async evict(count: number, reason: string): Promise<number> {
    const removals: Promise<boolean>[] = [];
    for (let i = 0; i < count && this.#idle.size > 0; i++) removals.push(this.#evictOldest(reason));
    return (await Promise.all(removals)).filter(Boolean).length;
  }

  async #expire(s: Sandbox): Promise<void> {
    if (this.#idle.get(s.userId) !== s) return;
    this.#idle.delete(s.userId);
    this.#forget(s);
    await this.#retire(s, 'idle expiry');
  }

  /** Removes the user's idle sandbox (e.g. before deleting the workspace it mounts). */
  async discard(userId: string, reason: string): Promise<void> {
    const s = this.#idle.get(userId);
    if (!s) return;
    this.#idle.delete(userId);
    this.#forget(s);
    await this.#retire(s, reason);
  }

  /** Container ids the reaper must leave alone. */
  containerIds(): Set<string> {
    const ids = new Set<string>();
    for (const s of this.#idle.values()) ids.add(s.id);
    for (const s of this.#busy.values()) ids.add(s.id);
    return ids;
  }

  /** Sandboxes kept warm now (idle, not serving a run). */
  get idleCount(): number {
    return this.#idle.size;
  }

  /** Idle sandboxes frozen now (or being frozen). */
  get frozenCount(): number {
    let n = 0;
    for (const idle of this.#state.values()) if (idle.freezing) n++;
    return n;
  }

  /** Sandboxes serving a run now. */
  get busyCount(): number {
    return this.#busy.size;
  }

  /** Removes every idle sandbox (shutdown). */
  /** Removes every idle sandbox, after `before` (e.g. a last save) has settled for it. */
  async drain(before?: (s: Sandbox) => Promise<void>): Promise<void> {
    const all = [...this.#idle.values()];
    this.#idle.clear();
    const freezes = all.map((s) => this.#forget(s));
    await Promise.all(
      all.map(async (s, i) => {
        if (before) {
          await freezes[i]?.catch(() => undefined);
          await before(s);
        }
        await this.#retire(s, 'shutdown');
      }),
    );
  }

  /** Stops the idle timers of `s`; returns its freeze in flight or done, if any. */
  #forget(s: Sandbox): Promise<boolean> | null {
    const idle = this.#state.get(s);
    if (!idle) return null;
    clearTimeout(idle.expiry);
    if (idle.freezeTimer) clearTimeout(idle.freezeTimer);
    this.#state.delete(s);
    return idle.freezing;
  }

  async #retire(s: Sandbox, reason: string): Promise<void> {
    await s.destroy();
    this.#log.sandboxRetired(s.id, s.userId, reason);
  }
}
