/**
 * The tools as a model sees them: their definitions (OpenAI function tools), and a model's call
 * checked and run through tools.ts, its outcome worded as the `tool` message the model gets back.
 */
import {
  AGENT_DESCRIPTION_MAX_CHARS,
  AGENT_INSTRUCTIONS_MAX_CHARS,
  AGENT_TOOLS,
  BUTTONS_MAX,
  type AgentTool,
} from '@agent-platform/contract';
import type { ToolCall } from './chat-completion.ts';
import { COMPONENT_TYPES, type ComponentSpec } from './components.ts';
import { MODEL_LANGUAGES, isModelLanguage } from './languages.ts';
import { createAgent, readFile, runCode, showComponent, writeFile, type ToolOutcome } from './tools.ts';
import type { Turn } from './turn.ts';

/** What a tool result given back to the model may hold, at most (the rest is cut). */
export const TOOL_RESULT_MAX_CHARS = 16 * 1024;
/**
 * Characters of a card's body from a model: a longer one is cut, rather than the whole card
 * refused for being over the component's size bound.
 */
const CARD_BODY_MAX_CHARS = 10_000;

const STRING = { type: 'string' };
const STRINGS = { type: 'array', items: STRING };
const parameters = (properties: Record<string, object>, required: string[]) => ({
  type: 'object',
  properties,
  required,
});

const TOOL_DEFINITIONS: Record<AgentTool, { description: string; parameters: object }> = {
  run_code: {
    description: 'Run code in /workspace (no network). Returns its output and exit status.',
    parameters: parameters({ language: { ...STRING, enum: MODEL_LANGUAGES }, code: STRING }, [
      'language',
      'code',
    ]),
  },
  read_file: {
    description: 'Read a text file of /workspace.',
    parameters: parameters({ path: { ...STRING, description: 'relative to /workspace' } }, ['path']),
  },
  write_file: {
    description: 'Write a text file in /workspace (created or replaced).',
    parameters: parameters({ path: STRING, content: STRING }, ['path', 'content']),
  },
  create_agent: {
    description: 'Create a new agent for the user, with a name, a description and its instructions.',
    parameters: parameters({ name: STRING, description: STRING, instructions: STRING }, [
      'name',
      'description',
      'instructions',
    ]),
  },
  show_component: {
    description: 'Show the user a card, a table or buttons under the reply.',
    parameters: parameters(
      {
        type: { ...STRING, enum: COMPONENT_TYPES },
        title: STRING,
        body: STRING,
        columns: STRINGS,
        rows: { type: 'array', items: STRINGS },
        buttons: STRINGS,
      },
      ['type'],
    ),
  },
};

/** The tools a run offers its model, in AGENT_TOOLS order: those its agent allows. */
export function toolDefinitions(allowed: ReadonlySet<AgentTool>): object[] {
  return AGENT_TOOLS.filter((t) => allowed.has(t)).map((name) => ({
    type: 'function',
    function: { name, ...TOOL_DEFINITIONS[name] },
  }));
}

/** A tool result as the model gets it: cut at TOOL_RESULT_MAX_CHARS, with how much was cut. */
export function clipToolResult(s: string, max = TOOL_RESULT_MAX_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max)}\n[cut: ${s.length - max} more characters]`;
}

/** Runs one tool call of the model; never throws: what goes wrong is the model's to read. */
export async function callTool(call: ToolCall, allowed: ReadonlySet<AgentTool>, turn: Turn): Promise<string> {
  if (!isAllowed(call.name, allowed)) {
    return `error: no tool named ${JSON.stringify(call.name.slice(0, 80))} is available`;
  }
  const args = parseArguments(call.arguments);
  if (!args) return 'error: the arguments must be a JSON object';
  switch (call.name) {
    case 'run_code': {
      const { language, code } = args;
      if (!isModelLanguage(language)) return `error: language must be ${oneOf(MODEL_LANGUAGES)}`;
      if (typeof code !== 'string') return 'error: code must be a string';
      turn.say(`\n\n\`\`\`${language}\n${code.replace(/\n$/, '')}\n\`\`\``);
      const ran = await runCode(turn, language, code);
      return ran ? `${ran.status}\n${ran.output}` : `error: no interpreter for ${language}`;
    }
    case 'read_file':
      return worded(await readFile(turn, text(args.path)));
    case 'write_file':
      if (typeof args.content !== 'string') return 'error: content must be a string';
      return worded(await writeFile(turn, text(args.path), args.content));
    case 'create_agent':
      // A model's description and instructions are cut to their bounds rather than refused.
      return worded(
        createAgent(turn, {
          name: text(args.name),
          description: text(args.description).slice(0, AGENT_DESCRIPTION_MAX_CHARS),
          instructions: text(args.instructions).slice(0, AGENT_INSTRUCTIONS_MAX_CHARS),
        }),
      );
    case 'show_component':
      return worded(showComponent(turn, componentSpec(args)));
  }
}

function isAllowed(name: string, allowed: ReadonlySet<AgentTool>): name is AgentTool {
  return (AGENT_TOOLS as readonly string[]).includes(name) && allowed.has(name as AgentTool);
}

function parseArguments(json: string): Record<string, unknown> | null {
  try {
    const parsed: unknown = JSON.parse(json || '{}');
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function worded(outcome: ToolOutcome): string {
  return 'error' in outcome ? `error: ${outcome.error}` : outcome.result;
}

/** A string argument; anything else counts as empty. */
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
/** A list argument as strings (other items made strings); anything else counts as empty. */
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : String(x))) : [];
/** `a, b or c` */
const oneOf = (words: readonly string[]): string => `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;

/** The component a show_component call describes (null: not one of the vocabulary's types). */
function componentSpec(args: Record<string, unknown>): ComponentSpec | null {
  switch (args.type) {
    case 'card':
      return { type: 'card', title: text(args.title), body: text(args.body).slice(0, CARD_BODY_MAX_CHARS) };
    case 'table': {
      const rows = (Array.isArray(args.rows) ? args.rows : []).map((r) =>
        Array.isArray(r) ? r.map((cell: unknown) => String(cell ?? '')) : [],
      );
      return { type: 'table', columns: strings(args.columns), rows };
    }
    case 'buttons':
      // Buttons past the bound are dropped rather than the component refused.
      return {
        type: 'buttons',
        labels: strings(args.buttons)
          .slice(0, BUTTONS_MAX)
          .filter((l) => l !== ''),
      };
    default:
      return null;
  }
}
