import type { CallReservation } from './model-run.ts';
import { estimateTokens, readProviderUsage, type TokenCount } from './token-count.ts';

/** What the meter saw of one provider answer. */
export interface MeteredAnswer {
  /** The usage the provider reported, if it did. */
  reported: TokenCount | null;
  receivedBytes: number;
  /** The answer arrived to its end: not cut by the byte cap, a deadline, the run or the provider. */
  whole: boolean;
  /** What is still to pass on: the tail of a stream, or a JSON answer whole. */
  rest: string;
}

export interface MeterOptions {
  /** A server-sent event stream (else JSON or anything else, passed on whole at the end). */
  sse: boolean;
  /** A 2xx answer (only those carry a usage worth reading). */
  ok: boolean;
  /** Keep the usage-only chunk of a stream from the sandbox (it did not ask for it). */
  hideUsageChunk: boolean;
  /** Bytes passed on at most; the rest is cut. */
  maxBytes: number;
}

/**
 * Reads a provider answer as it comes, passing server-sent events on whole lines at a time (so
 * the usage chunk can be read, and kept from a sandbox that did not ask for it) and keeping a
 * JSON answer for the end, where its `usage` is read. Never throws: an answer that breaks off
 * (the run ended, the deadline, the provider) ends the metering with what arrived.
 */
export async function meterAnswer(
  body: AsyncIterable<Uint8Array>,
  options: MeterOptions,
  pass: (chunk: string) => void,
): Promise<MeteredAnswer> {
  let reported: TokenCount | null = null;
  const take = (usage: unknown) => {
    reported = readProviderUsage(usage) ?? reported;
  };
  let received = 0;
  let whole = false;
  let pending = ''; // an SSE line not yet complete, or the JSON body so far
  try {
    const decoder = new TextDecoder();
    for await (const chunk of body) {
      received += chunk.byteLength;
      if (received > options.maxBytes) break;
      pending += decoder.decode(chunk, { stream: true });
      if (!options.sse) continue;
      const cut = pending.lastIndexOf('\n');
      if (cut === -1) continue;
      const lines = pending.slice(0, cut + 1);
      pending = pending.slice(cut + 1);
      pass(usageLines(lines, options.hideUsageChunk, take));
    }
    whole = received <= options.maxBytes;
    if (options.sse) pending = usageLines(pending, options.hideUsageChunk, take);
    else if (options.ok && whole) {
      try {
        take((JSON.parse(pending) as { usage?: unknown }).usage);
      } catch {
        // Not JSON: passed on as it came; the usage is estimated.
      }
    }
  } catch {
    // The run ended or the provider broke off: the sandbox gets what arrived.
  }
  return { reported, receivedBytes: received, whole, rest: pending };
}

/** Reads the usage of SSE lines; drops the usage-only chunk when the sandbox did not ask for it. */
export function usageLines(lines: string, hide: boolean, take: (usage: unknown) => void): string {
  if (!lines.includes('"usage"')) return lines;
  const out: string[] = [];
  const split = lines.split('\n');
  for (let i = 0; i < split.length; i++) {
    const line = split[i] ?? '';
    if (line.startsWith('data: {') && line.includes('"usage"')) {
      try {
        const chunk = JSON.parse(line.slice(6)) as { usage?: unknown; choices?: unknown };
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

/**
 * What a call is charged: the usage its provider reported; else, for an answer that arrived
 * whole, its prompt estimate and its answer's bytes as tokens (at most its cap); else (cut off:
 * the provider may have generated up to its cap before the connection closed) its reservation.
 */
export function chargeFor(
  call: CallReservation,
  answer: Pick<MeteredAnswer, 'reported' | 'receivedBytes' | 'whole'>,
): TokenCount {
  if (answer.reported) return answer.reported;
  if (answer.whole) {
    return {
      input: call.promptTokens,
      output: Math.min(estimateTokens(answer.receivedBytes), call.completionTokens),
    };
  }
  return { input: call.promptTokens, output: call.completionTokens };
}
