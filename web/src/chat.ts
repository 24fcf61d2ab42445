/**
 * The chat view: the open conversation's messages, live from Firestore, and sending with a
 * streamed reply. While a reply is on its way, a pending bubble fills with the streamed text (or
 * the final result); the stored message replaces it when the listener delivers it.
 */
import { COLLECTIONS, withDeadline, type ModelUsage } from '@agent-platform/contract';
import { FirebaseError } from 'firebase/app';
import {
  collection,
  doc,
  limitToLast,
  onSnapshot,
  orderBy,
  query,
  type Unsubscribe,
} from 'firebase/firestore';
import {
  callables,
  db,
  newRequestId,
  notAnswered,
  toMessage,
  type Message,
  type RunStatus,
  type SendResult,
} from './api.ts';
import { byId, h, reconcile } from './dom.ts';
import { callableErrorMessage } from './errors.ts';
import { renderComponent, renderRunStatus, renderText } from './render.ts';

/** Messages shown at most (the newest). */
const MESSAGE_WINDOW = 200;
const WARM_EVERY_MS = 60_000;
/** Streamed text is re-rendered at most this often. */
const STREAM_RENDER_MS = 50;

interface Pending {
  requestId: string;
  /** null until the result names the conversation a first message created. */
  conversationId: string | null;
  text: string;
  /** Streamed so far. */
  reply: string;
  result: SendResult | null;
  userStored: boolean;
  replyStored: boolean;
}

export interface ChatHooks {
  /** Show this conversation (null: a new one); `replace` rewrites the current history entry. */
  navigate(conversationId: string | null, replace?: boolean): void;
  /** A reply created an agent; resolves to its name when known. */
  agentCreated(agentId: string | null): Promise<string | null>;
  /** The name of one of the user's agents (null: unknown, e.g. deleted). */
  agentName(agentId: string): string | null;
  /** A reply arrived: the day's usage changed. */
  replied(): void;
}

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

export class Chat {
  readonly #hooks: ChatHooks;
  readonly #el = {
    title: byId('chat-title'),
    agent: byId('chat-agent'),
    del: byId<HTMLButtonElement>('delete-conversation'),
    confirm: byId('confirm-delete'),
    confirmText: byId('confirm-text'),
    confirmYes: byId<HTMLButtonElement>('confirm-delete-yes'),
    confirmNo: byId<HTMLButtonElement>('confirm-delete-no'),
    error: byId('error'),
    errorText: byId('error-text'),
    notice: byId('notice'),
    thread: byId('thread'),
    empty: byId('chat-empty'),
    loading: byId('chat-loading'),
    messages: byId<HTMLOListElement>('messages'),
    pendingUser: byId('pending-user'),
    pendingReply: byId('pending-reply'),
    form: byId<HTMLFormElement>('composer'),
    input: byId<HTMLTextAreaElement>('composer-input'),
    send: byId<HTMLButtonElement>('send'),
  };
  #uid: string | null = null;
  #current: string | null = null;
  #title = 'New conversation';
  /** The open conversation's agent (or, for a new conversation, the one it will start with). */
  #agentId: string | null = null;
  #newWith: { id: string; name: string } | null = null;
  #messages: Message[] = [];
  #loaded = false;
  #unsubscribe: Unsubscribe[] = [];
  #pending: Pending | null = null;
  #sending = false;
  #lastWarm = 0;
  /** Rendered message elements by id, with the data they show. */
  #rendered = new Map<string, { key: string; el: HTMLLIElement }>();

  constructor(hooks: ChatHooks) {
    this.#hooks = hooks;
    const el = this.#el;
    el.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#submit();
    });
    el.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.#submit();
      }
    });
    el.input.addEventListener('input', () => this.#updateComposer());
    el.del.addEventListener('click', () => this.#askDelete());
    el.confirmNo.addEventListener('click', () => this.#closeConfirm(true));
    el.confirmYes.addEventListener('click', () => void this.#delete());
    el.confirm.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.#closeConfirm(true);
    });
    byId('error-dismiss').addEventListener('click', () => this.#showError(null));
    for (const b of el.empty.querySelectorAll<HTMLButtonElement>('button[data-example]')) {
      b.addEventListener('click', () => {
        el.input.value = b.dataset.example ?? '';
        this.#updateComposer();
        el.input.focus();
      });
    }
  }

  /** Signed in as `uid`, or signed out (null): everything of the previous user is dropped. */
  setUser(uid: string | null): void {
    this.#stopListening();
    this.#uid = uid;
    this.#current = null;
    this.#pending = null;
    this.#sending = false;
    this.#lastWarm = 0;
    this.#showError(null);
    this.notice('');
    this.#reset();
  }

  /** Starts a new conversation with one of the user's agents (the first message names it). */
  startWith(agent: { id: string; name: string }): void {
    this.open(null);
    this.#newWith = { id: agent.id, name: agent.name };
    this.#render(true);
    this.focusComposer();
  }

  /** Shows a conversation (null: a new, empty one). */
  open(conversationId: string | null): void {
    if (!this.#uid) return;
    this.#warm();
    if (conversationId === this.#current && (conversationId === null || this.#unsubscribe.length)) return;
    this.#stopListening();
    this.#closeConfirm(false);
    this.notice('');
    this.#current = conversationId;
    this.#newWith = null;
    // A finished send whose stored reply was not seen yet belongs to the conversation left.
    if (this.#pending?.result && !this.#sending) this.#pending = null;
    this.#reset();
    if (conversationId) this.#listen(this.#uid, conversationId);
    else this.#render(true);
  }

  focusComposer(): void {
    this.#el.input.focus();
  }

  notice(text: string): void {
    this.#el.notice.textContent = text;
    this.#el.notice.hidden = !text;
  }

  #reset(): void {
    this.#messages = [];
    this.#rendered.clear();
    this.#el.messages.replaceChildren();
    this.#loaded = this.#current === null;
    this.#title = 'New conversation';
    this.#agentId = null;
    this.#render(true);
  }

  #listen(uid: string, conversationId: string): void {
    const convRef = doc(db, COLLECTIONS.users, uid, COLLECTIONS.conversations, conversationId);
    const q = query(collection(convRef, COLLECTIONS.messages), orderBy('seq'), limitToLast(MESSAGE_WINDOW));
    this.#unsubscribe.push(
      onSnapshot(
        convRef,
        (snap) => {
          if (!snap.exists()) {
            if (this.#pending?.conversationId === conversationId && this.#sending) return;
            this.#hooks.navigate(null, true);
            this.notice('That conversation does not exist (or was deleted).');
            return;
          }
          const title = snap.get('title') as unknown;
          this.#title = typeof title === 'string' && title ? title : 'Untitled';
          const agentId = snap.get('agentId') as unknown;
          this.#agentId = typeof agentId === 'string' ? agentId : null;
          this.#render(false);
        },
        (err) => this.#showError(`Couldn't load this conversation (${err.code}).`),
      ),
      onSnapshot(
        q,
        (snap) => {
          this.#messages = snap.docs.map((d) => toMessage(d.id, d.data()));
          const first = !this.#loaded;
          this.#loaded = true;
          this.#matchPending();
          this.#render(first);
        },
        (err) => this.#showError(`Couldn't load the messages (${err.code}).`),
      ),
    );
  }

  #stopListening(): void {
    for (const u of this.#unsubscribe.splice(0)) u();
  }

  /** Marks what of the pending send the listener already shows. */
  #matchPending(): void {
    const p = this.#pending;
    if (!p || p.conversationId !== this.#current) return;
    for (const m of this.#messages) {
      if (m.requestId !== p.requestId) continue;
      if (m.role === 'user') p.userStored = true;
      else p.replyStored = true;
    }
    if (p.replyStored && !this.#sending) this.#pending = null;
  }

  #submit(): void {
    const text = this.#el.input.value;
    if (!text.trim() || this.#sending) return;
    this.#el.input.value = '';
    void this.send(text);
  }

  /** Sends a message to the open conversation (or starts one) and streams the reply. */
  async send(message: string, requestId: string = newRequestId()): Promise<void> {
    if (this.#sending || !this.#uid) return;
    const startWith = this.#current === null ? this.#newWith : null;
    const p: Pending = {
      requestId,
      conversationId: this.#current,
      text: message,
      reply: '',
      result: null,
      userStored: false,
      replyStored: false,
    };
    this.#pending = p;
    this.#sending = true;
    this.#showError(null);
    this.notice('');
    this.#render(true);
    try {
      const { stream, data } = await callables.sendMessage.stream({
        message,
        requestId: p.requestId,
        ...(p.conversationId ? { conversationId: p.conversationId } : {}),
        ...(startWith ? { agentId: startWith.id } : {}),
      });
      data.catch(() => undefined); // awaited below
      try {
        for await (const chunk of stream) {
          if (chunk?.type === 'text' && typeof chunk.delta === 'string') {
            p.reply += chunk.delta;
            this.#renderStreamed();
          }
        }
      } catch {
        // The same error rejects `data`.
      }
      const result = await settled(data);
      p.result = result;
      p.conversationId = result.conversationId;
      this.#hooks.replied();
      if (this.#pending === p && this.#current === null) this.#hooks.navigate(result.conversationId, true);
      if (result.agentCreated) {
        void this.#hooks.agentCreated(result.agentId).then((name) => {
          this.notice(
            name
              ? `Created the agent “${name}”. It is listed under Agents.`
              : 'Created a new agent. It is listed under Agents.',
          );
        });
      }
    } catch (err) {
      if (this.#pending === p) this.#pending = null;
      if (!this.#el.input.value) this.#el.input.value = message; // to retry or edit
      this.#showError(callableErrorMessage(err));
      // A first message that failed still created its conversation: open it, so the failed
      // message is shown where it belongs.
      const stored = (err as { details?: { conversationId?: unknown } } | null)?.details?.conversationId;
      if (this.#current === null && typeof stored === 'string') this.#hooks.navigate(stored, true);
    } finally {
      this.#sending = false;
      if (this.#pending === p && p.replyStored) this.#pending = null;
      this.#render(false);
    }
  }

  #nearBottom(): boolean {
    const t = this.#el.thread;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 120;
  }

  #render(scrollToEnd: boolean): void {
    const stick = scrollToEnd || this.#nearBottom();
    const el = this.#el;
    el.title.textContent =
      this.#current === null && this.#newWith ? `New conversation with ${this.#newWith.name}` : this.#title;
    const agentName = this.#agentId ? (this.#hooks.agentName(this.#agentId) ?? 'an agent') : null;
    el.agent.textContent = agentName ? `With ${agentName}` : '';
    el.agent.hidden = !agentName;
    el.del.hidden = this.#current === null;
    el.loading.hidden = this.#loaded;
    const pendingHere = this.#pending !== null && this.#pending.conversationId === this.#current;
    el.empty.hidden = !(this.#current === null && !pendingHere);

    const nowMs = Date.now();
    this.#scheduleLeaseCheck(nowMs);
    const wanted = this.#messages.map((m) => {
      // Whether a pending message's lease has ended changes with time, not with the document.
      const key = JSON.stringify(m) + String(notAnswered(m, nowMs));
      let entry = this.#rendered.get(m.id);
      if (!entry || entry.key !== key) {
        entry = { key, el: this.#renderMessage(m) };
        this.#rendered.set(m.id, entry);
      }
      return entry.el;
    });
    reconcile(el.messages, wanted);
    this.#renderPending(stick);
    this.#updateComposer();
  }

  #leaseTimer: ReturnType<typeof setTimeout> | null = null;

  /** Renders again when the next pending message's lease ends, so it turns "Not answered". */
  #scheduleLeaseCheck(nowMs: number): void {
    if (this.#leaseTimer !== null) clearTimeout(this.#leaseTimer);
    this.#leaseTimer = null;
    const next = Math.min(
      ...this.#messages.flatMap((m) =>
        m.status === 'pending' && m.leaseExpiresAtMs !== null && m.leaseExpiresAtMs > nowMs
          ? [m.leaseExpiresAtMs]
          : [],
      ),
    );
    if (Number.isFinite(next)) {
      this.#leaseTimer = setTimeout(() => this.#render(false), Math.min(next - nowMs + 50, 2 ** 31 - 1));
    }
  }

  #lastStreamRenderMs = Number.NEGATIVE_INFINITY;
  #streamRenderTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * Re-renders the streamed reply at most once per STREAM_RENDER_MS (the first chunk at once):
   * rendering the whole reply on every chunk made a long stream quadratic.
   */
  #renderStreamed(): void {
    if (this.#streamRenderTimer !== null) return;
    const wait = this.#lastStreamRenderMs + STREAM_RENDER_MS - performance.now();
    const render = () => {
      this.#streamRenderTimer = null;
      this.#lastStreamRenderMs = performance.now();
      this.#renderPending(this.#nearBottom());
    };
    if (wait <= 0) render();
    else this.#streamRenderTimer = setTimeout(render, wait);
  }

  #renderPending(stick: boolean): void {
    const el = this.#el;
    const p = this.#pending !== null && this.#pending.conversationId === this.#current ? this.#pending : null;
    el.pendingUser.hidden = !p || p.userStored;
    if (p && !p.userStored) {
      el.pendingUser.replaceChildren(h('span', { class: 'who' }, 'You'), renderText(p.text));
      el.pendingUser.append(h('p', { class: 'msg-note' }, 'Sending…'));
    }
    el.pendingReply.hidden = !p || p.replyStored;
    if (p && !p.replyStored) {
      const r = p.result;
      el.pendingReply.setAttribute('aria-busy', String(!r));
      el.pendingReply.replaceChildren(h('span', { class: 'who' }, 'Agent'));
      if (r) {
        el.pendingReply.append(...this.#body(r.text, r.status, r.component, r.usage));
      } else if (p.reply) {
        el.pendingReply.append(renderText(p.reply));
      } else {
        el.pendingReply.append(
          h(
            'p',
            { class: 'typing' },
            h('span', { class: 'dots', 'aria-hidden': 'true' }),
            'Agent is working…',
          ),
        );
      }
    }
    if (stick) el.thread.scrollTop = el.thread.scrollHeight;
  }

  #body(text: string, status: RunStatus | string, component: unknown, usage?: ModelUsage | null): Node[] {
    const nodes: Node[] = [];
    const s = renderRunStatus(status);
    if (s) nodes.push(s);
    nodes.push(renderText(text));
    const c = renderComponent(component, (value) => void this.send(value));
    if (c) nodes.push(c);
    const used = usageLine(usage);
    if (used) nodes.push(h('p', { class: 'msg-note usage' }, used));
    return nodes;
  }

  #renderMessage(m: Message): HTMLLIElement {
    const li = h(
      'li',
      { class: `msg msg-${m.role}`, 'data-id': m.id, 'data-status': m.status },
      h('span', { class: 'who' }, m.role === 'user' ? 'You' : 'Agent'),
    );
    if (m.role === 'agent') {
      li.append(...this.#body(m.text, m.status, m.component, m.usage));
      return li;
    }
    li.append(renderText(m.text));
    if (notAnswered(m, Date.now())) {
      const why =
        m.status === 'pending' || m.error === 'deadline-exceeded'
          ? 'the agent did not answer in time'
          : m.error === 'unavailable'
            ? 'the agent runner was unavailable'
            : 'something went wrong';
      const retry = h('button', { type: 'button', class: 'retry' }, 'Retry');
      // The same requestId: the functions run a failed or expired message again, in place, once.
      retry.addEventListener('click', () => void this.send(m.text, m.requestId ?? undefined));
      li.append(h('p', { class: 'msg-note msg-failed' }, `Not answered: ${why}. `, retry));
    } else if (m.status === 'pending') {
      li.append(h('p', { class: 'msg-note' }, 'Waiting for the reply…'));
    }
    return li;
  }

  #updateComposer(): void {
    const el = this.#el;
    el.send.disabled = this.#sending || !el.input.value.trim();
    el.send.textContent = this.#sending ? 'Sending…' : 'Send';
    for (const b of el.messages.querySelectorAll<HTMLButtonElement>('button.choice'))
      b.disabled = this.#sending;
    for (const b of el.pendingReply.querySelectorAll<HTMLButtonElement>('button.choice'))
      b.disabled = this.#sending;
  }

  #showError(text: string | null): void {
    this.#el.errorText.textContent = text ?? '';
    this.#el.error.hidden = !text;
  }

  #askDelete(): void {
    const el = this.#el;
    el.confirmText.textContent = `Delete “${this.#title}” and all its messages? This cannot be undone.`;
    el.confirm.hidden = false;
    el.confirmYes.disabled = false;
    el.confirmNo.focus();
  }

  #closeConfirm(refocus: boolean): void {
    this.#el.confirm.hidden = true;
    if (refocus) this.#el.del.focus();
  }

  async #delete(): Promise<void> {
    const id = this.#current;
    if (!id) return;
    this.#el.confirmYes.disabled = true;
    try {
      await callables.deleteConversation({ conversationId: id });
      this.#closeConfirm(false);
      if (this.#current === id) this.#hooks.navigate(null, true);
      this.notice('Conversation deleted.');
      this.focusComposer();
    } catch (err) {
      this.#closeConfirm(true);
      this.#showError(callableErrorMessage(err));
    }
  }

  /** Starts the user's sandbox ahead of the first message (fire-and-forget, at most once a minute). */
  #warm(): void {
    if (Date.now() - this.#lastWarm < WARM_EVERY_MS) return;
    this.#lastWarm = Date.now();
    callables.warmSandbox().catch(() => undefined);
  }
}

/**
 * The callable's result. The stream has ended when this is called, and the SDK settles `data`
 * when it reads the result (or error) line, so it is settled by now unless the response had
 * neither (e.g. a proxy error page), which the SDK would leave pending forever.
 */
function settled<T>(data: Promise<T>): Promise<T> {
  return withDeadline(
    data,
    AbortSignal.timeout(5_000),
    () => new FirebaseError('functions/internal', 'the reply ended without a result'),
  );
}
