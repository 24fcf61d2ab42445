import type Docker from 'dockerode';
import type { Logger } from '../logs.ts';
import { LABEL_RUNNER_ID } from './labels.ts';

/**
 * Counts Docker `oom` events of this runner's sandboxes. A warm sandbox keeps running when the
 * kernel OOM-kills one of its processes, and Docker only sets State.OOMKilled once a container
 * has exited (seen on Docker 20.10: false while running, an `oom` event at the kill), so the
 * event stream is how a run learns that it hit the memory limit.
 */
export class OomWatch {
  readonly #docker: Docker;
  readonly #runnerId: string;
  readonly #log: Logger;
  readonly #counts = new Map<string, number>();
  #stream: NodeJS.ReadableStream | null = null;
  #stopped = false;
  #ready: Promise<void> | null = null;

  constructor(docker: Docker, runnerId: string, log: Logger) {
    this.#docker = docker;
    this.#runnerId = runnerId;
    this.#log = log;
  }

  /** Subscribes (and re-subscribes after errors) until stop(). */
  start(): Promise<void> {
    this.#ready ??= this.#subscribe();
    return this.#ready;
  }

  async #subscribe(): Promise<void> {
    if (this.#stopped) return;
    try {
      const stream = await this.#docker.getEvents({
        filters: { type: ['container'], event: ['oom'], label: [`${LABEL_RUNNER_ID}=${this.#runnerId}`] },
      });
      this.#stream = stream;
      let pending = '';
      stream.on('data', (chunk: Buffer) => {
        pending += chunk.toString('utf8');
        let nl = pending.indexOf('\n');
        while (nl >= 0) {
          this.#record(pending.slice(0, nl));
          pending = pending.slice(nl + 1);
          nl = pending.indexOf('\n');
        }
      });
      const again = () => {
        if (this.#stream !== stream) return;
        this.#stream = null;
        if (!this.#stopped) setTimeout(() => void this.#subscribe(), 1000).unref();
      };
      stream.on('end', again);
      stream.on('error', again);
    } catch (err) {
      this.#log.oomWatchFailed(err);
      if (!this.#stopped) setTimeout(() => void this.#subscribe(), 1000).unref();
    }
  }

  #record(line: string): void {
    try {
      const e = JSON.parse(line) as { status?: string; Action?: string; id?: string };
      if ((e.status === 'oom' || e.Action === 'oom') && typeof e.id === 'string') {
        this.#counts.set(e.id, (this.#counts.get(e.id) ?? 0) + 1);
      }
    } catch {
      // not an event line
    }
  }

  count(containerId: string): number {
    return this.#counts.get(containerId) ?? 0;
  }

  forget(containerId: string): void {
    this.#counts.delete(containerId);
  }

  stop(): void {
    this.#stopped = true;
    const s = this.#stream as (NodeJS.ReadableStream & { destroy?: () => void }) | null;
    s?.destroy?.();
    this.#stream = null;
  }
}
