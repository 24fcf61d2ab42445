import type Docker from 'dockerode';
import type { Logger } from '../logs.ts';
import { sandboxFilter } from './labels.ts';
import { statusCode } from './workspaces.ts';

/**
 * Removes this runner's sandboxes that no run owns: all of them at start-up (a previous process
 * died mid-run), and periodically those not in `active` and older than MIN_ORPHAN_AGE_S.
 */
export class Reaper {
  readonly #docker: Docker;
  readonly #runnerId: string;
  readonly #log: Logger;
  readonly #active: () => Set<string>;
  readonly #minAgeMs: number;
  #timer: NodeJS.Timeout | null = null;

  constructor(docker: Docker, runnerId: string, log: Logger, active: () => Set<string>, minAgeMs: number) {
    this.#minAgeMs = minAgeMs;
    this.#docker = docker;
    this.#runnerId = runnerId;
    this.#log = log;
    this.#active = active;
  }

  /** One pass; returns the ids removed. */
  async reap(reason: 'startup' | 'periodic' | 'shutdown'): Promise<string[]> {
    const list = await this.#docker.listContainers({ all: true, filters: sandboxFilter(this.#runnerId) });
    const active = this.#active();
    const nowS = Date.now() / 1000;
    const victims = list.filter(
      (c) => reason !== 'periodic' || (!active.has(c.Id) && (nowS - c.Created) * 1000 >= this.#minAgeMs),
    );
    const removed: string[] = [];
    await Promise.all(
      victims.map(async (c) => {
        try {
          await this.#docker.getContainer(c.Id).remove({ force: true, v: true });
          removed.push(c.Id);
        } catch (err) {
          if (statusCode(err) !== 404) this.#log.containerRemoveFailed(c.Id, err);
        }
      }),
    );
    this.#log.reaped(removed, reason);
    return removed;
  }

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
