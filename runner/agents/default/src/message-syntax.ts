/**
 * The offline agent's message syntax (README.md): fenced code blocks, a `/create-agent` line and
 * a `/component` line. Pure: it reads a message and says what it asks for.
 */
import type { CreatedAgent } from '@agent-platform/contract';
import type { ComponentSpec } from './components.ts';

export interface CodeBlock {
  /** The fence's language tag, in lower case ('' when it has none). */
  lang: string;
  code: string;
}

/** A line of the message outside code blocks; `fence` marks an opening fence line. */
export interface ProseLine {
  text: string;
  fence: boolean;
}

const OPEN_FENCE = /^ {0,3}(`{3,})[ \t]*([^`\s]*)[^`]*$/;
const CREATE_AGENT = /^\s*\/create-agent(?:\s+(.*))?$/;
const COMPONENT = /^\s*\/component(?:\s+(.*))?$/;

/** Splits a message into code blocks and the lines outside them (opening fences included). */
export function scanMessage(message: string): { blocks: CodeBlock[]; prose: ProseLine[] } {
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

/** The first line of a command outside code blocks: its index and the rest of it, trimmed. */
function findCommand(prose: ProseLine[], command: RegExp): { index: number; rest: string } | null {
  for (const [index, line] of prose.entries()) {
    const match = line.fence ? null : command.exec(line.text);
    if (match) return { index, rest: (match[1] ?? '').trim() };
  }
  return null;
}

function isCommand(line: string): boolean {
  return CREATE_AGENT.test(line) || COMPONENT.test(line);
}

/**
 * `/create-agent <name>: <description>`, then instruction lines up to a fence or command (default
 * `You are <name>. <description>`). The fields are checked by checkCreatedAgent; only the line's
 * own syntax is an error here. Null when the message has no such line.
 */
export function parseCreateAgent(prose: ProseLine[]): { fields: CreatedAgent } | { error: string } | null {
  const command = findCommand(prose, CREATE_AGENT);
  if (!command) return null;
  const colon = command.rest.indexOf(':');
  if (colon === -1) return { error: 'expected "/create-agent <name>: <description>"' };
  const name = command.rest.slice(0, colon).trim();
  const description = command.rest.slice(colon + 1).trim();
  const lines: string[] = [];
  for (const line of prose.slice(command.index + 1)) {
    if (line.fence || isCommand(line.text)) break;
    lines.push(line.text);
  }
  const instructions = lines.join('\n').trim() || `You are ${name}. ${description}`.trim();
  return { fields: { name, description, instructions } };
}

/**
 * The first `/component` line: its kind as written, and what it describes (null when the kind is
 * unknown or the line malformed). A table's lines follow it up to an empty line or a fence.
 */
export function parseComponent(prose: ProseLine[]): { kind: string; spec: ComponentSpec | null } | null {
  const command = findCommand(prose, COMPONENT);
  if (!command) return null;
  const kind = command.rest.split(/\s/, 1)[0] ?? '';
  const args = command.rest.slice(kind.length).trim();
  switch (kind.toLowerCase()) {
    case 'card': {
      const colon = args.indexOf(':');
      if (colon === -1) return { kind, spec: null };
      return {
        kind,
        spec: { type: 'card', title: args.slice(0, colon).trim(), body: args.slice(colon + 1).trim() },
      };
    }
    case 'table': {
      const lines: string[] = [];
      for (const line of prose.slice(command.index + 1)) {
        if (line.fence || line.text.trim() === '') break;
        lines.push(line.text);
      }
      const [header, ...body] = lines;
      if (header === undefined) return { kind, spec: null };
      return { kind, spec: { type: 'table', columns: splitCsv(header), rows: body.map(splitCsv) } };
    }
    case 'buttons': {
      const labels = args
        .split('|')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      return { kind, spec: { type: 'buttons', labels } };
    }
    default:
      return { kind, spec: null };
  }
}

/** Splits one CSV-ish line: commas separate cells, "double quotes" may wrap a cell. */
export function splitCsv(line: string): string[] {
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
