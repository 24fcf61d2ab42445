/**
 * The agent's input (contract/src/agent-protocol.ts): lines on stdin, each a request (or, during
 * a run, a model response, model-gateway.ts), and what the agent checks of a request.
 */
import {
  AGENT_PROTOCOL_VERSION,
  AGENT_REQUEST_MAX_BYTES,
  LineSplitter,
  type AgentRequest,
  type HistoryEntry,
  type RunAgent,
} from '@agent-platform/contract';

/** A line of input, or why there is none (it was too long). */
export type InputLine = { line: string } | { error: string };

/**
 * Lines from `input` (stdin), one at a time, until EOF. The runner writes one request line per
 * run and keeps stdin open between runs, so this agent process serves every run of a warm
 * sandbox. A line longer than the protocol's bound is dropped (never held in memory) and yields
 * an error.
 */
export async function* inputLines(input: AsyncIterable<Buffer>): AsyncGenerator<InputLine> {
  const decoder = new TextDecoder();
  // The splitter counts characters: a line past the bound in characters is past it in bytes.
  const splitter = new LineSplitter(AGENT_REQUEST_MAX_BYTES);
  const tooLong = { error: `Invalid request: longer than ${AGENT_REQUEST_MAX_BYTES} bytes.` };
  for await (const chunk of input) {
    for (const line of splitter.push(decoder.decode(chunk, { stream: true }))) {
      yield line === null ? tooLong : { line };
    }
  }
  const last = splitter.end();
  if (last !== null) yield { line: last };
}

/** What the agents use of a request. */
export type ParsedRequest = Pick<AgentRequest, 'message' | 'history' | 'model' | 'agent'>;

/**
 * What really validates a request is the runner: it writes this line itself (sandbox/engine.ts),
 * from a run request its HTTP API checked with the contract's runRequestSchema (message, history,
 * agent) and a model of its allowlist. The agent checks only what it relies on, the protocol
 * version and the message, and leaves zod out of its bundle: zod and the contract's schemas
 * would add about 13 ms to every sandbox start (contract/src/protocol.ts).
 */
export function parseRequest(line: string): { request: ParsedRequest } | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { error: 'Invalid request: the line is not JSON.' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { error: 'Invalid request: expected a JSON object.' };
  }
  const { protocol, message, history, model, agent } = json as Record<string, unknown>;
  if (protocol !== AGENT_PROTOCOL_VERSION) {
    return {
      error: `Invalid request: unsupported protocol ${JSON.stringify(protocol) ?? 'undefined'} (expected ${AGENT_PROTOCOL_VERSION}).`,
    };
  }
  if (typeof message !== 'string') return { error: 'Invalid request: "message" must be a string.' };
  return {
    request: {
      message,
      history: Array.isArray(history) ? (history as HistoryEntry[]) : [],
      model: typeof model === 'string' && model !== '' ? model : null,
      agent: typeof agent === 'object' && agent !== null ? (agent as RunAgent) : null,
    },
  };
}
