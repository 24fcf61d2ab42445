/** The thread's stored messages as DOM: the user's with their delivery note, the agent's with their parts. */
import type { ModelUsage } from '@agent-platform/contract';
import { notAnswered, type Message } from '../documents.ts';
import { h, reconcile } from '../dom.ts';
import { renderComponent, renderRunStatus, renderText } from '../render.ts';

/** Sends a message; `requestId` again runs a failed or expired message in place (once). */
export type Resend = (text: string, requestId?: string) => void;

/** An agent reply's parts, stored or still the callable's result. */
type Reply = Pick<Message, 'text' | 'status' | 'component'> & { usage?: ModelUsage | null };

const tokens = new Intl.NumberFormat();

/** "1,234 tokens · 2 model calls · fake-small" (null when the run made no model call). */
export function usageLine(u: ModelUsage | null | undefined): string | null {
  if (!u || (u.calls === 0 && !u.exhausted)) return null;
  const parts = [
    `${tokens.format(u.inputTokens + u.outputTokens)} tokens`,
    `${u.calls} model call${u.calls === 1 ? '' : 's'}`,
  ];
  if (u.model) parts.push(u.model);
  if (u.exhausted) parts.push(u.exhausted === 'tokens' ? 'token budget spent' : 'call budget spent');
  return parts.join(' · ');
}

/** The reply's status badge, text, component (a button sends its value) and token usage. */
export function replyBody(r: Reply, send: Resend): Node[] {
  const nodes: Node[] = [];
  const s = renderRunStatus(r.status);
  if (s) nodes.push(s);
  nodes.push(renderText(r.text));
  const c = renderComponent(r.component, (value) => send(value));
  if (c) nodes.push(c);
  const used = usageLine(r.usage);
  if (used) nodes.push(h('p', { class: 'msg-note usage' }, used));
  return nodes;
}

/** A stored message as shown at `nowMs` (a pending one's lease may have ended by then). */
export function renderMessage(m: Message, nowMs: number, send: Resend): HTMLLIElement {
  const li = h(
    'li',
    { class: `msg msg-${m.role}`, 'data-id': m.id, 'data-status': m.status },
    h('span', { class: 'who' }, m.role === 'user' ? 'You' : 'Agent'),
  );
  if (m.role === 'agent') {
    li.append(...replyBody(m, send));
    return li;
  }
  li.append(renderText(m.text));
  if (notAnswered(m, nowMs)) {
    const why =
      m.status === 'pending' || m.error === 'deadline-exceeded'
        ? 'the agent did not answer in time'
        : m.error === 'unavailable'
          ? 'the agent runner was unavailable'
          : 'something went wrong';
    const retry = h('button', { type: 'button', class: 'retry' }, 'Retry');
    // The same requestId: the functions run a failed or expired message again, in place, once.
    retry.addEventListener('click', () => send(m.text, m.requestId ?? undefined));
    li.append(h('p', { class: 'msg-note msg-failed' }, `Not answered: ${why}. `, retry));
  } else if (m.status === 'pending') {
    li.append(h('p', { class: 'msg-note' }, 'Waiting for the reply…'));
  }
  return li;
}

/** The stored messages' list; each element is rendered again only when what it shows changed. */
export class MessageList {
  readonly #list: HTMLOListElement;
  readonly #send: Resend;
  /** Rendered elements by message id, with the data they show. */
  readonly #rendered = new Map<string, { key: string; el: HTMLLIElement }>();

  constructor(list: HTMLOListElement, send: Resend) {
    this.#list = list;
    this.#send = send;
  }

  render(messages: readonly Message[], nowMs: number): void {
    reconcile(
      this.#list,
      messages.map((m) => this.#element(m, nowMs)),
    );
  }

  clear(): void {
    this.#rendered.clear();
    this.#list.replaceChildren();
  }

  #element(m: Message, nowMs: number): HTMLLIElement {
    // Whether a pending message's lease has ended changes with time, not with the document.
    const key = JSON.stringify(m) + String(notAnswered(m, nowMs));
    let entry = this.#rendered.get(m.id);
    if (!entry || entry.key !== key) {
      entry = { key, el: renderMessage(m, nowMs, this.#send) };
      this.#rendered.set(m.id, entry);
    }
    return entry.el;
  }
}
