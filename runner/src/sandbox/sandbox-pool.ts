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
}

/**
 * Warm sandboxes (part of the engine, not used outside it): after a run, a user's sandbox stays alive (its agent blocked on stdin, no CPU)
 * for `idleTtlMs`, so that the next run of the same user skips container creation. Each sandbox
 * belongs to one user and is only ever handed to that user. Callers serialize per user (RunGate),
 * so a user has at most one sandbox, idle or busy.
 */
export class SandboxPool {
  readonly #limits: PoolLimits;
  readonly #log: Logger;
  readonly #idle = new Map<string, Sandbox>(); // insertion order = least recently used first
  readonly #busy = new Map<string, Sandbox>();
  readonly #timers = new Map<Sandbox, NodeJS.Timeout>();
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

  /** The user's warm sandbox if it is healthy, else null (a broken one is removed). */
  async takeWarm(userId: string): Promise<Sandbox | null> {
    const s = this.#idle.get(userId);
    if (!s) return null;
    this.#idle.delete(userId);
    this.#clearTimer(s);
    if (!s.isHealthy()) {
      await this.#retire(s, 'unhealthy');
      return null;
    }
    this.#busy.set(userId, s);
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
    this.#timers.set(s, setTimeout(() => void this.#expire(s), this.#limits.idleTtlMs).unref());
    // Evict the least recently used beyond the cap, without making this run wait for it.
    while (this.#idle.size > this.#limits.maxWarm) {
      const [oldestUser, oldest] = this.#idle.entries().next().value as [string, Sandbox];
      this.#idle.delete(oldestUser);
      this.#clearTimer(oldest);
      void this.#retire(oldest, 'evicted');
    }
  }

  async #expire(s: Sandbox): Promise<void> {
    if (this.#idle.get(s.userId) !== s) return;
    this.#idle.delete(s.userId);
    this.#timers.delete(s);
    await this.#retire(s, 'idle expiry');
  }

  /** Removes the user's idle sandbox (e.g. before deleting the workspace it mounts). */
  async discard(userId: string, reason: string): Promise<void> {
    const s = this.#idle.get(userId);
    if (!s) return;
    this.#idle.delete(userId);
    this.#clearTimer(s);
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

  /** Sandboxes serving a run now. */
  get busyCount(): number {
    return this.#busy.size;
  }

  /** Removes every idle sandbox (shutdown). */
  async drain(): Promise<void> {
    const all = [...this.#idle.values()];
    this.#idle.clear();
    for (const s of all) this.#clearTimer(s);
    await Promise.all(all.map((s) => this.#retire(s, 'shutdown')));
  }

  #clearTimer(s: Sandbox): void {
    const t = this.#timers.get(s);
    if (t) clearTimeout(t);
    this.#timers.delete(s);
  }

  async #retire(s: Sandbox, reason: string): Promise<void> {
    await s.destroy();
    this.#log.sandboxRetired(s.id, s.userId, reason);
  }
}
