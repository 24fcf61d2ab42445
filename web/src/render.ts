/**
 * Renders message text (plain text plus fenced code and the agent's ```output blocks), the
 * agent's UI components, and run statuses. Everything is built as DOM nodes with text content.
 */
import type { RunStatus } from '@agent-platform/contract';
import { h } from './dom.ts';

export type Segment =
  | { kind: 'text'; text: string }
  | { kind: 'code'; lang: string; code: string }
  | { kind: 'output'; lang: string; outcome: string; code: string };

const OPEN = /^ {0,3}(`{3,})\s*([^`]*?)\s*$/;
/** "Test response: ```python": the agent echoes the message, so a fence can follow text. */
const OPEN_AFTER_TEXT = /^(.*[^\s`])\s*(`{3,})([\w+#.-]*)\s*$/;
/**
 * ```output (<lang>): the agent streams a block's output line by line, and after its closing
 * fence one line with how it ended, `(exit 0)` (the older `output (<lang>, exit 0)` form is read
 * too). Until that line arrives the block is running.
 */
const OUTPUT_INFO = /^output \(([^,)]+)(?:, ([^)]+))?\)$/;
const OUTCOME_LINE = /^\(((?:exit -?\d+)|(?:signal \w+))\)$/;

const CLOSE = /^ {0,3}(`{3,})\s*$/;

/** Backticks of a line that can close a fence (0 when it cannot). */
function closeLength(line: string): number {
  return CLOSE.exec(line)?.[1]!.length ?? 0;
}

/** Splits text into plain text and fenced blocks. An unclosed fence (mid-stream) runs to the end. */
export function segments(text: string): Segment[] {
  const out: Segment[] = [];
  const lines = text.split('\n');
  // longestCloseFrom[i]: the longest closing fence at line i or after. Asking "does a closing
  // fence follow?" for each line by scanning the rest made many fence-like lines quadratic.
  const longestCloseFrom = new Array<number>(lines.length + 1).fill(0);
  for (let i = lines.length - 1; i >= 0; i--) {
    longestCloseFrom[i] = Math.max(longestCloseFrom[i + 1]!, closeLength(lines[i]!));
  }
  let plain: string[] = [];
  let fence: { marker: string; info: string; lines: string[] } | null = null;

  const flushText = () => {
    const t = plain.join('\n').replace(/^\n+|\s+$/g, '');
    if (t) out.push({ kind: 'text', text: t });
    plain = [];
  };
  /** The output block waiting for its `(exit N)` line (the line right after its fence). */
  let awaitingOutcome: { outcome: string } | null = null;
  const flushFence = () => {
    if (!fence) return;
    const code = fence.lines.join('\n');
    const m = OUTPUT_INFO.exec(fence.info);
    if (m) {
      // A block still running ends with the newline of its last line so far.
      const shown = m[2] ? code : code.replace(/\n$/, '');
      const block = { kind: 'output' as const, lang: m[1]!, outcome: m[2] ?? 'running', code: shown };
      out.push(block);
      if (!m[2]) awaitingOutcome = block;
    } else out.push({ kind: 'code', lang: fence.info.split(/\s/)[0] ?? '', code });
    fence = null;
  };

  lines.forEach((line, i) => {
    if (fence) {
      if (closeLength(line) >= fence.marker.length) flushFence();
      else fence.lines.push(line);
      return;
    }
    if (awaitingOutcome) {
      const outcome = OUTCOME_LINE.exec(line);
      awaitingOutcome.outcome = outcome ? outcome[1]! : 'ended';
      awaitingOutcome = null;
      if (outcome) return;
    }
    const open = OPEN.exec(line);
    if (open) {
      flushText();
      fence = { marker: open[1]!, info: open[2]!, lines: [] };
      return;
    }
    const after = OPEN_AFTER_TEXT.exec(line);
    if (after && longestCloseFrom[i + 1]! >= after[2]!.length) {
      plain.push(after[1]!);
      flushText();
      fence = { marker: after[2]!, info: after[3]!, lines: [] };
      return;
    }
    plain.push(line);
  });
  flushFence();
  flushText();
  return out;
}

export function renderText(text: string): DocumentFragment {
  const frag = document.createDocumentFragment();
  for (const s of segments(text)) {
    if (s.kind === 'text') {
      frag.append(h('p', { class: 'text' }, s.text));
    } else if (s.kind === 'code') {
      frag.append(
        h(
          'figure',
          { class: 'code' },
          s.lang ? h('figcaption', {}, s.lang) : null,
          h('pre', {}, h('code', {}, s.code)),
        ),
      );
    } else {
      const failed = !/^exit 0$/.test(s.outcome);
      frag.append(
        h(
          'figure',
          { class: `code output${failed ? ' output-failed' : ''}` },
          h('figcaption', {}, `Output · ${s.lang} · ${s.outcome}`),
          h('pre', {}, h('code', {}, s.code)),
        ),
      );
    }
  }
  return frag;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const cell = (v: unknown): string => (isString(v) ? v : v === null || v === undefined ? '' : String(v));

/**
 * The agent's component (see web/README.md): card, table, buttons. `onChoose` receives a button's
 * value. Anything else renders a small note; nothing at all for no component.
 */
export function renderComponent(c: unknown, onChoose: (value: string) => void): HTMLElement | null {
  if (c === null || c === undefined) return null;
  const type = isRecord(c) && isString(c.type) ? c.type : '';
  if (isRecord(c) && type === 'card' && isString(c.title) && isString(c.body)) {
    return h(
      'section',
      { class: 'component card', 'aria-label': `Card: ${c.title}` },
      h('h3', {}, c.title),
      h('p', {}, c.body),
    );
  }
  if (isRecord(c) && type === 'table' && Array.isArray(c.columns) && Array.isArray(c.rows)) {
    // Rows hold their cells (`{cells: [...]}`, contract/src/agent-protocol.ts): Firestore stores
    // no arrays inside arrays.
    const rows = c.rows.flatMap((r) => (isRecord(r) && Array.isArray(r.cells) ? [r.cells] : []));
    return h(
      'div',
      { class: 'component table-wrap', role: 'region', 'aria-label': 'Table', tabindex: 0 },
      h(
        'table',
        {},
        h('thead', {}, h('tr', {}, ...c.columns.map((col) => h('th', { scope: 'col' }, cell(col))))),
        h('tbody', {}, ...rows.map((row) => h('tr', {}, ...row.map((v) => h('td', {}, cell(v)))))),
      ),
    );
  }
  if (isRecord(c) && type === 'buttons' && Array.isArray(c.buttons)) {
    const buttons = c.buttons.filter(
      (b): b is { label: string; value: string } => isRecord(b) && isString(b.label) && isString(b.value),
    );
    return h(
      'div',
      { class: 'component choices', role: 'group', 'aria-label': 'Suggested replies' },
      ...buttons.map((b) =>
        h(
          'button',
          { type: 'button', class: 'choice', 'data-value': b.value, onclick: () => onChoose(b.value) },
          b.label,
        ),
      ),
    );
  }
  return h(
    'p',
    { class: 'component-note' },
    `(This reply has a “${type || 'unknown'}” component this app can't show.)`,
  );
}

/** A label for every run status but ok (typed against the contract, so a new status is a type error here). */
const RUN_STATUS: Record<Exclude<RunStatus, 'ok'>, string> = {
  timeout: 'Timed out',
  oom: 'Out of memory',
  output_limit: 'Output limit reached',
  error: 'Error',
};

/** A distinct badge for a sandbox status other than ok (the reply's text says more). */
export function renderRunStatus(status: string): HTMLElement | null {
  if (status === 'ok' || status === '') return null;
  return h(
    'p',
    { class: `run-status run-status-${status}` },
    h('span', { class: 'visually-hidden' }, 'Run status: '),
    (RUN_STATUS as Record<string, string | undefined>)[status] ?? status,
  );
}
