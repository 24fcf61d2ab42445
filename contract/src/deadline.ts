/**
 * The repository's one "promise with a deadline". Every bounded wait (a Docker call, a Firestore
 * step, a callable's result, a drain) is `settleBy` or `withDeadline` over an AbortSignal: the
 * caller's, `AbortSignal.timeout(ms)` (unref'd in Node, so it never holds a process open), or
 * both through `AbortSignal.any`. The bounded operation itself may go on after the wait ends; its
 * late failure is swallowed here, so it never surfaces as an unhandled rejection. Making the
 * outcome of such an abandoned operation certain is the caller's job (an idempotent key, a lease).
 *
 * The contract compiles without DOM or Node types, so the signal is described structurally; a
 * real AbortSignal (Node, browsers, React Native) fits it.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** How a bounded wait ended: the operation's value, or the signal first. */
export type Settled<T> = { settled: true; value: T } | { settled: false };

/**
 * Waits for `op` or for `signal`, whichever comes first: `{settled: false}` when the signal won
 * (`op` goes on), the value when `op` won; rejects when `op` rejects first.
 */
export async function settleBy<T>(op: Promise<T>, signal: AbortSignalLike): Promise<Settled<T>> {
  op.catch(() => undefined); // abandoned when the signal wins, it may still fail later
  if (signal.aborted) return { settled: false };
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<{ settled: false }>((resolve) => {
    onAbort = () => resolve({ settled: false });
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([op.then((value) => ({ settled: true as const, value })), aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Resolves or rejects like `op`, or rejects with `error()` as soon as `signal` aborts (`op` goes
 * on; its outcome is ignored). `error` is called only then, so it may read why the signal fired.
 */
export async function withDeadline<T>(
  op: Promise<T>,
  signal: AbortSignalLike,
  error: () => Error,
): Promise<T> {
  const got = await settleBy(op, signal);
  if (!got.settled) throw error();
  return got.value;
}
