/**
 * The reference LLM agent: a tool loop over the model gateway (used when the platform has a model
 * provider; without one the agent answers offline, agent.ts). Each step streams one chat
 * completion; its text deltas go to the user as they come, its tool calls run here, in the
 * sandbox, and their results go back to the model; AGENT_MAX_STEPS model calls end a runaway
 * loop. Plain OpenAI wire format over the agent's own gateway channel (no SDK: every
 * millisecond of the agent's start-up is a cold run's).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import {
  AGENT_DESCRIPTION_MAX_CHARS,
  AGENT_INSTRUCTIONS_MAX_CHARS,
  AGENT_MAX_STEPS,
  AGENT_NAME_MAX_CHARS,
  AGENT_TOOLS,
  BUTTONS_MAX,
  COMPONENT_MAX_JSON_BYTES,
  TABLE_MAX_COLUMNS,
  TABLE_MAX_ROWS,
  componentJsonSize,
  type AgentTool,
  type CreatedAgent,
  type HistoryEntry,
  type KnownComponent,
  type RunAgent,
} from '@agent-platform/contract';
import type { ModelGateway, ResponseSink } from './model-gateway.ts';

export interface LlmRequest {
  message: string;
  history: HistoryEntry[];
  model: string;
  agent: RunAgent | null;
}

/** What the loop needs from the agent: the reply, and running code with streamed output. */
export interface LlmHost {
  gateway: ModelGateway;
  say(delta: string): void;
  /** Runs code in /workspace, streaming its output to the user; resolves with output and status. */
  runCode(language: string, code: string): Promise<{ output: string; status: string }>;
  workspace: string;
}

export interface LlmOutcome {
  status: 'ok' | 'error';
  component: KnownComponent | null;
  agent: CreatedAgent | null;
  workspaceChanged: boolean;
}

/** What a tool result given back to the model may hold, at most (the rest is cut). */
const TOOL_RESULT_MAX_CHARS = 16 * 1024;
/** Bytes read_file reads and write_file writes, at most. */
const FILE_MAX_BYTES = 256 * 1024;

const DEFAULT_INSTRUCTIONS = [
  'You are an agent of the agent platform. You work in a sandbox with no network access;',
  'files in /workspace persist between the messages of this user.',
  'Use run_code to compute, inspect files and check your answers; answer concisely.',
].join(' ');

const TOOL_DEFINITIONS: Record<AgentTool, { description: string; parameters: object }> = {
  run_code: {
    description: 'Run code in /workspace (no network). Returns its output and exit status.',
    parameters: {
      type: 'object',
      properties: {
        language: { type: 'string', enum: ['sh', 'python', 'js'] },
        code: { type: 'string' },
      },
      required: ['language', 'code'],
    },
  },
  read_file: {
    description: 'Read a text file of /workspace.',
    parameters: {
      type: 'object',
      properties: { path: { type: 'string', description: 'relative to /workspace' } },
      required: ['path'],
    },
  },
  write_file: {
    description: 'Write a text file in /workspace (created or replaced).',
    parameters: {
      type: 'object',
      properties: { path: { type: 'string' }, content: { type: 'string' } },
      required: ['path', 'content'],
    },
  },
  create_agent: {
    description: 'Create a new agent for the user, with a name, a description and its instructions.',
    parameters: {
      type: 'object',
      properties: {
        name: { type: 'string' },
        description: { type: 'string' },
        instructions: { type: 'string' },
      },
      required: ['name', 'description', 'instructions'],
    },
  },
  show_component: {
    description: 'Show the user a card, a table or buttons under the reply.',
    parameters: {
      type: 'object',
      properties: {
        type: { type: 'string', enum: ['card', 'table', 'buttons'] },
        title: { type: 'string' },
        body: { type: 'string' },
        columns: { type: 'array', items: { type: 'string' } },
        rows: { type: 'array', items: { type: 'array', items: { type: 'string' } } },
        buttons: { type: 'array', items: { type: 'string' } },
      },
      required: ['type'],
    },
  },
};

interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}
type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: unknown[] }
  | { role: 'tool'; tool_call_id: string; content: string };

class ModelCallError extends Error {
  override name = 'ModelCallError';
}

/** One streamed chat completion: text deltas to `onText`; resolves with the tool calls. */
function streamCompletion(
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
          if (raw.length < 64 * 1024) raw += chunk;
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
  return `the model call failed (${status})${message ? `: ${message.slice(0, 500)}` : ''}`;
}

function clip(s: string, max = TOOL_RESULT_MAX_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max)}\n[cut: ${s.length - max} more characters]`;
}

/** A path of /workspace (relative or absolute); null when it points outside. */
function workspacePath(workspace: string, path: unknown): string | null {
  if (typeof path !== 'string' || path === '' || path.length > 1024) return null;
  const full = resolve(workspace, path);
  return full === workspace || full.startsWith(workspace + sep) ? full : null;
}

const str = (v: unknown, max: number) => (typeof v === 'string' ? v.slice(0, max) : '');
const strings = (v: unknown, max: number) =>
  Array.isArray(v) ? v.slice(0, max).map((x) => (typeof x === 'string' ? x : String(x))) : [];

/** The component of a show_component call, checked against the vocabulary (null: not valid). */
export function componentOf(args: Record<string, unknown>): KnownComponent | null {
  let c: KnownComponent | null = null;
  if (args.type === 'card' && typeof args.title === 'string' && args.title !== '') {
    c = { type: 'card', title: args.title, body: str(args.body, 10_000) };
  } else if (args.type === 'table') {
    const columns = strings(args.columns, TABLE_MAX_COLUMNS);
    const rows = (Array.isArray(args.rows) ? args.rows : [])
      .slice(0, TABLE_MAX_ROWS)
      .map((r) => ({ cells: columns.map((_, i) => (Array.isArray(r) ? String(r[i] ?? '') : '')) }));
    if (columns.length > 0) c = { type: 'table', columns, rows };
  } else if (args.type === 'buttons') {
    const labels = strings(args.buttons, BUTTONS_MAX).filter((l) => l !== '');
    if (labels.length > 0) c = { type: 'buttons', buttons: labels.map((label) => ({ label, value: label })) };
  }
  return c && componentJsonSize(c) <= COMPONENT_MAX_JSON_BYTES ? c : null;
}

/** The tool loop. Never throws: a failed model call ends the run with its reason in the reply. */
export async function runLlm(req: LlmRequest, host: LlmHost): Promise<LlmOutcome> {
  const allowed = new Set<AgentTool>(req.agent ? req.agent.tools : AGENT_TOOLS);
  const tools = AGENT_TOOLS.filter((t) => allowed.has(t)).map((name) => ({
    type: 'function',
    function: { name, ...TOOL_DEFINITIONS[name] },
  }));
  const system = req.agent
    ? `You are ${req.agent.name}. ${req.agent.instructions}\n\n${DEFAULT_INSTRUCTIONS}`
    : DEFAULT_INSTRUCTIONS;
  const messages: ChatMessage[] = [
    { role: 'system', content: system },
    ...req.history.map((h): ChatMessage =>
      h.role === 'user' ? { role: 'user', content: h.text } : { role: 'assistant', content: h.text },
    ),
    { role: 'user', content: req.message },
  ];
  const out: LlmOutcome = { status: 'ok', component: null, agent: null, workspaceChanged: false };
  let spoke = false;
  let afterTools = false;
  const say = (delta: string) => {
    spoke = true;
    host.say(delta);
  };
  const onText = (delta: string) => {
    say(afterTools ? `\n\n${delta}` : delta);
    afterTools = false;
  };
  for (let step = 1; step <= AGENT_MAX_STEPS; step++) {
    let answer: { text: string; toolCalls: ToolCall[] };
    try {
      answer = await streamCompletion(
        host.gateway,
        { model: req.model, messages, stream: true, ...(tools.length > 0 ? { tools } : {}) },
        onText,
      );
    } catch (err) {
      say(`${spoke ? '\n\n' : ''}${err instanceof Error ? err.message : String(err)}`);
      return { ...out, status: 'error' };
    }
    if (answer.toolCalls.length === 0) return out;
    messages.push({
      role: 'assistant',
      content: answer.text || null,
      tool_calls: answer.toolCalls.map((c, i) => ({
        id: c.id || `call_${step}_${i}`,
        type: 'function',
        function: { name: c.name, arguments: c.arguments },
      })),
    });
    for (const [i, call] of answer.toolCalls.entries()) {
      const result = await runTool(call, allowed, host, out, say);
      messages.push({ role: 'tool', tool_call_id: call.id || `call_${step}_${i}`, content: clip(result) });
    }
    afterTools = true;
  }
  say(`${spoke ? '\n\n' : ''}[stopped: the step limit of ${AGENT_MAX_STEPS} model calls was reached]`);
  return out;
}

async function runTool(
  call: ToolCall,
  allowed: Set<AgentTool>,
  host: LlmHost,
  out: LlmOutcome,
  say: (delta: string) => void,
): Promise<string> {
  if (!(AGENT_TOOLS as readonly string[]).includes(call.name) || !allowed.has(call.name as AgentTool)) {
    return `error: no tool named ${JSON.stringify(call.name.slice(0, 80))} is available`;
  }
  let args: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(call.arguments || '{}');
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error();
    args = parsed as Record<string, unknown>;
  } catch {
    return 'error: the arguments must be a JSON object';
  }
  switch (call.name as AgentTool) {
    case 'run_code': {
      const language = args.language;
      if (language !== 'sh' && language !== 'python' && language !== 'js') {
        return 'error: language must be sh, python or js';
      }
      if (typeof args.code !== 'string') return 'error: code must be a string';
      out.workspaceChanged = true;
      say(`\n\n\`\`\`${language}\n${args.code.replace(/\n$/, '')}\n\`\`\``);
      const { output, status } = await host.runCode(language, args.code);
      return `${status}\n${output}`;
    }
    case 'read_file': {
      const path = workspacePath(host.workspace, args.path);
      if (!path) return 'error: the path must be inside /workspace';
      say(`\n\n[read_file ${path}]`);
      try {
        const data = await readFile(path);
        const text = data.subarray(0, FILE_MAX_BYTES).toString('utf8');
        return data.length > FILE_MAX_BYTES ? `${text}\n[cut at ${FILE_MAX_BYTES} bytes]` : text;
      } catch (err) {
        return `error: ${(err as NodeJS.ErrnoException).code ?? 'cannot read'}`;
      }
    }
    case 'write_file': {
      const path = workspacePath(host.workspace, args.path);
      if (!path) return 'error: the path must be inside /workspace';
      if (typeof args.content !== 'string') return 'error: content must be a string';
      if (Buffer.byteLength(args.content) > FILE_MAX_BYTES) return `error: at most ${FILE_MAX_BYTES} bytes`;
      out.workspaceChanged = true;
      say(`\n\n[write_file ${path}, ${Buffer.byteLength(args.content)} bytes]`);
      try {
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, args.content);
        return 'written';
      } catch (err) {
        return `error: ${(err as NodeJS.ErrnoException).code ?? 'cannot write'}`;
      }
    }
    case 'create_agent': {
      const name = str(args.name, 1000).trim();
      if (name === '' || name.length > AGENT_NAME_MAX_CHARS) {
        return `error: the name must be 1-${AGENT_NAME_MAX_CHARS} characters`;
      }
      out.agent = {
        name,
        description: str(args.description, AGENT_DESCRIPTION_MAX_CHARS),
        instructions: str(args.instructions, AGENT_INSTRUCTIONS_MAX_CHARS),
      };
      say(`\n\nCreated agent "${name}".`);
      return 'created';
    }
    case 'show_component': {
      const component = componentOf(args);
      if (!component) return 'error: not a valid card, table or buttons component';
      out.component = component;
      return 'shown';
    }
  }
}
