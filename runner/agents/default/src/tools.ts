/**
 * What an agent can do in its sandbox, for both agents: the offline agent reaches these through
 * its message syntax (offline-agent.ts), the LLM agent through a model's tool calls
 * (llm-tools.ts). Each shows in the turn what the user should see and returns what went wrong as
 * data; the agent words it for its reader.
 */
import { mkdir, writeFile as writeFileAt } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MODEL_REQUEST_MAX_BYTES, type CreatedAgent } from '@agent-platform/contract';
import { buildComponent, type ComponentSpec } from './components.ts';
import { checkCreatedAgent } from './created-agent.ts';
import { interpreterFor } from './languages.ts';
import { runInterpreter, type CodeResult } from './run-interpreter.ts';
import type { Turn } from './turn.ts';
import { readStart, workspacePath } from './workspace.ts';

/** What a tool did (a short word for a model) or why it did nothing. */
export type ToolOutcome = { result: string } | { error: string };

/**
 * Bytes read_file reads of a file, at most (a bound on the agent's memory; what a model is given
 * of them is bounded again, llm-tools.ts).
 */
export const READ_FILE_MAX_BYTES = 256 * 1024;
/**
 * Bytes of a file write_file writes, at most: its content goes back to the model with every later
 * request of the run (the call is part of the conversation), and a model request may hold
 * MODEL_REQUEST_MAX_BYTES.
 */
export const WRITE_FILE_MAX_BYTES = MODEL_REQUEST_MAX_BYTES;

const OUTSIDE_WORKSPACE = 'the path must be inside /workspace';

/**
 * Runs code in /workspace and shows it in the reply as it runs: a ```output (<language>) fence,
 * the output line by line, then the closing fence and `(exit <code>)` once it has ended. Null,
 * with nothing run or said, for a language without an interpreter.
 */
export async function runCode(turn: Turn, language: string, code: string): Promise<CodeResult | null> {
  const interpreter = interpreterFor(language);
  if (!interpreter) return null;
  turn.changedWorkspace();
  turn.say(`\n\n\`\`\`output (${language})\n`);
  let atLineStart = true;
  const result = await runInterpreter(interpreter, code, (text) => {
    turn.say(text);
    atLineStart = text.endsWith('\n');
  });
  turn.say(`${atLineStart ? '' : '\n'}\`\`\`\n(${result.status})`);
  return result;
}

/** Reads a text file of /workspace, its first READ_FILE_MAX_BYTES. */
export async function readFile(turn: Turn, path: string): Promise<ToolOutcome> {
  const full = workspacePath(path);
  if (!full) return { error: OUTSIDE_WORKSPACE };
  turn.say(`\n\n[read_file ${full}]`);
  try {
    const { bytes, more } = await readStart(full, READ_FILE_MAX_BYTES);
    const text = bytes.toString('utf8');
    return { result: more ? `${text}\n[cut at ${READ_FILE_MAX_BYTES} bytes]` : text };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? 'cannot read' };
  }
}

/** Writes a text file in /workspace (created or replaced, its folders made). */
export async function writeFile(turn: Turn, path: string, content: string): Promise<ToolOutcome> {
  const full = workspacePath(path);
  if (!full) return { error: OUTSIDE_WORKSPACE };
  const bytes = Buffer.byteLength(content);
  if (bytes > WRITE_FILE_MAX_BYTES) return { error: `at most ${WRITE_FILE_MAX_BYTES} bytes` };
  turn.changedWorkspace();
  turn.say(`\n\n[write_file ${full}, ${bytes} bytes]`);
  try {
    await mkdir(dirname(full), { recursive: true });
    await writeFileAt(full, content);
    return { result: 'written' };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? 'cannot write' };
  }
}

/** The run's result carries a new agent for the user (the functions store it). */
export function createAgent(turn: Turn, fields: CreatedAgent): ToolOutcome {
  const checked = checkCreatedAgent(fields);
  if ('error' in checked) return checked;
  turn.created(checked.agent);
  turn.say(`\n\nCreated agent "${checked.agent.name}".`);
  return { result: 'created' };
}

/** The run's result carries a component, shown under the reply (spec null: not a kind it knows). */
export function showComponent(turn: Turn, spec: ComponentSpec | null): ToolOutcome {
  const component = spec && buildComponent(spec);
  if (!component) return { error: 'not a valid card, table or buttons component' };
  turn.show(component);
  return { result: 'shown' };
}
