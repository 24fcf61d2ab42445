import { ClientGoneError, OverloadedError, ShareFullError, type RunnerError } from '../errors.ts';

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
  /** Runs of one client address (all its accounts) running at once (default: maxConcurrent). */
  maxRunningPerAddress?: number;
  /** Runs of anonymous accounts running at once, all of them (default: maxConcurrent). */
  maxRunningAnonymous?: number;
}

/** Whom a run is for, as the gate shares slots out (the run request's `client`). */
export interface RunShare {
  /** A hash of the client's address (null: unknown, no address share applies). */
  addressKey: string | null;
  anonymous: boolean;
}
const NO_SHARE: RunShare = { addressKey: null, anonymous: false };

interface Waiter {
  resolve: () => void;
  /** A slot's waiter: whom its run is for. */
  share?: RunShare;
}

interface UserLane {
  busy: boolean;
  waiters: Waiter[];
}

export type Release = () => void;

/**
 * Admission control for runs: one run per user at a time (others wait in a short FIFO), a global
 * cap on running sandboxes, fair shares of it (one client address, whatever its accounts, and
 * anonymous accounts together, each hold at most their share of the slots: four accounts that
 * hold long runs from one address leave room for everyone else), and OverloadedError (HTTP 429)
 * once the waiting room is full or a request has waited `queueTimeoutMs` (the queue's share of
 * the timeout budget).
 */
export class RunGate {
  readonly #limits: GateLimits;
  readonly #perAddress: number;
  readonly #anonymous: number;
  readonly #lanes = new Map<string, UserLane>();
  /** In arrival order; every one is waiting for a reason (no slot free, or its share is used). */
  readonly #slotWaiters: Waiter[] = [];
  readonly #runningByAddress = new Map<string, number>();
  #runningAnonymous = 0;
  #running = 0;
  #waiting = 0;

  constructor(limits: GateLimits) {
    this.#limits = limits;
    this.#perAddress = limits.maxRunningPerAddress ?? limits.maxConcurrent;
    this.#anonymous = limits.maxRunningAnonymous ?? limits.maxConcurrent;
  }

  get running(): number {
    return this.#running;
  }
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * Waits for this user's turn and a slot within the share of `share`. Rejects with
   * OverloadedError or ClientGoneError.
   */
  async acquire(userId: string, signal?: AbortSignal, share: RunShare = NO_SHARE): Promise<Release> {
    if (signal?.aborted) throw new ClientGoneError('client disconnected');
    const lane = this.#lanes.get(userId) ?? { busy: false, waiters: [] };
    const mustWait = lane.busy || !this.#fits(share);
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
        // Freed slots are handed to the first waiters they fit at once (#dispatch), so every
        // waiter left waits for a reason, and a newcomer that fits overtakes nobody who could run.
        if (this.#fits(share)) this.#take(share);
        else await this.#wait(this.#slotWaiters, deadlineMs, signal, share);
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
      this.#give(share);
      this.#releaseLane(userId, lane);
    };
  }

  /** Whether a run for `share` may take a slot now. */
  #fits(share: RunShare): boolean {
    if (this.#running >= this.#limits.maxConcurrent) return false;
    if (share.addressKey !== null && (this.#runningByAddress.get(share.addressKey) ?? 0) >= this.#perAddress)
      return false;
    return !(share.anonymous && this.#runningAnonymous >= this.#anonymous);
  }

  #take(share: RunShare): void {
    this.#running++;
    if (share.addressKey !== null)
      this.#runningByAddress.set(share.addressKey, (this.#runningByAddress.get(share.addressKey) ?? 0) + 1);
    if (share.anonymous) this.#runningAnonymous++;
  }

  #give(share: RunShare): void {
    this.#running--;
    if (share.addressKey !== null) {
      const n = (this.#runningByAddress.get(share.addressKey) ?? 1) - 1;
      if (n > 0) this.#runningByAddress.set(share.addressKey, n);
      else this.#runningByAddress.delete(share.addressKey);
    }
    if (share.anonymous) this.#runningAnonymous--;
    this.#dispatch();
  }

  /** Hands free slots to the waiters they fit, first come first served. */
  #dispatch(): void {
    for (let i = 0; i < this.#slotWaiters.length;) {
      const w = this.#slotWaiters[i]!;
      const share = w.share ?? NO_SHARE;
      if (!this.#fits(share)) {
        i++;
        continue;
      }
      this.#slotWaiters.splice(i, 1);
      this.#take(share);
      w.resolve();
    }
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

  /** The 429 of a run for `share` whose wait ended without a slot: which share held it, if one did. */
  #refusal(share: RunShare | undefined): RunnerError {
    const waited = `waited longer than ${this.#limits.queueTimeoutMs} ms`;
    const retry = this.#limits.retryAfterSeconds;
    if (!share || this.#running >= this.#limits.maxConcurrent) {
      return new OverloadedError(`${waited} for a turn`, retry);
    }
    if (
      share.addressKey !== null &&
      (this.#runningByAddress.get(share.addressKey) ?? 0) >= this.#perAddress
    ) {
      return new ShareFullError(
        'address',
        `${waited} while runs from its address held their share of this runner (${this.#perAddress} at once)`,
        retry,
      );
    }
    return new ShareFullError(
      'anonymous',
      `${waited} while anonymous accounts held their share of this runner (${this.#anonymous} at once)`,
      retry,
    );
  }

  /** Waits in `queue` until resolved, the client leaves, or the deadline passes. */
  #wait(queue: Waiter[], deadlineMs: number, signal?: AbortSignal, share?: RunShare): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const leave = (err: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        reject(err);
      };
      const waiter: Waiter = {
        ...(share ? { share } : {}),
        resolve: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => leave(new ClientGoneError('client disconnected while queued'));
      const timer = setTimeout(
        () => leave(this.#refusal(share)),
        Math.max(0, deadlineMs - performance.now()),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
    });
  }
}
