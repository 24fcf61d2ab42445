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
  /** The `max_tokens` a call that sets no cap is given (lowered to what is left of the run's budget). */
  defaultMaxTokens: number;
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
