import { ClientGoneError, OverloadedError } from '../errors.ts';

export interface GateLimits {
  /** Runs executing at once, all users. */
  maxConcurrent: number;
  /** Requests waiting (for their user's turn or for a slot), all users. */
  maxQueued: number;
  /** Requests of one user waiting behind that user's current run. */
  maxQueuedPerUser: number;
  /** Seconds suggested in Retry-After when rejecting. */
  retryAfterSeconds: number;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface UserLane {
  busy: boolean;
  waiters: Waiter[];
}

export type Release = () => void;

/**
 * Admission control for runs: one run per user at a time (others wait in a short FIFO), a global
 * cap on running sandboxes, and OverloadedError (HTTP 429) once the waiting room is full.
 */
export class RunGate {
  readonly #limits: GateLimits;
  readonly #lanes = new Map<string, UserLane>();
  readonly #slotWaiters: Waiter[] = [];
  #running = 0;
  #waiting = 0;

  constructor(limits: GateLimits) {
    this.#limits = limits;
  }

  get running(): number {
    return this.#running;
  }
  get waiting(): number {
    return this.#waiting;
  }

  /** Waits for this user's turn and a global slot. Rejects with OverloadedError or ClientGoneError. */
  async acquire(userId: string, signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) throw new ClientGoneError('client disconnected');
    const lane = this.#lanes.get(userId) ?? { busy: false, waiters: [] };
    const mustWait = lane.busy || this.#running >= this.#limits.maxConcurrent;
    if (mustWait) {
      if (lane.busy && lane.waiters.length >= this.#limits.maxQueuedPerUser) {
        throw new OverloadedError(
          'this user already has the maximum number of runs waiting',
          this.#limits.retryAfterSeconds,
        );
      }
      if (this.#waiting >= this.#limits.maxQueued) {
        throw new OverloadedError('the runner is at capacity', this.#limits.retryAfterSeconds);
      }
    }
    this.#lanes.set(userId, lane);
    this.#waiting++;
    try {
      if (lane.busy) await this.#wait(lane.waiters, signal);
      lane.busy = true;
      try {
        // A freed slot is handed over directly (see release), so nobody can overtake a waiter.
        if (this.#running >= this.#limits.maxConcurrent) await this.#wait(this.#slotWaiters, signal);
        else this.#running++;
      } catch (err) {
        this.#releaseLane(userId, lane);
        throw err;
      }
    } finally {
      this.#waiting--;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#slotWaiters.shift();
      if (next) next.resolve();
      else this.#running--;
      this.#releaseLane(userId, lane);
    };
  }

  #releaseLane(userId: string, lane: UserLane): void {
    const next = lane.waiters.shift();
    if (next) {
      next.resolve(); // the lane stays busy: ownership passes to the next waiter
    } else {
      lane.busy = false;
      this.#lanes.delete(userId);
    }
  }

  #wait(queue: Waiter[], signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = () => {
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        reject(new ClientGoneError('client disconnected while queued'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
    });
  }
}
