import type { ModelRequestEvent, ModelResponseLine } from '@agent-platform/contract';

/** The runner's model settings (config.ts). The key never leaves this process but to the provider. */
export interface ModelSettings {
  /** OpenAI-compatible base URL, e.g. https://api.openai.com/v1; null: no provider configured. */
  baseUrl: string | null;
  apiKey: string | undefined;
  /** Models a sandbox may ask for; empty: any. */
  allowlist: string[];
  /** Model used when a request names none. */
  defaultModel: string | null;
  /** Model calls one run may make. */
  callsPerRun: number;
  /** Bytes of one provider answer passed back to the sandbox, at most. */
  responseMaxBytes: number;
}

/** Writes one model_response line to the agent (ignored once the run is over). */
export type ModelReply = (line: ModelResponseLine) => void;

/** What one run has used of the gateway. */
export interface ModelUsage {
  calls: number;
}

function errorLines(id: string, status: number, type: string, message: string): ModelResponseLine[] {
  return [
    {
      type: 'model_response',
      id,
      status,
      contentType: 'application/json',
      chunk: JSON.stringify({ error: { message, type } }),
      done: true,
    },
  ];
}

/**
 * Forwards the model requests of code in a sandbox (arriving as `model_request` lines through
 * the agent, contract/src/protocol.ts) to the configured OpenAI-compatible provider, with the
 * provider's key added here: the sandbox has neither network nor key. Checks the path, the model
 * (against MODEL_ALLOWLIST), the run's call budget; answers /v1/models from the allowlist
 * itself. The provider's answer (JSON or a server-sent event stream) is passed back as it comes,
 * bounded in bytes and by the run's signal.
 */
export class ModelGateway {
  readonly #settings: ModelSettings;
  readonly #fetch: typeof fetch;

  constructor(settings: ModelSettings, fetchImpl: typeof fetch = fetch) {
    this.#settings = settings;
    this.#fetch = fetchImpl;
  }

  /** Serves one request of a run; `usage` is the run's own counter. Never throws. */
  async serve(
    req: ModelRequestEvent,
    reply: ModelReply,
    usage: ModelUsage,
    signal: AbortSignal,
  ): Promise<void> {
    const send = (lines: ModelResponseLine[]) => lines.forEach(reply);
    const s = this.#settings;
    if (req.path === '/v1/models') {
      if (req.method !== 'GET') return send(errorLines(req.id, 405, 'invalid_request_error', 'use GET'));
      const models = s.allowlist.length > 0 ? s.allowlist : s.defaultModel ? [s.defaultModel] : [];
      return send([
        {
          type: 'model_response',
          id: req.id,
          status: 200,
          contentType: 'application/json',
          chunk: JSON.stringify({
            object: 'list',
            data: models.map((id) => ({ id, object: 'model', owned_by: 'agent-platform' })),
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
      return send(
        errorLines(req.id, 429, 'budget_exceeded', `this run may make at most ${s.callsPerRun} model calls`),
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
    const model = typeof body.model === 'string' && body.model ? body.model : s.defaultModel;
    if (!model) return send(errorLines(req.id, 400, 'invalid_request_error', 'name a model'));
    if (s.allowlist.length > 0 && !s.allowlist.includes(model)) {
      return send(
        errorLines(
          req.id,
          400,
          'invalid_request_error',
          `model ${JSON.stringify(model).slice(0, 80)} is not allowed here; allowed: ${s.allowlist.join(', ')}`,
        ),
      );
    }
    usage.calls++;
    let res: Response;
    try {
      res = await this.#fetch(`${s.baseUrl.replace(/\/$/, '')}/chat/completions`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(s.apiKey ? { authorization: `Bearer ${s.apiKey}` } : {}),
        },
        body: JSON.stringify({ ...body, model }),
        signal,
      });
    } catch {
      return send(errorLines(req.id, 502, 'provider_error', 'the model provider could not be reached'));
    }
    reply({
      type: 'model_response',
      id: req.id,
      status: res.status,
      contentType: res.headers.get('content-type') ?? 'application/json',
      done: false,
    });
    let sent = 0;
    try {
      const decoder = new TextDecoder();
      for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
        sent += chunk.byteLength;
        if (sent > s.responseMaxBytes) break;
        const text = decoder.decode(chunk, { stream: true });
        if (text) reply({ type: 'model_response', id: req.id, chunk: text, done: false });
      }
    } catch {
      // The run ended or the provider broke off: the sandbox gets what arrived.
    }
    reply({ type: 'model_response', id: req.id, done: true });
  }
}
