import { TIMEOUT_MARGINS, withDeadline } from '@agent-platform/contract';
import { DeadlineError } from '../errors.ts';

/**
 * Deadline of one call to the container platform (create, inspect, list, remove, ...): the
 * budget's margin for the sandbox work around a run, so a hung engine cannot hold a run past
 * the runner's answer deadline.
 */
export const PLATFORM_CALL_TIMEOUT_MS = TIMEOUT_MARGINS.sandboxGraceMs;

/** Told about every platform call: its name (a fixed phrase), its seconds, and whether it worked. */
export interface CallObserver {
  observeCall(call: string, seconds: number, ok: boolean): void;
}

/**
 * A call with a deadline: resolves like `promise`, or rejects with DeadlineError after `timeoutMs`
 * or as soon as `signal` aborts (the call itself may go on; its outcome is ignored).
 */
export type DeadlineCall = <T>(
  promise: Promise<T>,
  what: string,
  timeoutMs?: number,
  signal?: AbortSignal,
) => Promise<T>;

/** Calls with deadlines whose outcomes `observer` (the metrics) sees. */
export function deadlineCaller(observer?: CallObserver): DeadlineCall {
  return async <T>(
    promise: Promise<T>,
    what: string,
    timeoutMs: number = PLATFORM_CALL_TIMEOUT_MS,
    signal?: AbortSignal,
  ): Promise<T> => {
    const t0 = performance.now();
    const late = AbortSignal.timeout(timeoutMs);
    let ok = false;
    try {
      const value = await withDeadline(promise, signal ? AbortSignal.any([signal, late]) : late, () =>
        signal?.aborted
          ? new DeadlineError(`${what} was abandoned`)
          : new DeadlineError(`${what} took longer than ${timeoutMs} ms`),
      );
      ok = true;
      return value;
    } finally {
      observer?.observeCall(what, (performance.now() - t0) / 1000, ok);
    }
  };
}

/** A call with a deadline and no observer. */
export const callWithDeadline: DeadlineCall = deadlineCaller();
