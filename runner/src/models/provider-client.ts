import type { ModelSettings, ProviderAuth } from './model-settings.ts';

/** How a provider call went: its response, or why none came (as the sandbox is told). */
export type ProviderAnswer =
  | { ok: true; res: Response }
  | {
      ok: false;
      status: 502 | 504;
      message: string;
      /** The request went out: the provider may have spent tokens on it. */
      sent: boolean;
      /** It was cut by a deadline, the run or its end, not refused by the network. */
      cut: boolean;
    };

/**
 * The configured provider's chat completions endpoint: adds the authorization (ProviderAuth; it
 * never reaches a sandbox) and bounds each call to MODEL_CALL_TIMEOUT_MS, its answer's body
 * included (the body stream aborts with the same signal), and to the caller's signal.
 */
export class ProviderClient {
  readonly #settings: ModelSettings;
  readonly #auth: ProviderAuth;
  readonly #fetch: typeof fetch;

  constructor(settings: ModelSettings, auth: ProviderAuth, fetchImpl: typeof fetch) {
    this.#settings = settings;
    this.#auth = auth;
    this.#fetch = fetchImpl;
  }

  /** POSTs `payload` to …/chat/completions. Never throws. */
  async complete(payload: string, signal: AbortSignal): Promise<ProviderAnswer> {
    const s = this.#settings;
    const callSignal = AbortSignal.any([signal, AbortSignal.timeout(s.callTimeoutMs)]);
    const failed = (sent: boolean): ProviderAnswer => {
      const late = !signal.aborted && callSignal.aborted;
      return {
        ok: false,
        status: late ? 504 : 502,
        message: late
          ? `the model provider did not answer within ${s.callTimeoutMs} ms`
          : 'the model provider could not be reached',
        sent,
        cut: callSignal.aborted,
      };
    };
    let authorization: string | null;
    try {
      authorization = await this.#auth();
    } catch {
      return {
        ok: false,
        status: 502,
        message: 'the runner could not get credentials for the model provider',
        sent: false,
        cut: false,
      };
    }
    // Ended while the credentials came: nothing was sent, nothing is spent.
    if (callSignal.aborted) return failed(false);
    try {
      const res = await this.#fetch(`${(s.baseUrl ?? '').replace(/\/$/, '')}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body: payload,
        signal: callSignal,
      });
      return { ok: true, res };
    } catch {
      return failed(true);
    }
  }
}
