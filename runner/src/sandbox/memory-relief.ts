import type { Logger } from '../logs.ts';
import type { SandboxPool } from './sandbox-pool.ts';

/** Memory an idle sandbox is assumed to free when removed, to size one round of evictions. */
export const IDLE_SANDBOX_ESTIMATE_BYTES = 64 * 1024 * 1024;
/** How often the host's available memory is checked (also after every run). */
const MEMORY_CHECK_MS = 1_000;

/**
 * How many idle sandboxes to remove now: none while the host's available memory is at or above
 * the reserve (or none is idle), else about as many as the shortfall needs at
 * IDLE_SANDBOX_ESTIMATE_BYTES each, at least one.
 */
export function evictionsFor(availableBytes: number, reserveBytes: number, idleCount: number): number {
  const shortfall = reserveBytes - availableBytes;
  if (shortfall <= 0 || idleCount === 0) return 0;
  return Math.max(1, Math.ceil(shortfall / IDLE_SANDBOX_ESTIMATE_BYTES));
}

export interface MemoryReserve {
  /** Below this much available memory on the host, idle sandboxes are removed. */
  memoryReserveBytes: number;
  /** The host's available memory now (MemAvailable). */
  availableMemory: () => number;
}

/**
 * Keeps the host's available memory above the reserve by removing idle sandboxes, least
 * recently used first, so the running ones can always reach their memory limit.
 */
export class MemoryRelief {
  readonly #pool: SandboxPool;
  readonly #reserve: MemoryReserve;
  readonly #log: Logger;
  /** The round of evictions in flight. */
  #relieving: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(pool: SandboxPool, reserve: MemoryReserve, log: Logger) {
    this.#pool = pool;
    this.#reserve = reserve;
    this.#log = log;
  }

  /** One round at a time; the next check sees what it freed. Resolves when the round is done. */
  relieve(): Promise<void> {
    if (this.#relieving) return this.#relieving;
    const available = this.#reserve.availableMemory();
    const reserve = this.#reserve.memoryReserveBytes;
    const count = evictionsFor(available, reserve, this.#pool.idleCount);
    if (count === 0) return Promise.resolve();
    this.#relieving = this.#pool
      .evict(count, 'host memory low')
      .then((evicted) => this.#log.memoryPressure(available, reserve, evicted))
      .catch((err: unknown) => this.#log.unexpected('relieving memory pressure', err))
      .finally(() => (this.#relieving = null));
    return this.#relieving;
  }

  /** Checks every MEMORY_CHECK_MS until stop(). */
  start(): void {
    this.#timer = setInterval(() => void this.relieve(), MEMORY_CHECK_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
