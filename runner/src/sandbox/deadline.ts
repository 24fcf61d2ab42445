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

/** A call with a deadline: resolves like `promise`, or rejects with DeadlineError after `timeoutMs`. */
export type DeadlineCall = <T>(promise: Promise<T>, what: string, timeoutMs?: number) => Promise<T>;

/** Calls with deadlines whose outcomes `observer` (the metrics) sees. */
export function deadlineCaller(observer?: CallObserver): DeadlineCall {
  return <T>(promise: Promise<T>, what: string, timeoutMs: number = PLATFORM_CALL_TIMEOUT_MS): Promise<T> => {
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new DeadlineError(`${what} took longer than ${timeoutMs} ms`)),
        timeoutMs,
      );
      timer.unref();
    });
    return Promise.race([promise, deadline]).then(
      (value) => {
        clearTimeout(timer);
        observer?.observeCall(what, (performance.now() - t0) / 1000, true);
        return value;
      },
      (err: unknown) => {
        clearTimeout(timer);
        observer?.observeCall(what, (performance.now() - t0) / 1000, false);
        throw err;
      },
    );
  };
}

/** A call with a deadline and no observer. */
export const withDeadline: DeadlineCall = deadlineCaller();
