/**
 * A pending user message whose function's lease ends is "Not answered" from then on, though no
 * document changed: this clock calls back when the next lease ends, so the view renders again.
 * No DOM: unit-tested in Node.
 */
import type { Message } from '../documents.ts';

/** setTimeout's longest delay (a longer one fires at once). */
const MAX_DELAY_MS = 2 ** 31 - 1;
/** Fired this long after the lease's end, so the render's own clock reads it as ended. */
const AFTER_END_MS = 50;

type Leased = Pick<Message, 'status' | 'leaseExpiresAtMs'>;

/** When the first lease of a pending message still running at `nowMs` ends (null: none). */
export function nextLeaseEndMs(messages: readonly Leased[], nowMs: number): number | null {
  let next: number | null = null;
  for (const m of messages) {
    const end = m.leaseExpiresAtMs;
    if (m.status === 'pending' && end !== null && end > nowMs && (next === null || end < next)) next = end;
  }
  return next;
}

export class LeaseClock {
  readonly #onLeaseEnd: () => void;
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(onLeaseEnd: () => void) {
    this.#onLeaseEnd = onLeaseEnd;
  }

  /** Watches these messages' leases (and no longer the previous ones). */
  watch(messages: readonly Leased[], nowMs: number): void {
    this.stop();
    const endMs = nextLeaseEndMs(messages, nowMs);
    if (endMs === null) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        this.#onLeaseEnd();
      },
      Math.min(endMs - nowMs + AFTER_END_MS, MAX_DELAY_MS),
    );
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
