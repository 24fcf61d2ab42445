import type { UserDoc } from '@agent-platform/contract';
import { RateLimitedError } from '../errors.ts';

/** A fixed one-minute window of counted actions (stored on users/{uid} and ipWindows/{ipKey}). */
export type RateWindow = NonNullable<UserDoc['rate']>;

export const WINDOW_MS = 60_000;

/** One more action counted, or refused with the seconds until the window frees. */
export type Counted =
  { ok: true; rate: RateWindow } | { ok: false; message: string; retryAfterSeconds: number };

/**
 * Counts one more action in `rate` at `nowMs`, or refuses (naming `what`) when `limit` actions
 * were already counted in it.
 */
export function countOne(rate: RateWindow | null, nowMs: number, limit: number, what: string): Counted {
  const fresh = !rate || nowMs - rate.windowStartMs >= WINDOW_MS;
  const count = fresh ? 0 : rate.count;
  if (!fresh && count >= limit) {
    const retry = Math.max(1, Math.ceil((rate.windowStartMs + WINDOW_MS - nowMs) / 1000));
    return {
      ok: false,
      message: `at most ${limit} ${what} per minute; try again in ${retry} s`,
      retryAfterSeconds: retry,
    };
  }
  return { ok: true, rate: { windowStartMs: fresh ? nowMs : rate.windowStartMs, count: count + 1 } };
}

/** countOne, throwing RateLimitedError when refused. */
export function takeOne(rate: RateWindow | null, nowMs: number, limit: number, what: string): RateWindow {
  const counted = countOne(rate, nowMs, limit, what);
  if (!counted.ok) throw new RateLimitedError(counted.message, counted.retryAfterSeconds);
  return counted.rate;
}
