import { RateLimitedError } from '../errors.ts';

/** A fixed one-minute window of counted actions, stored on users/{uid}. */
export interface RateWindow {
  windowStartMs: number;
  count: number;
}

export const WINDOW_MS = 60_000;

/**
 * Counts one more action in `rate` at `nowMs`, or throws RateLimitedError (`what`, with the
 * seconds until the window frees) when `limit` actions were already counted in it.
 */
export function takeOne(rate: RateWindow | null, nowMs: number, limit: number, what: string): RateWindow {
  const fresh = !rate || nowMs - rate.windowStartMs >= WINDOW_MS;
  const count = fresh ? 0 : rate.count;
  if (!fresh && count >= limit) {
    const retry = Math.max(1, Math.ceil((rate.windowStartMs + WINDOW_MS - nowMs) / 1000));
    throw new RateLimitedError(`at most ${limit} ${what} per minute; try again in ${retry} s`, retry);
  }
  return { windowStartMs: fresh ? nowMs : rate.windowStartMs, count: count + 1 };
}
