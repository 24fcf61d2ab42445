/**
 * Constants and helpers of the agent protocol that need no zod, so that the default agent (which
 * starts once per sandbox) can import them without evaluating any schema: zod and the contract's
 * schemas cost about 13 ms per process start, measured on the bundled agent (28 -> 41 ms).
 */

/** Version of the request lines the runner writes to an agent's stdin. */
export const AGENT_PROTOCOL_VERSION = 1;

/** Size of a component as JSON (UTF-16 code units; close enough to bytes for a bound). */
export function componentJsonSize(component: unknown): number {
  return JSON.stringify(component).length;
}

/**
 * The model gateway (issue 10): code in a sandbox reaches models through the runner, with no
 * network and no key. The agent listens on this loopback port inside the sandbox (a sandbox has
 * its own loopback even with --network none), and the sandbox environment points OpenAI-style
 * clients at it. Each HTTP request becomes a `model_request` line on the agent's stdout; the
 * runner forwards it to the configured provider with its key and answers with `model_response`
 * lines on the agent's stdin (the channel every run already has).
 */
export const MODEL_GATEWAY_PORT = 4180;
export const MODEL_GATEWAY_BASE_URL = `http://127.0.0.1:${MODEL_GATEWAY_PORT}/v1`;
/** What the sandbox gets as OPENAI_API_KEY: SDKs require one; the runner ignores it. */
export const MODEL_GATEWAY_PLACEHOLDER_KEY = 'sk-sandbox-placeholder-not-a-key';
/** Largest model request body a sandbox may send, in bytes. */
export const MODEL_REQUEST_MAX_BYTES = 256 * 1024;
/** The tools the reference LLM agent offers a model; a user's agent may allow fewer. */
export const AGENT_TOOLS = ['run_code', 'read_file', 'write_file', 'create_agent', 'show_component'] as const;
export type AgentTool = (typeof AGENT_TOOLS)[number];
/** Model calls (tool-loop steps) the reference agent makes in one run at most. */
export const AGENT_MAX_STEPS = 8;
/** Characters of a model name. */
export const MODEL_NAME_MAX_CHARS = 200;

/** The paths the gateway serves. */
export const MODEL_PATHS = ['/v1/chat/completions', '/v1/models'] as const;
export type ModelPath = (typeof MODEL_PATHS)[number];

/** A runner -> agent line: part of the answer to one model request (first line: status). */
export interface ModelResponseLine {
  type: 'model_response';
  id: string;
  status?: number;
  contentType?: string;
  chunk?: string;
  done: boolean;
}

/** The body of every error the gateway answers, on either side: OpenAI's error shape. */
export function modelErrorBody(message: string, type: string): string {
  return JSON.stringify({ error: { message, type } });
}

/** A whole error answer to one model request, as the one line the runner writes to the agent. */
export function modelErrorLine(id: string, status: number, type: string, message: string): ModelResponseLine {
  return {
    type: 'model_response',
    id,
    status,
    contentType: 'application/json',
    chunk: modelErrorBody(message, type),
    done: true,
  };
}
