import {
  NO_MODEL_USAGE,
  modelErrorLine,
  type ModelRequestEvent,
  type ModelResponseLine,
  type ModelUsage,
} from '@agent-platform/contract';
import { listedModels, modelRefusal } from './model-allowlist.ts';

/** The runner's model settings (config.ts). The key never leaves this process but to the provider. */
export interface ModelSettings {
  /** `openai`: any OpenAI-compatible endpoint with MODEL_API_KEY; `vertex`: Vertex AI, no key. */
  provider: 'openai' | 'vertex';
  /** The provider's OpenAI-compatible base URL (…/v1, or Vertex's …/endpoints/openapi); null: none. */
  baseUrl: string | null;
  apiKey: string | undefined;
  /** Models a sandbox may ask for; empty: any. */
  allowlist: string[];
  /** Model used when a request names none. */
  defaultModel: string | null;
  /** Model calls one run may make. */
  callsPerRun: number;
  /** Tokens (input + output) one run may use, unless its request asks for fewer. */
  tokensPerRun: number;
  /** Bytes of one provider answer passed back to the sandbox, at most. */
  responseMaxBytes: number;
  /** How long one provider call may take, answer included (the run's own deadline also applies). */
  callTimeoutMs: number;
}

/**
 * The `authorization` header value for a provider call (null: none). For Vertex AI it is a
 * Google access token of the VM's service account (vertex-auth.ts), fetched and refreshed there.
 */
export type ProviderAuth = () => Promise<string | null>;

/** Writes one model_response line to the agent (ignored once the run is over). */
export type ModelReply = (line: ModelResponseLine) => void;

/** One run's use of the gateway: its model and budget (from the run request), and its counter. */
export interface ModelRun {
  /** The run's model (its agent's); null: MODEL_DEFAULT. */
  model: string | null;
  tokenBudget: number;
  usage: ModelUsage;
}

export function newModelRun(settings: ModelSettings, model: string | null, tokenBudget?: number): ModelRun {
  return {
    model,
    tokenBudget: Math.min(tokenBudget ?? settings.tokensPerRun, settings.tokensPerRun),
    usage: { ...NO_MODEL_USAGE },
  };
}

function errorLines(id: string, status: number, type: string, message: string): ModelResponseLine[] {
  return [modelErrorLine(id, status, type, message)];
}

interface ProviderUsage {
  prompt_tokens?: unknown;
  completion_tokens?: unknown;
}
const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v) : 0);
/** Tokens estimated from bytes when the provider reports none (about 4 bytes per token). */
const estimate = (bytes: number) => Math.ceil(bytes / 4);

/**
 * Forwards the model requests of code in a sandbox (arriving as `model_request` lines through
 * the agent, contract/src/protocol.ts) to the configured OpenAI-compatible provider, with the
 * provider's credentials added here: the sandbox has neither network nor key. Checks the path,
 * the model (against MODEL_ALLOWLIST), the run's call and token budgets; answers /v1/models from
 * the allowlist itself. The provider's answer (JSON or a server-sent event stream) is passed back
 * as it comes, bounded in bytes, in time and by the run's signal, and its `usage` is added to the
 * run's (a stream is asked for its usage with `stream_options.include_usage`; when the sandbox
 * did not ask for it, that extra chunk is kept from it, so code written for plain streams sees
 * none).
 */
export class ModelGateway {
  readonly #settings: ModelSettings;
  readonly #auth: ProviderAuth;
  readonly #fetch: typeof fetch;

  constructor(settings: ModelSettings, auth: ProviderAuth, fetchImpl: typeof fetch = fetch) {
    this.#settings = settings;
    this.#auth = auth;
    this.#fetch = fetchImpl;
  }

  get settings(): ModelSettings {
    return this.#settings;
  }

  /** The models a run may name (the allowlist, else the default alone). */
  models(): string[] {
    return listedModels(this.#settings);
  }

  /** Whether a run may name this model. */
  allows(model: string): boolean {
    return modelRefusal(this.#settings, model) === null;
  }

  /** Why a run may not name this model (the message a sandbox gets too); null: it may. */
  refusal(model: string): string | null {
    return modelRefusal(this.#settings, model);
  }

  /** The model a run's agent should use (null: no provider, the agent answers offline). */
  modelFor(run: ModelRun): string | null {
    if (!this.#settings.baseUrl) return null;
    return run.model ?? this.#settings.defaultModel;
  }

  /** Serves one request of a run. Never throws. */
  async serve(req: ModelRequestEvent, reply: ModelReply, run: ModelRun, signal: AbortSignal): Promise<void> {
    const send = (lines: ModelResponseLine[]) => lines.forEach(reply);
    const s = this.#settings;
    const usage = run.usage;
    if (req.path === '/v1/models') {
      if (req.method !== 'GET') return send(errorLines(req.id, 405, 'invalid_request_error', 'use GET'));
      return send([
        {
          type: 'model_response',
          id: req.id,
          status: 200,
          contentType: 'application/json',
          chunk: JSON.stringify({
            object: 'list',
            data: this.models().map((id) => ({ id, object: 'model', owned_by: 'agent-platform' })),
          }),
          done: true,
        },
      ]);
    }
    if (req.method !== 'POST') return send(errorLines(req.id, 405, 'invalid_request_error', 'use POST'));
    if (!s.baseUrl) {
      return send(
        errorLines(
          req.id,
          503,
          'unavailable',
          'no model provider is configured on this platform (MODEL_BASE_URL)',
        ),
      );
    }
    if (usage.calls >= s.callsPerRun) {
      usage.exhausted = 'calls';
      return send(
        errorLines(req.id, 429, 'budget_exceeded', `this run may make at most ${s.callsPerRun} model calls`),
      );
    }
    const used = usage.inputTokens + usage.outputTokens;
    if (used >= run.tokenBudget) {
      usage.exhausted = 'tokens';
      return send(
        errorLines(
          req.id,
          429,
          'budget_exceeded',
          `the token budget of this run is spent (${used} of ${run.tokenBudget} tokens); budgets are set per run and per user per day`,
        ),
      );
    }
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(req.body ?? '');
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      return send(errorLines(req.id, 400, 'invalid_request_error', 'the body must be a JSON object'));
    }
    const model = typeof body.model === 'string' && body.model ? body.model : (run.model ?? s.defaultModel);
    if (!model) return send(errorLines(req.id, 400, 'invalid_request_error', 'name a model'));
    const refusal = modelRefusal(s, model);
    if (refusal) return send(errorLines(req.id, 400, 'invalid_request_error', refusal));
    // A cap the sandbox set is lowered to what is left of the budget (none is added: providers
    // differ on max_tokens and max_completion_tokens); one call may overshoot by its own answer.
    const left = run.tokenBudget - used;
    for (const cap of ['max_tokens', 'max_completion_tokens']) {
      const v = body[cap];
      if (typeof v === 'number' && v > left) body[cap] = left;
    }
    const streaming = body.stream === true;
    const options = body.stream_options;
    const askedUsage =
      typeof options === 'object' &&
      options !== null &&
      (options as { include_usage?: unknown }).include_usage;
    const hideUsageChunk = streaming && !askedUsage;
    if (hideUsageChunk) {
      body.stream_options = {
        ...(typeof options === 'object' && options !== null ? options : {}),
        include_usage: true,
      };
    }
    usage.calls++;
    usage.model = model;
    const payload = JSON.stringify({ ...body, model });
    let reported: { input: number; output: number } | null = null;
    let received = 0;
    const account = () => {
      usage.inputTokens += reported ? reported.input : estimate(Buffer.byteLength(payload));
      usage.outputTokens += reported ? reported.output : estimate(received);
    };
    const callSignal = AbortSignal.any([signal, AbortSignal.timeout(s.callTimeoutMs)]);
    let authorization: string | null;
    try {
      authorization = await this.#auth();
    } catch {
      usage.calls--; // counted before the wait so concurrent calls cannot pass the cap; none was made
      return send(
        errorLines(
          req.id,
          502,
          'provider_error',
          'the runner could not get credentials for the model provider',
        ),
      );
    }
    let res: Response;
    try {
      res = await this.#fetch(`${s.baseUrl.replace(/\/$/, '')}/chat/completions`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(authorization ? { authorization } : {}),
        },
        body: payload,
        signal: callSignal,
      });
    } catch {
      account();
      const late = !signal.aborted && callSignal.aborted;
      return send(
        errorLines(
          req.id,
          late ? 504 : 502,
          'provider_error',
          late
            ? `the model provider did not answer within ${s.callTimeoutMs} ms`
            : 'the model provider could not be reached',
        ),
      );
    }
    const contentType = res.headers.get('content-type') ?? 'application/json';
    const sse = contentType.startsWith('text/event-stream');
    // Each line written to the sandbox's stdin is a hop through the engine's attach stream: the
    // status rides on the first piece, a JSON answer goes whole in one line, and the last piece
    // of a stream carries `done` (2.7 -> 2.2 ms p50 per call under runc, measured).
    let headSent = false;
    const send1 = (chunk: string, done: boolean) => {
      if (!chunk && !done) return;
      const line: ModelResponseLine = { type: 'model_response', id: req.id, done };
      if (!headSent) {
        line.status = res.status;
        line.contentType = contentType;
        headSent = true;
      }
      if (chunk) line.chunk = chunk;
      reply(line);
    };
    const take = (u: ProviderUsage | null | undefined) => {
      if (u && typeof u === 'object')
        reported = { input: count(u.prompt_tokens), output: count(u.completion_tokens) };
    };
    let pending = ''; // an SSE line not yet complete, or the JSON body so far
    try {
      const decoder = new TextDecoder();
      for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
        received += chunk.byteLength;
        if (received > s.responseMaxBytes) break;
        pending += decoder.decode(chunk, { stream: true });
        if (!sse) continue;
        // Server-sent events, passed on whole lines at a time so the usage chunk can be read
        // (and kept from a sandbox that did not ask for it).
        const cut = pending.lastIndexOf('\n');
        if (cut === -1) continue;
        const lines = pending.slice(0, cut + 1);
        pending = pending.slice(cut + 1);
        send1(this.#usageLines(lines, hideUsageChunk, take), false);
      }
      if (sse) pending = this.#usageLines(pending, hideUsageChunk, take);
      else if (res.ok && received <= s.responseMaxBytes) {
        try {
          take((JSON.parse(pending) as { usage?: ProviderUsage }).usage);
        } catch {
          // Not JSON: passed on as it came; the usage is estimated.
        }
      }
    } catch {
      // The run ended or the provider broke off: the sandbox gets what arrived.
    }
    account(); // before the last line: the run may end as soon as the agent has it
    send1(pending, true);
  }

  /** Reads the usage of SSE lines; drops the usage-only chunk when the sandbox did not ask for it. */
  #usageLines(lines: string, hide: boolean, take: (u: ProviderUsage) => void): string {
    if (!lines.includes('"usage"')) return lines;
    const out: string[] = [];
    const split = lines.split('\n');
    for (let i = 0; i < split.length; i++) {
      const line = split[i] ?? '';
      if (line.startsWith('data: {') && line.includes('"usage"')) {
        try {
          const chunk = JSON.parse(line.slice(6)) as { usage?: ProviderUsage | null; choices?: unknown };
          if (chunk.usage) take(chunk.usage);
          if (hide && Array.isArray(chunk.choices) && chunk.choices.length === 0) {
            if (split[i + 1] === '') i++; // and the blank line that ends the event
            continue;
          }
        } catch {
          // Passed on as it came.
        }
      }
      out.push(line);
    }
    return out.join('\n');
  }
}
