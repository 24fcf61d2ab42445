import { LineSplitter } from '@agent-platform/contract';
import type Docker from 'dockerode';
import type { Logger } from '../logs.ts';
import { callWithDeadline, type DeadlineCall } from './deadline.ts';
import { LABEL_RUNNER_ID } from './labels.ts';

/** Docker event lines are a few hundred bytes; anything far longer is not an event we read. */
const EVENT_LINE_MAX_CHARS = 64 * 1024;
/** Pause before subscribing again after the event stream failed or ended. */
const RESUBSCRIBE_DELAY_MS = 1000;

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

  readonly #call: DeadlineCall;

  constructor(docker: Docker, runnerId: string, log: Logger, call: DeadlineCall = callWithDeadline) {
    this.#docker = docker;
    this.#runnerId = runnerId;
    this.#log = log;
    this.#call = call;
  }

  /** Whether the event stream is connected now. */
  get watching(): boolean {
    return this.#stream !== null;
  }

  /** Subscribes (and re-subscribes after errors) until stop(); resolves after the first attempt. */
  start(): Promise<void> {
    this.#ready ??= this.#subscribe();
    return this.#ready;
  }

  async #subscribe(): Promise<void> {
    if (this.#stopped) return;
    try {
      const stream = await this.#call(
        this.#docker.getEvents({
          filters: { type: ['container'], event: ['oom'], label: [`${LABEL_RUNNER_ID}=${this.#runnerId}`] },
        }),
        'subscribing to Docker events',
      );
      this.#stream = stream;
      const subscribedAt = performance.now();
      this.#log.oomWatchSubscribed();
      const lines = new LineSplitter(EVENT_LINE_MAX_CHARS);
      stream.on('data', (chunk: Buffer) => {
        for (const line of lines.push(chunk.toString('utf8'))) if (line !== null) this.#record(line);
      });
      const again = () => {
        if (this.#stream !== stream) return;
        this.#stream = null;
        // At once after a stream that lived a while (an engine that restarted is usually back by
        // then, and a failed attempt retries after the delay); after a short-lived one, wait, so
        // an engine that keeps closing the stream is not called in a loop.
        const lived = performance.now() - subscribedAt;
        const delay = lived > RESUBSCRIBE_DELAY_MS ? 0 : RESUBSCRIBE_DELAY_MS;
        if (!this.#stopped) setTimeout(() => void this.#subscribe(), delay).unref();
      };
      // An engine that dies closes the connection: the response may only emit 'close' (no 'end'
      // and no 'error'), which left the watch deaf after an engine restart (engine-restart.test.ts).
      stream.on('end', again);
      stream.on('error', again);
      stream.on('close', again);
    } catch (err) {
      this.#log.oomWatchFailed(err);
      if (!this.#stopped) setTimeout(() => void this.#subscribe(), RESUBSCRIBE_DELAY_MS).unref();
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

  /** Called when the container is removed, so the map holds only live sandboxes. */
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
