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
  /** Longest wait for the user's turn and a slot, all told; then OverloadedError. */
  queueTimeoutMs: number;
}

interface Waiter {
  resolve: () => void;
}

interface UserLane {
  busy: boolean;
  waiters: Waiter[];
}

export type Release = () => void;

/**
 * Admission control for runs: one run per user at a time (others wait in a short FIFO), a global
 * cap on running sandboxes, and OverloadedError (HTTP 429) once the waiting room is full or a
 * request has waited `queueTimeoutMs` (the queue's share of the timeout budget).
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
    const deadlineMs = performance.now() + this.#limits.queueTimeoutMs;
    try {
      if (lane.busy) await this.#wait(lane.waiters, deadlineMs, signal);
      lane.busy = true;
      try {
        // A freed slot is handed over directly (see release), so nobody can overtake a waiter.
        if (this.#running >= this.#limits.maxConcurrent)
          await this.#wait(this.#slotWaiters, deadlineMs, signal);
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

  /** Waits in `queue` until resolved, the client leaves, or the deadline passes. */
  #wait(queue: Waiter[], deadlineMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const leave = (err: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        reject(err);
      };
      const waiter: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => leave(new ClientGoneError('client disconnected while queued'));
      const timer = setTimeout(
        () =>
          leave(
            new OverloadedError(
              `waited longer than ${this.#limits.queueTimeoutMs} ms for a turn`,
              this.#limits.retryAfterSeconds,
            ),
          ),
        Math.max(0, deadlineMs - performance.now()),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
    });
  }
}
