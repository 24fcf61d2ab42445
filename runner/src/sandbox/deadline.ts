import { TIMEOUT_MARGINS } from '@agent-platform/contract';
import { DeadlineError } from '../errors.ts';

/**
 * Deadline of one call to the container platform (create, inspect, list, remove, ...): the
 * budget's margin for the sandbox work around a run, so a hung engine cannot hold a run past
 * the runner's answer deadline.
 */
export const PLATFORM_CALL_TIMEOUT_MS = TIMEOUT_MARGINS.sandboxGraceMs;

/** Resolves like `promise`, or rejects with DeadlineError after `timeoutMs`. */
export function withDeadline<T>(
  promise: Promise<T>,
  what: string,
  timeoutMs: number = PLATFORM_CALL_TIMEOUT_MS,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new DeadlineError(`${what} took longer than ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
