/**
 * One timeout budget. Every deadline of a message's path is derived from the run cap (how long a
 * sandbox may run) by adding a stated margin per layer, so each outer layer waits longer than the
 * inner one:
 *
 *   run cap (sandbox wall clock, killed from the host)               runMs
 *   runner answers within           queueMs + runMs + sandboxGraceMs  runnerAnswerMs
 *   functions' runner client waits  runnerAnswerMs + networkMarginMs  runnerClientMs
 *   a callable / REST call needs    runnerClientMs + firestoreMarginMs functionMs (<= FUNCTION_TIMEOUT_S)
 *   the web client waits            FUNCTION_TIMEOUT_S + webMarginMs   webClientMs
 *
 * The function timeout is fixed at deploy time (FUNCTION_TIMEOUT_S), so it bounds the run caps
 * the functions accept: a RUN_TIMEOUT_MS whose functionMs exceeds it is refused at start.
 */
export const TIMEOUT_MARGINS = {
  /** Longest wait in the runner for the user's turn and a global slot; then 429. */
  queueMs: 10_000,
  /** Creating, saving and removing a sandbox around its run. */
  sandboxGraceMs: 10_000,
  /** Network, TLS and ID-token fetch between the functions and the runner. */
  networkMarginMs: 5_000,
  /** sendMessage's Firestore transactions before and after the run. */
  firestoreMarginMs: 15_000,
  /** Between the function's timeout and the web client giving up. */
  webMarginMs: 10_000,
} as const;

/** Default run cap: runner RUN_TIMEOUT_MS and functions RUN_TIMEOUT_MS. */
export const RUN_TIMEOUT_DEFAULT_MS = 30_000;
/** Shortest run timeout a request may ask for. */
export const RUN_TIMEOUT_MIN_MS = 100;
/** Smallest run cap an operator may configure (runner RUN_TIMEOUT_MS): below it no agent starts. */
export const RUN_CAP_MIN_MS = 1_000;
/** Largest run cap the runner accepts (its own callers may wait that long). */
export const RUN_TIMEOUT_MAX_MS = 600_000;
/** Timeout of every callable and of the REST function, in seconds (fixed at deploy). */
export const FUNCTION_TIMEOUT_S = 120;
/**
 * Deadline of each Firestore step of a call (a transaction, a batch, a query): a database that
 * does not answer makes the call `unavailable` instead of holding it to the function's timeout.
 * Three steps of sendMessage fit in firestoreMarginMs.
 */
export const FIRESTORE_CALL_TIMEOUT_MS = 5_000;
/**
 * How long a pending message (and its request record) belongs to the function that stored it:
 * until that function would have timed out, plus a margin. Past it, the message reads as failed,
 * a retry with the same requestId runs again, and the sweep marks it failed.
 */
export const PENDING_LEASE_MS = FUNCTION_TIMEOUT_S * 1000 + 10_000;
/** How often the scheduled sweep marks expired pending messages failed. */
export const PENDING_SWEEP_SCHEDULE = 'every 5 minutes';

/**
 * Whether a stored message (or request) is pending past its lease: its function died (or timed
 * out) between storing it and storing the outcome. Then it counts as failed.
 */
export function leaseExpired(
  state: string,
  leaseExpiresAtMs: number | null | undefined,
  nowMs: number,
): boolean {
  return state === 'pending' && leaseExpiresAtMs != null && leaseExpiresAtMs <= nowMs;
}

export interface TimeoutBudget {
  runMs: number;
  runnerAnswerMs: number;
  runnerClientMs: number;
  functionMs: number;
  functionTimeoutMs: number;
  webClientMs: number;
}

/** Every deadline of a message's path, derived from the run cap. */
export function timeoutBudget(runMs: number): TimeoutBudget {
  const m = TIMEOUT_MARGINS;
  const runnerAnswerMs = m.queueMs + runMs + m.sandboxGraceMs;
  const runnerClientMs = runnerAnswerMs + m.networkMarginMs;
  const functionMs = runnerClientMs + m.firestoreMarginMs;
  const functionTimeoutMs = FUNCTION_TIMEOUT_S * 1000;
  return {
    runMs,
    runnerAnswerMs,
    runnerClientMs,
    functionMs,
    functionTimeoutMs,
    webClientMs: functionTimeoutMs + m.webMarginMs,
  };
}

/** Largest run cap whose path still fits in FUNCTION_TIMEOUT_S. */
export const FUNCTIONS_RUN_TIMEOUT_MAX_MS =
  FUNCTION_TIMEOUT_S * 1000 -
  TIMEOUT_MARGINS.firestoreMarginMs -
  TIMEOUT_MARGINS.networkMarginMs -
  TIMEOUT_MARGINS.sandboxGraceMs -
  TIMEOUT_MARGINS.queueMs;

/**
 * Why a run cap does not fit the functions' timeout, naming both values, or null when it fits.
 * The functions refuse to start with such a RUN_TIMEOUT_MS.
 */
export function budgetProblem(runMs: number): string | null {
  const b = timeoutBudget(runMs);
  if (b.functionMs <= b.functionTimeoutMs) return null;
  return (
    `RUN_TIMEOUT_MS=${runMs} needs a function timeout of ${b.functionMs} ms (run + ` +
    `${b.functionMs - runMs} ms of queue, sandbox, network and Firestore margins), but the ` +
    `functions time out after FUNCTION_TIMEOUT_S=${FUNCTION_TIMEOUT_S} s (${b.functionTimeoutMs} ms); ` +
    `use at most ${FUNCTIONS_RUN_TIMEOUT_MAX_MS}`
  );
}
