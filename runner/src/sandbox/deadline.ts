import { TIMEOUT_MARGINS } from '@agent-platform/contract';
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
  return <T>(
    promise: Promise<T>,
    what: string,
    timeoutMs: number = PLATFORM_CALL_TIMEOUT_MS,
    signal?: AbortSignal,
  ): Promise<T> => {
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new DeadlineError(`${what} took longer than ${timeoutMs} ms`)),
        timeoutMs,
      );
      timer.unref();
      if (signal) {
        onAbort = () => reject(new DeadlineError(`${what} was abandoned`));
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    const done = () => {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    };
    promise.catch(() => undefined); // a call abandoned at its deadline may still fail later
    return Promise.race([promise, deadline]).then(
      (value) => {
        done();
        observer?.observeCall(what, (performance.now() - t0) / 1000, true);
        return value;
      },
      (err: unknown) => {
        done();
        observer?.observeCall(what, (performance.now() - t0) / 1000, false);
        throw err;
      },
    );
  };
}

/** A call with a deadline and no observer. */
export const withDeadline: DeadlineCall = deadlineCaller();
