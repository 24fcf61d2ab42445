import { NO_MODEL_USAGE, settleBy, type ModelUsage } from '@agent-platform/contract';
import type { ModelSettings } from './model-settings.ts';
import type { TokenCount } from './token-count.ts';

/**
 * How long `finish()` waits for the calls it aborted to settle. An aborted fetch settles within
 * milliseconds; the bound is for a call stuck elsewhere (a credentials fetch), and stays well
 * inside the timeout budget's sandboxGraceMs, which the run's end must fit in.
 */
export const FINISH_SETTLE_MS = 2_000;

/** What one admitted call may spend: its prompt (estimated from its bytes) and its completion cap. */
export interface CallReservation {
  model: string;
  promptTokens: number;
  /** The `max_tokens` sent, times the choices asked for (`n`). */
  completionTokens: number;
}

/** What admitting a call reads of its run. */
export interface RunBudget {
  /** The run's model (its agent's); null: MODEL_DEFAULT. */
  model: string | null;
  tokenBudget: number;
  /** Calls admitted so far, those in flight included. */
  calls: number;
  /** Tokens of the calls that have settled. */
  usedTokens: number;
  /** Tokens reserved by the calls in flight. */
  reservedTokens: number;
  /** `finish()` was called: no more calls. */
  finished: boolean;
}

/** One admitted call's hold on its run's budget, settled once: `commit` or `cancel`. */
export interface Reservation {
  readonly call: CallReservation;
  /** Aborted by the run's `finish()`: the call's fetch listens to it. */
  readonly signal: AbortSignal;
  /** Settles the call with what it spent; its reservation is released. Later settlements are ignored. */
  commit(spent: TokenCount): void;
  /** The call never reached the provider: it is not counted and its reservation is released. */
  cancel(): void;
}

interface OpenCall {
  abort: AbortController;
  settled: Promise<void>;
  /** Settles the call with its whole reservation (what it may have spent). */
  chargeWhole(): void;
}

/**
 * One run's use of the gateway: its model, its budget and what its calls spent. Each call reserves
 * what it may spend before it is forwarded (its prompt and its completion cap) and settles with
 * what the provider reported, so concurrent calls cannot together pass the budget.
 *
 * `usage` counts the calls that have settled. Whoever ends a run (its result, its timeout, an
 * abort, a protocol error, the sandbox dying) calls `finish()` and reports what it resolves
 * with: only then are calls still in flight counted.
 */
export class ModelRun {
  /** The run's model (its agent's); null: MODEL_DEFAULT. */
  readonly model: string | null;
  readonly tokenBudget: number;
  /** For log lines; null when the caller gave none. */
  readonly runId: string | null;
  readonly #usage: ModelUsage = { ...NO_MODEL_USAGE };
  readonly #open = new Set<OpenCall>();
  #reservedTokens = 0;
  #finishing: Promise<ModelUsage> | null = null;

  constructor(model: string | null, tokenBudget: number, runId: string | null = null) {
    this.model = model;
    this.tokenBudget = tokenBudget;
    this.runId = runId;
  }

  /** What the run's settled calls used (a copy). Calls in flight count once `finish()` resolves. */
  get usage(): ModelUsage {
    return { ...this.#usage };
  }

  budget(): RunBudget {
    return {
      model: this.model,
      tokenBudget: this.tokenBudget,
      calls: this.#usage.calls,
      usedTokens: this.#usage.inputTokens + this.#usage.outputTokens,
      reservedTokens: this.#reservedTokens,
      finished: this.#finishing !== null,
    };
  }

  /** A call was refused by this budget: the run's result says which. */
  exhausted(budget: 'calls' | 'tokens'): void {
    this.#usage.exhausted = budget;
  }

  /** Holds what an admitted call may spend; admission (call-admission.ts) checked that it fits. */
  reserve(call: CallReservation): Reservation {
    if (this.#finishing) throw new Error('the run has finished; a call cannot be reserved');
    const tokens = call.promptTokens + call.completionTokens;
    this.#usage.calls++;
    this.#usage.model = call.model;
    this.#reservedTokens += tokens;
    const abort = new AbortController();
    let resolve!: () => void;
    const settled = new Promise<void>((r) => (resolve = r));
    let open = true;
    const settle = (spent: TokenCount | null) => {
      if (!open) return;
      open = false;
      this.#reservedTokens -= tokens;
      this.#open.delete(entry);
      if (spent) {
        this.#usage.inputTokens += spent.input;
        this.#usage.outputTokens += spent.output;
      } else {
        this.#usage.calls--;
      }
      resolve();
    };
    const entry: OpenCall = {
      abort,
      settled,
      chargeWhole: () => settle({ input: call.promptTokens, output: call.completionTokens }),
    };
    this.#open.add(entry);
    return { call, signal: abort.signal, commit: settle, cancel: () => settle(null) };
  }

  /**
   * Ends the run's model use and resolves with its final usage: refuses new calls, aborts every
   * call in flight at the provider, waits for them to settle (at most `settleMs`), and charges a
   * call that has not settled by then its whole reservation (what it may have spent; a provider
   * bills what it generated before the connection closed). Idempotent: later calls get the same.
   */
  finish(settleMs: number = FINISH_SETTLE_MS): Promise<ModelUsage> {
    this.#finishing ??= this.#finish(settleMs);
    return this.#finishing;
  }

  async #finish(settleMs: number): Promise<ModelUsage> {
    const open = [...this.#open];
    for (const c of open) c.abort.abort();
    await settleBy(Promise.all(open.map((c) => c.settled)), AbortSignal.timeout(settleMs));
    for (const c of open) c.chargeWhole(); // ignored for the calls that settled
    return this.usage;
  }
}

/** A run's gateway state: its model and budget (the run request's, at most MODEL_TOKENS_PER_RUN). */
export function newModelRun(
  settings: ModelSettings,
  model: string | null,
  tokenBudget?: number,
  runId?: string,
): ModelRun {
  return new ModelRun(
    model,
    Math.min(tokenBudget ?? settings.tokensPerRun, settings.tokensPerRun),
    runId ?? null,
  );
}
