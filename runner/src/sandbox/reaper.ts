import type { Logger } from '../logs.ts';
import type { ListedSandbox, SandboxBackend } from './backend.ts';

export type ReapReason = 'startup' | 'periodic' | 'shutdown';

/**
 * Which listed sandboxes a reap removes: all of them at start-up and shutdown (a previous process
 * died mid-run), periodically those no run owns (`spares` says which one does) and older than
 * the minimum age.
 */
export function reapVictims(
  list: readonly ListedSandbox[],
  reason: ReapReason,
  nowMs: number,
  minAgeMs: number,
  spares: (c: ListedSandbox) => boolean,
): ListedSandbox[] {
  if (reason !== 'periodic') return [...list];
  return list.filter((c) => !spares(c) && nowMs - c.createdAtMs >= minAgeMs);
}

/** Removes this runner's sandboxes that no run owns (the effects of reapVictims). */
export class Reaper {
  readonly #backend: SandboxBackend;
  readonly #log: Logger;
  readonly #minAgeMs: number;
  readonly #spares: (c: ListedSandbox) => boolean;
  #timer: NodeJS.Timeout | null = null;

  constructor(backend: SandboxBackend, minAgeMs: number, spares: (c: ListedSandbox) => boolean, log: Logger) {
    this.#backend = backend;
    this.#minAgeMs = minAgeMs;
    this.#spares = spares;
    this.#log = log;
  }

  /** One pass; returns the ids removed. */
  async reap(reason: ReapReason): Promise<string[]> {
    const list = await this.#backend.listSandboxes();
    const victims = reapVictims(list, reason, Date.now(), this.#minAgeMs, this.#spares);
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

  /** A periodic pass every `intervalMs` until stop(). */
  start(intervalMs: number): void {
    this.#timer = setInterval(() => {
      this.reap('periodic').catch((err: unknown) => this.#log.reaperFailed(err));
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
