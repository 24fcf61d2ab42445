/** Tokens of one model call, as its provider counts them (or as estimated here). */
export interface TokenCount {
  input: number;
  output: number;
}

/** Tokens estimated from bytes when the provider reports none (about 4 bytes per token). */
export function estimateTokens(bytes: number): number {
  return Math.ceil(bytes / 4);
}

const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v) : 0);

/** An OpenAI `usage` object as tokens; null when `usage` is not one. */
export function readProviderUsage(usage: unknown): TokenCount | null {
  if (typeof usage !== 'object' || usage === null) return null;
  const u = usage as { prompt_tokens?: unknown; completion_tokens?: unknown };
  return { input: count(u.prompt_tokens), output: count(u.completion_tokens) };
}
