/**
 * The default agent: a deterministic, offline stand-in for an AI agent.
 *
 * Protocol (see contract/src/agent-protocol.ts):
 * - stdin: one line of JSON (the request) per run; stdin stays open between runs (warm sandbox).
 * - stdout: newline-delimited JSON events: `text` deltas, then one final `result`.
 *
 * Behaviour: answers `Test response: <message>`, runs fenced sh/bash/python/js code blocks in
 * /workspace, and understands `/create-agent <name>: <description>` and `/component ...` lines.
 * Only Node built-ins and the zod-free parts of the contract (bundled into dist/agent.js): it
 * starts once per sandbox, and every millisecond of start-up is a cold run's.
 */
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { runLlm } from './llm.ts';
import { ModelGateway } from './model-gateway.ts';
import {
  AGENT_DESCRIPTION_MAX_CHARS,
  AGENT_INSTRUCTIONS_MAX_CHARS,
  AGENT_NAME_MAX_CHARS,
  AGENT_REQUEST_MAX_BYTES,
  BUTTONS_MAX,
  COMPONENT_MAX_JSON_BYTES,
  LineSplitter,
  REPLY_MAX_CHARS,
  TABLE_MAX_COLUMNS,
  TABLE_MAX_ROWS,
  componentJsonSize,
  AGENT_PROTOCOL_VERSION,
  type AgentEvent,
  type AgentRequest,
  type CreatedAgent,
  type HistoryEntry,
  type RunAgent,
  type KnownComponent,
  type ResultEvent,
} from '@agent-platform/contract';

interface CodeBlock {
  lang: string;
  code: string;
}

/** A line of the message outside code blocks; `fence` marks an opening fence line. */
interface ProseLine {
  text: string;
  fence: boolean;
}

const WORKSPACE = '/workspace';
/** Output of one code block kept in the reply (the agent's own choice, not a contract limit). */
const MAX_OUTPUT_BYTES = 64 * 1024;
const REPLY_TRUNCATED = '\n[reply truncated]';

const SHELL = { command: 'sh', args: ['-s'] };
const BASH = { command: 'bash', args: ['-s'] };
// -u: unbuffered, so print() output and tracebacks arrive in the order they happen.
const PYTHON = { command: 'python3', args: ['-u', '-'] };
const NODE = { command: process.execPath, args: ['-'] };
const INTERPRETERS: ReadonlyMap<string, { command: string; args: string[] }> = new Map([
  ['sh', SHELL],
  ['shell', SHELL],
  ['bash', BASH],
  ['python', PYTHON],
  ['python3', PYTHON],
  ['py', PYTHON],
  ['js', NODE],
  ['javascript', NODE],
  ['node', NODE],
]);

// ---------------------------------------------------------------------------------------------
// Output

function writeEvent(event: AgentEvent): void {
  process.stdout.write(JSON.stringify(event) + '\n');
}

/** The loopback model gateway (model-gateway.ts); it forwards only while a run is in progress. */
const gateway = new ModelGateway(writeEvent);

/** The reply so far; every piece is also emitted as a `text` delta. */
const reply = { text: '', full: false };

function say(delta: string): void {
  if (reply.full || delta === '') return;
  const room = REPLY_MAX_CHARS - REPLY_TRUNCATED.length - reply.text.length;
  if (delta.length > room) {
    delta = delta.slice(0, Math.max(0, room)) + REPLY_TRUNCATED;
    reply.full = true;
  }
  reply.text += delta;
  writeEvent({ type: 'text', delta });
}

/**
 * Ends one request. `workspaceChanged` tells the runner whether it must save /workspace: only
 * code blocks can change it. The agent then waits for the next request line (warm sandbox).
 */
function finish(
  status: NonNullable<ResultEvent['status']>,
  component: KnownComponent | null,
  agent: CreatedAgent | null,
  workspaceChanged = false,
): void {
  gateway.end(); // nothing may be written after the result: the runner stops reading
  writeEvent({ type: 'result', text: reply.text, status, component, agent, workspaceChanged });
  reply.text = '';
  reply.full = false;
}

function fail(message: string): void {
  process.stderr.write(`agent: ${message}\n`);
  say(message);
  finish('error', null, null);
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

// ---------------------------------------------------------------------------------------------
// Input

/**
 * Request lines from stdin, one at a time, until EOF. The runner writes one line per run and
 * keeps stdin open between runs, so this agent process serves every run of a warm sandbox.
 * A line longer than the protocol's bound is dropped (never held in memory) and answered with an
 * error.
 */
async function* requestLines(): AsyncGenerator<{ line: string } | { error: string }> {
  const decoder = new TextDecoder();
  const splitter = new LineSplitter(AGENT_REQUEST_MAX_BYTES);
  const tooLong = { error: `Invalid request: longer than ${AGENT_REQUEST_MAX_BYTES} bytes.` };
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    for (const line of splitter.push(decoder.decode(chunk, { stream: true }))) {
      yield line === null ? tooLong : { line };
    }
  }
  const last = splitter.end();
  if (last !== null) yield { line: last };
}

/**
 * The runner validated this line with the contract's agentRequestSchema before writing it; the
 * agent checks only what it relies on (the protocol version and the message) and does not load
 * zod, which would add about 13 ms to every sandbox start (see contract/src/protocol.ts).
 */
type ParsedRequest = Pick<AgentRequest, 'message' | 'history' | 'model' | 'agent'>;

function parseRequest(line: string): { request: ParsedRequest } | { error: string } {
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

// ---------------------------------------------------------------------------------------------
// Message syntax

const OPEN_FENCE = /^ {0,3}(`{3,})[ \t]*([^`\s]*)[^`]*$/;

/** Splits a message into code blocks and the lines outside them (opening fences included). */
function scanMessage(message: string): { blocks: CodeBlock[]; prose: ProseLine[] } {
  const blocks: CodeBlock[] = [];
  const prose: ProseLine[] = [];
  const lines = message.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const open = OPEN_FENCE.exec(line);
    if (!open) {
      prose.push({ text: line, fence: false });
      continue;
    }
    prose.push({ text: line, fence: true });
    const ticks = open[1]?.length ?? 3;
    const close = new RegExp(`^ {0,3}\`{${ticks},}[ \\t]*$`);
    const code: string[] = [];
    // An unclosed block runs to the end of the message (as in CommonMark).
    for (i++; i < lines.length && !close.test(lines[i] ?? ''); i++) code.push(lines[i] ?? '');
    blocks.push({ lang: (open[2] ?? '').toLowerCase(), code: code.join('\n') });
  }
  return { blocks, prose };
}

const CREATE_AGENT = /^\s*\/create-agent(?:\s+(.*))?$/;
const COMPONENT = /^\s*\/component(?:\s+(.*))?$/;

function isCommand(line: string): boolean {
  return CREATE_AGENT.test(line) || COMPONENT.test(line);
}

/** `/create-agent <name>: <description>`, then instruction lines up to a fence or command. */
function parseCreateAgent(prose: ProseLine[]): { agent: CreatedAgent } | { error: string } | null {
  const start = prose.findIndex((l) => !l.fence && CREATE_AGENT.test(l.text));
  if (start === -1) return null;
  const rest = (CREATE_AGENT.exec(prose[start]?.text ?? '')?.[1] ?? '').trim();
  const colon = rest.indexOf(':');
  if (colon === -1) return { error: 'expected "/create-agent <name>: <description>"' };
  const name = rest.slice(0, colon).trim();
  const description = rest.slice(colon + 1).trim();
  if (name.length < 1 || name.length > AGENT_NAME_MAX_CHARS)
    return { error: `the name must be 1-${AGENT_NAME_MAX_CHARS} characters` };
  if (description.length > AGENT_DESCRIPTION_MAX_CHARS) {
    return { error: `the description must be at most ${AGENT_DESCRIPTION_MAX_CHARS} characters` };
  }
  const lines: string[] = [];
  for (const line of prose.slice(start + 1)) {
    if (line.fence || isCommand(line.text)) break;
    lines.push(line.text);
  }
  let instructions = lines.join('\n').trim();
  if (instructions === '') instructions = `You are ${name}. ${description}`.trim();
  return { agent: { name, description, instructions: instructions.slice(0, AGENT_INSTRUCTIONS_MAX_CHARS) } };
}

/** Splits one CSV-ish line: commas separate cells, "double quotes" may wrap a cell. */
function splitCsv(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  let inQuotes = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (inQuotes) {
      if (ch === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') {
        inQuotes = false;
      } else {
        cell += ch;
      }
    } else if (ch === '"' && cell.trim() === '' && !quoted) {
      cell = '';
      quoted = true;
      inQuotes = true;
    } else if (ch === ',') {
      cells.push(quoted ? cell : cell.trim());
      cell = '';
      quoted = false;
    } else if (!quoted) {
      cell += ch;
    }
  }
  cells.push(quoted ? cell : cell.trim());
  return cells;
}

/** The first `/component` line; `unknown` is its kind when it is unknown or malformed. */
function parseComponent(prose: ProseLine[]): { component: KnownComponent } | { unknown: string } | null {
  const start = prose.findIndex((l) => !l.fence && COMPONENT.test(l.text));
  if (start === -1) return null;
  const rest = (COMPONENT.exec(prose[start]?.text ?? '')?.[1] ?? '').trim();
  const kind = rest.split(/\s/, 1)[0] ?? '';
  const args = rest.slice(kind.length).trim();
  let component: KnownComponent | null = null;
  switch (kind.toLowerCase()) {
    case 'card': {
      const colon = args.indexOf(':');
      const title = colon === -1 ? '' : args.slice(0, colon).trim();
      if (title !== '') component = { type: 'card', title, body: args.slice(colon + 1).trim() };
      break;
    }
    case 'table': {
      const lines: string[] = [];
      for (const line of prose.slice(start + 1)) {
        if (line.fence || line.text.trim() === '') break;
        lines.push(line.text);
      }
      const [header, ...body] = lines;
      if (header === undefined) break;
      const columns = splitCsv(header).slice(0, TABLE_MAX_COLUMNS);
      const rows = body
        .slice(0, TABLE_MAX_ROWS)
        .map((line) => ({ cells: columns.map((_, i) => splitCsv(line)[i] ?? '') }));
      component = { type: 'table', columns, rows };
      break;
    }
    case 'buttons': {
      const labels = args
        .split('|')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      if (labels.length >= 1 && labels.length <= BUTTONS_MAX) {
        component = { type: 'buttons', buttons: labels.map((label) => ({ label, value: label })) };
      }
      break;
    }
  }
  if (component === null || componentJsonSize(component) > COMPONENT_MAX_JSON_BYTES) return { unknown: kind };
  return { component };
}

// ---------------------------------------------------------------------------------------------
// Code execution

/**
 * Runs one block with its code on stdin; never rejects. Its output (stdout and stderr, as they
 * interleave) goes to `onOutput` a line at a time while it runs, up to MAX_OUTPUT_BYTES.
 */
function runBlock(
  command: string,
  args: string[],
  code: string,
  onOutput: (text: string) => void,
): Promise<{ output: string; status: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const decoder = new StringDecoder('utf8');
    let line = ''; // output after the last newline, not yet passed on
    let kept = 0;
    let truncated = false;
    let settled = false;
    const settle = (status: string, failure?: string): void => {
      if (settled) return;
      settled = true;
      line += decoder.end();
      if (failure) line += failure;
      if (truncated) line += `${line === '' || line.endsWith('\n') ? '' : '\n'}[output truncated]`;
      if (line) onOutput(line);
      let output = failure ?? Buffer.concat(chunks).toString('utf8');
      if (output.endsWith('\n')) output = output.slice(0, -1);
      if (truncated) output += (output === '' ? '' : '\n') + '[output truncated]';
      resolve({ output, status });
    };
    const onData = (chunk: Buffer): void => {
      // Past the limit keep reading (and dropping) so the child never blocks on a full pipe.
      if (kept < MAX_OUTPUT_BYTES) {
        const part = chunk.subarray(0, MAX_OUTPUT_BYTES - kept);
        chunks.push(part);
        kept += part.length;
        if (part.length < chunk.length) truncated = true;
        line += decoder.write(part);
        const cut = line.lastIndexOf('\n');
        if (cut !== -1) {
          onOutput(line.slice(0, cut + 1));
          line = line.slice(cut + 1);
        }
      } else {
        truncated = true;
      }
    };
    let child;
    try {
      child = spawn(command, args, { cwd: WORKSPACE, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      settle('exit -1', `cannot start ${command}: ${describeError(err)}`);
      return;
    }
    const started = child;
    started.on('error', (err) => {
      // After a successful start an 'error' (e.g. a failed kill) changes nothing: wait for 'close'.
      if (started.pid === undefined) settle('exit -1', `cannot start ${command}: ${describeError(err)}`);
    });
    started.on('close', (exitCode, signal) => settle(signal ? `signal ${signal}` : `exit ${exitCode ?? -1}`));
    started.stdout.on('data', onData);
    started.stderr.on('data', onData);
    // The child may exit without reading all of its code (EPIPE): that is its business.
    started.stdin.on('error', () => {});
    try {
      started.stdin.end(code.endsWith('\n') ? code : code + '\n');
    } catch {
      // Reported through 'error'/'close'.
    }
  });
}

/**
 * Runs a block and shows it in the reply as it runs: a ```output (<lang>) fence, the output line
 * by line, then the closing fence and `(exit <code>)` once the block has ended.
 */
async function runShown(lang: string, code: string): Promise<{ output: string; status: string }> {
  const interpreter = INTERPRETERS.get(lang);
  if (!interpreter) return { output: `no interpreter for ${lang}`, status: 'exit -1' };
  say(`\n\n\`\`\`output (${lang})\n`);
  let atLineStart = true;
  const result = await runBlock(interpreter.command, interpreter.args, code, (text) => {
    say(text);
    atLineStart = text.endsWith('\n');
  });
  say(`${atLineStart ? '' : '\n'}\`\`\`\n(${result.status})`);
  return result;
}

// ---------------------------------------------------------------------------------------------

async function answer(input: { line: string } | { error: string }): Promise<void> {
  if ('error' in input) return fail(input.error);
  if (input.line.trim() === '') return;
  const parsed = parseRequest(input.line);
  if ('error' in parsed) return fail(parsed.error);
  const { message, model } = parsed.request;
  if (model !== null) {
    // A model provider is configured: the reference LLM agent (llm.ts).
    const out = await runLlm(
      { message, history: parsed.request.history, model, agent: parsed.request.agent },
      { gateway, say, runCode: runShown, workspace: WORKSPACE },
    );
    return finish(out.status, out.component, out.agent, out.workspaceChanged);
  }

  say(`Test response: ${message}`);
  const { blocks, prose } = scanMessage(message);
  let ranCode = false;
  for (const block of blocks) {
    if (!INTERPRETERS.has(block.lang)) continue;
    ranCode = true;
    await runShown(block.lang, block.code);
  }

  let agent: CreatedAgent | null = null;
  const created = parseCreateAgent(prose);
  if (created && 'agent' in created) {
    agent = created.agent;
    say(`\n\nCreated agent "${agent.name}".`);
  } else if (created) {
    say(`\n\nCould not create agent: ${created.error}.`);
  }

  let component: KnownComponent | null = null;
  const shown = parseComponent(prose);
  if (shown && 'component' in shown) component = shown.component;
  else if (shown) say(`\n\nUnknown component "${shown.unknown}"`);

  finish('ok', component, agent, ranCode);
}

async function main(): Promise<void> {
  process.stdout.on('error', () => process.exit(0)); // the reader went away: nothing left to do
  gateway.listen();
  // stdin carries request lines and, during a run, the runner's model responses: one reader
  // routes both, so responses arrive while a run (waiting on them) is in progress.
  const queue: Array<{ line: string } | { error: string }> = [];
  const waiting: { wake: () => void } = { wake: () => undefined };
  let ended = false;
  void (async () => {
    for await (const input of requestLines()) {
      if ('line' in input && gateway.route(input.line)) continue;
      queue.push(input);
      waiting.wake();
    }
  })()
    .catch((err: unknown) => process.stderr.write(`agent: reading stdin: ${describeError(err)}\n`))
    .finally(() => {
      ended = true;
      waiting.wake();
    });
  for (;;) {
    while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (waiting.wake = resolve));
    waiting.wake = () => undefined;
    const input = queue.shift();
    if (!input) return;
    try {
      gateway.begin();
      await answer(input);
    } catch (err) {
      process.stderr.write(`agent: unexpected failure: ${describeError(err)}\n`);
      if (reply.text === '') say('The agent failed unexpectedly.');
      finish('error', null, null, true);
    } finally {
      gateway.end();
    }
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`agent: ${describeError(err)}\n`);
    process.exit(1);
  },
);
