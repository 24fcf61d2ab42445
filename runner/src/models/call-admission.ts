import type { ModelRequestEvent } from '@agent-platform/contract';
import { modelRefusal } from './model-allowlist.ts';
import type { CallReservation, RunBudget } from './model-run.ts';
import type { ModelSettings } from './model-settings.ts';
import { estimateTokens } from './token-count.ts';

/** What the gateway does with one model request of a sandbox. */
export type Admission =
  /** GET /v1/models: answered here, from the allowlist. */
  | { kind: 'models' }
  /** Answered here with this error; `exhausted`: the run's budget that refused it. */
  | { kind: 'refuse'; status: number; type: string; message: string; exhausted: 'calls' | 'tokens' | null }
  /** Forwarded to the provider as `payload`, holding `call` of the run's budget. */
  | {
      kind: 'forward';
      call: CallReservation;
      payload: string;
      /** The sandbox did not ask a stream for its usage: the gateway did, and keeps that chunk. */
      hideUsageChunk: boolean;
    };

/** The completion caps of OpenAI's wire format (see `capCompletion`). */
const CAP_FIELDS = ['max_tokens', 'max_completion_tokens'] as const;

const BUDGETS_NOTE = 'budgets are set per run and per user per day';

function refuse(
  status: number,
  type: string,
  message: string,
  exhausted: 'calls' | 'tokens' | null = null,
): Admission {
  return { kind: 'refuse', status, type, message, exhausted };
}
const invalid = (message: string) => refuse(400, 'invalid_request_error', message);

function jsonObject(text: string | null): Record<string, unknown> | null {
  try {
    const parsed: unknown = JSON.parse(text ?? '');
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/**
 * Decides one model request of a run: the path and method, a provider configured, the run not
 * finished, its call cap, its token budget (what the call may spend must fit in what the run has
 * not spent or reserved), a JSON object body naming an allowed model (or the run's, or
 * MODEL_DEFAULT), and valid caps. A forwarded body gets the model, a completion cap that fits the
 * budget, and a stream's usage asked for. Pure: the caller reserves and forwards.
 */
export function admit(req: ModelRequestEvent, run: RunBudget, settings: ModelSettings): Admission {
  if (req.path === '/v1/models') {
    return req.method === 'GET' ? { kind: 'models' } : refuse(405, 'invalid_request_error', 'use GET');
  }
  if (req.method !== 'POST') return refuse(405, 'invalid_request_error', 'use POST');
  if (run.finished) return refuse(503, 'unavailable', 'this run has ended; it may make no more model calls');
  if (!settings.baseUrl) {
    return refuse(503, 'unavailable', 'no model provider is configured on this platform (MODEL_BASE_URL)');
  }
  if (run.calls >= settings.callsPerRun) {
    return refuse(
      429,
      'budget_exceeded',
      `this run may make at most ${settings.callsPerRun} model calls`,
      'calls',
    );
  }
  const left = run.tokenBudget - run.usedTokens - run.reservedTokens;
  if (left <= 0) {
    const held = run.reservedTokens > 0 ? `; ${run.reservedTokens} more are held by calls in flight` : '';
    return refuse(
      429,
      'budget_exceeded',
      `the token budget of this run is spent (${run.usedTokens} of ${run.tokenBudget} tokens${held}); ${BUDGETS_NOTE}`,
      'tokens',
    );
  }
  const body = jsonObject(req.body);
  if (!body) return invalid('the body must be a JSON object');
  const model =
    typeof body.model === 'string' && body.model ? body.model : (run.model ?? settings.defaultModel);
  if (!model) return invalid('name a model');
  const refusal = modelRefusal(settings, model);
  if (refusal) return invalid(refusal);
  const choices = body.n ?? 1;
  // Each of `n` choices may use the whole cap, so they share what is left.
  if (typeof choices !== 'number' || !Number.isInteger(choices) || choices < 1) {
    return invalid('n must be a whole number of choices, at least 1');
  }
  for (const field of CAP_FIELDS) {
    const v = body[field] ?? null;
    if (v !== null && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) {
      return invalid(`${field} must be a number of tokens`);
    }
  }
  const promptTokens = estimateTokens(Buffer.byteLength(JSON.stringify({ ...body, model })));
  const room = Math.floor((left - promptTokens) / choices);
  if (room < 1) {
    const asked = choices > 1 ? ` and ${choices} choices` : '';
    return refuse(
      429,
      'budget_exceeded',
      `this call's prompt (about ${promptTokens} tokens${asked}) does not fit in what is left of the token budget of this run (${left} of ${run.tokenBudget} tokens); ${BUDGETS_NOTE}`,
      'tokens',
    );
  }
  const cap = capCompletion(body, room, settings.defaultMaxTokens);
  const hideUsageChunk = askUsage(body);
  return {
    kind: 'forward',
    call: { model, promptTokens, completionTokens: cap * choices },
    payload: JSON.stringify({ ...body, model }),
    hideUsageChunk,
  };
}

/**
 * Bounds the answer to `room` tokens (a choice) and returns the bound. OpenAI calls the cap
 * `max_completion_tokens` and refuses `max_tokens` for its reasoning models, while Vertex AI,
 * vLLM, Ollama and older servers read `max_tokens`. So a cap the code set is kept under its own
 * name (the code knows its provider), lowered to `room`; both, if it set both (the provider
 * honours one, the bound is the larger). When it set none, the gateway sets the name the code
 * wrote without a value, else `max_tokens`, the one every OpenAI-compatible server reads, to
 * MODEL_DEFAULT_MAX_TOKENS (providers refuse a cap above their model's output limit, so not
 * simply `room`) or `room` if smaller.
 */
function capCompletion(body: Record<string, unknown>, room: number, defaultMaxTokens: number): number {
  let cap = -1;
  for (const field of CAP_FIELDS) {
    const v = body[field];
    if (typeof v !== 'number') continue;
    if (v > room) body[field] = room;
    cap = Math.max(cap, Math.ceil(Math.min(v, room)));
  }
  if (cap >= 0) return cap;
  const field =
    'max_completion_tokens' in body && !('max_tokens' in body) ? 'max_completion_tokens' : 'max_tokens';
  const value = Math.min(defaultMaxTokens, room);
  body[field] = value;
  return value;
}

/**
 * A stream is asked for its usage (`stream_options.include_usage`); returns true when the code
 * did not ask, so that extra chunk is kept from it and code written for plain streams sees none.
 */
function askUsage(body: Record<string, unknown>): boolean {
  if (body.stream !== true) return false;
  const options = body.stream_options;
  const opts = typeof options === 'object' && options !== null ? (options as Record<string, unknown>) : {};
  if (opts.include_usage) return false;
  body.stream_options = { ...opts, include_usage: true };
  return true;
}
