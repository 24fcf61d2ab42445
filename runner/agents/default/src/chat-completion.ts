/**
 * One streamed chat completion over the agent's own model gateway channel, in the plain OpenAI
 * wire format (no SDK: every millisecond of the agent's start-up is a cold run's).
 */
import type { ModelGateway, ResponseSink } from './model-gateway.ts';

/** A tool call as the model streamed it (its arguments: JSON text, not yet checked). */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: unknown[] }
  | { role: 'tool'; tool_call_id: string; content: string };

/** A model call that gave no usable answer; its message says why, for the reply. */
export class ModelCallError extends Error {
  override name = 'ModelCallError';
}

/** Characters of an error answer kept to find its message (OpenAI's are far shorter). */
const ERROR_BODY_KEPT_CHARS = 64 * 1024;
/** Characters of a provider's error message quoted in the reply. */
const ERROR_MESSAGE_QUOTED_CHARS = 500;

/**
 * One streamed chat completion: text deltas go to `onText` as they come; resolves with the whole
 * text and the tool calls, rejects with a ModelCallError.
 */
export function streamCompletion(
  gateway: ModelGateway,
  body: object,
  onText: (delta: string) => void,
): Promise<{ text: string; toolCalls: ToolCall[] }> {
  return new Promise((resolvePromise, reject) => {
    let status = 0;
    let sse = false;
    let buffer = '';
    let raw = '';
    let text = '';
    let failed: Error | null = null;
    const calls: ToolCall[] = [];
    const onLine = (line: string) => {
      if (failed || !line.startsWith('data:')) return;
      const data = line.slice(5).trim();
      if (data === '' || data === '[DONE]') return;
      let chunk: { choices?: Array<{ delta?: { content?: unknown; tool_calls?: unknown } }> };
      try {
        chunk = JSON.parse(data) as typeof chunk;
      } catch {
        failed = new ModelCallError('the model answered with something that is not JSON');
        return;
      }
      const delta = Array.isArray(chunk.choices) ? chunk.choices[0]?.delta : undefined;
      if (!delta) return;
      if (typeof delta.content === 'string' && delta.content !== '') {
        text += delta.content;
        onText(delta.content);
      }
      if (Array.isArray(delta.tool_calls)) {
        for (const raw of delta.tool_calls as Array<Record<string, unknown>>) {
          const index = typeof raw.index === 'number' ? raw.index : calls.length;
          const fn = (raw.function ?? {}) as { name?: unknown; arguments?: unknown };
          const call = (calls[index] ??= { id: '', name: '', arguments: '' });
          if (typeof raw.id === 'string') call.id = raw.id;
          if (typeof fn.name === 'string') call.name += fn.name;
          if (typeof fn.arguments === 'string') call.arguments += fn.arguments;
        }
      }
    };
    const sink: ResponseSink = {
      head: (s, contentType) => {
        status = s;
        sse = contentType.startsWith('text/event-stream');
      },
      data: (chunk) => {
        if (status !== 200 || !sse) {
          if (raw.length < ERROR_BODY_KEPT_CHARS) raw += chunk;
          return;
        }
        buffer += chunk;
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        lines.forEach(onLine);
      },
      end: () => {
        if (buffer) onLine(buffer);
        if (status !== 200) return reject(new ModelCallError(describeFailure(status, raw)));
        if (!sse) return reject(new ModelCallError('the model did not stream its answer'));
        if (failed) return reject(failed);
        resolvePromise({ text, toolCalls: calls.filter((c) => c.name !== '') });
      },
      abort: (message) => reject(new ModelCallError(message)),
    };
    gateway.request('POST', '/v1/chat/completions', JSON.stringify(body), sink);
  });
}

function describeFailure(status: number, raw: string): string {
  let message = '';
  try {
    const j = JSON.parse(raw) as { error?: { message?: unknown } };
    if (typeof j.error?.message === 'string') message = j.error.message;
  } catch {
    // not JSON
  }
  return `the model call failed (${status})${message ? `: ${message.slice(0, ERROR_MESSAGE_QUOTED_CHARS)}` : ''}`;
}
