/**
 * The conversation view: the open conversation's messages, live from Firestore, and sending with
 * a streamed reply. The stored messages are the truth; while a reply is on its way the stream
 * renderer fills in what they do not show yet (unstored.ts), and the send machine owns the send.
 */
import { COLLECTIONS, type SendResult } from '@agent-platform/contract';
import {
  collection,
  doc,
  limitToLast,
  onSnapshot,
  orderBy,
  query,
  type Unsubscribe,
} from 'firebase/firestore';
import { callables, db } from '../api.ts';
import { toMessage, type Message } from '../documents.ts';
import { byId } from '../dom.ts';
import { callableErrorMessage } from '../errors.ts';
import { Composer } from './composer.ts';
import { DeleteDialog } from './delete-dialog.ts';
import { LeaseClock } from './lease-clock.ts';
import { MessageList, replyBody } from './message-view.ts';
import { inFlight, newRequestId, SendMachine, type SendState, type SettledSend } from './send-machine.ts';
import { nearBottom, StreamRenderer } from './stream-renderer.ts';
import { leavesSettledSend, unstored, type Unstored } from './unstored.ts';

/** Messages shown at most (the newest). */
const MESSAGE_WINDOW = 200;
const WARM_EVERY_MS = 60_000;

export interface ConversationHooks {
  /** Show this conversation (null: a new one); `replace` rewrites the current history entry. */
  navigate(conversationId: string | null, replace?: boolean): void;
  /** A reply created an agent; resolves to its name when known. */
  agentCreated(agentId: string | null): Promise<string | null>;
  /** The name of one of the user's agents (null: unknown, e.g. deleted). */
  agentName(agentId: string): string | null;
  /** A reply arrived: the day's usage changed. */
  replied(): void;
}

export class ConversationView {
  readonly #hooks: ConversationHooks;
  readonly #resend = (text: string, requestId?: string) => void this.send(text, requestId);
  readonly #el = {
    title: byId('chat-title'),
    agent: byId('chat-agent'),
    error: byId('error'),
    errorText: byId('error-text'),
    notice: byId('notice'),
    thread: byId('thread'),
    empty: byId('chat-empty'),
    loading: byId('chat-loading'),
  };
  readonly #list = new MessageList(byId<HTMLOListElement>('messages'), this.#resend);
  readonly #send = new SendMachine(
    (request) => callables.sendMessage.stream(request),
    (state) => this.#sendChanged(state),
  );
  readonly #composer = new Composer(this.#resend, () => inFlight(this.#send.state), this.#el.empty);
  readonly #stream = new StreamRenderer(
    this.#el.thread,
    () => this.#unstored(),
    (r) => replyBody(r, this.#resend),
  );
  readonly #dialog = new DeleteDialog({
    target: () => (this.#current === null ? null : { id: this.#current, title: this.#title }),
    deleted: (id) => {
      if (this.#current === id) this.#hooks.navigate(null, true);
      this.notice('Conversation deleted.');
      this.focusComposer();
    },
    failed: (err) => this.#showError(callableErrorMessage(err)),
  });
  readonly #leases = new LeaseClock(() => this.#render(false));
  #uid: string | null = null;
  #current: string | null = null;
  #title = 'New conversation';
  /** The open conversation's agent (or, for a new conversation, the one it will start with). */
  #agentId: string | null = null;
  #newWith: { id: string; name: string } | null = null;
  #messages: Message[] = [];
  #loaded = false;
  #unsubscribe: Unsubscribe[] = [];
  #lastWarmMs = 0;

  constructor(hooks: ConversationHooks) {
    this.#hooks = hooks;
    byId('error-dismiss').addEventListener('click', () => this.#showError(null));
  }

  /** Signed in as `uid`, or signed out (null): everything of the previous user is dropped. */
  setUser(uid: string | null): void {
    this.#stopListening();
    this.#uid = uid;
    this.#current = null;
    this.#send.reset();
    this.#lastWarmMs = 0;
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
    this.#dialog.close(false);
    this.notice('');
    if (leavesSettledSend(this.#send.state, this.#current, conversationId)) this.#send.dismiss();
    this.#current = conversationId;
    this.#newWith = null;
    this.#reset();
    if (conversationId) this.#listen(this.#uid, conversationId);
    else this.#render(true);
  }

  focusComposer(): void {
    this.#composer.focus();
  }

  notice(text: string): void {
    this.#el.notice.textContent = text;
    this.#el.notice.hidden = !text;
  }

  /** Sends a message to the open conversation (or starts one) and streams the reply. */
  async send(message: string, requestId: string = newRequestId()): Promise<void> {
    if (!this.#uid) return;
    const startWith = this.#current === null ? this.#newWith : null;
    await this.#send.send({
      message,
      requestId,
      ...(this.#current ? { conversationId: this.#current } : {}),
      ...(startWith ? { agentId: startWith.id } : {}),
    });
  }

  #reset(): void {
    this.#messages = [];
    this.#list.clear();
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
            const s = this.#send.state;
            if (inFlight(s) && s.send.conversationId === conversationId) return;
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
          this.#render(first);
        },
        (err) => this.#showError(`Couldn't load the messages (${err.code}).`),
      ),
    );
  }

  #stopListening(): void {
    for (const u of this.#unsubscribe.splice(0)) u();
  }

  /** The send's effects on the page, state by state. */
  #sendChanged(state: SendState): void {
    switch (state.phase) {
      case 'idle':
        return; // reset and dismiss: their callers render next
      case 'sending':
        this.#showError(null);
        this.notice('');
        this.#render(true);
        return;
      case 'streaming':
        this.#stream.streamed();
        return;
      case 'done':
        this.#replied(state.result);
        break;
      case 'failed':
        this.#failed(state);
        break;
    }
    this.#render(false);
  }

  #replied(result: SendResult): void {
    this.#hooks.replied();
    if (this.#current === null) this.#hooks.navigate(result.conversationId, true);
    if (!result.agentCreated) return;
    void this.#hooks.agentCreated(result.agentId).then((name) => {
      this.notice(
        name
          ? `Created the agent “${name}”. It is listed under Agents.`
          : 'Created a new agent. It is listed under Agents.',
      );
    });
  }

  #failed(state: Extract<SettledSend, { phase: 'failed' }>): void {
    this.#composer.restore(state.send.text);
    this.#showError(callableErrorMessage(state.error));
    // A first message that failed still created its conversation: open it, so the failed
    // message is shown where it belongs.
    const stored = (state.error as { details?: { conversationId?: unknown } } | null)?.details
      ?.conversationId;
    if (this.#current === null && typeof stored === 'string') this.#hooks.navigate(stored, true);
  }

  #unstored(): Unstored {
    return unstored(this.#send.state, this.#current, this.#messages);
  }

  #render(scrollToEnd: boolean): void {
    const el = this.#el;
    const stick = scrollToEnd || nearBottom(el.thread);
    el.title.textContent =
      this.#current === null && this.#newWith ? `New conversation with ${this.#newWith.name}` : this.#title;
    const agentName = this.#agentId ? (this.#hooks.agentName(this.#agentId) ?? 'an agent') : null;
    el.agent.textContent = agentName ? `With ${agentName}` : '';
    el.agent.hidden = !agentName;
    this.#dialog.render();
    el.loading.hidden = this.#loaded;
    const shown = this.#unstored();
    el.empty.hidden = !(this.#current === null && shown.user === null && shown.reply === null);

    const nowMs = Date.now();
    this.#leases.watch(this.#messages, nowMs);
    this.#list.render(this.#messages, nowMs);
    this.#stream.render(stick);
    this.#composer.update();
    const busy = inFlight(this.#send.state);
    for (const b of el.thread.querySelectorAll<HTMLButtonElement>('button.choice')) b.disabled = busy;
  }

  #showError(text: string | null): void {
    this.#el.errorText.textContent = text ?? '';
    this.#el.error.hidden = !text;
  }

  /** Starts the user's sandbox ahead of the first message (fire-and-forget, at most once a minute). */
  #warm(): void {
    if (Date.now() - this.#lastWarmMs < WARM_EVERY_MS) return;
    this.#lastWarmMs = Date.now();
    callables.warmSandbox().catch(() => undefined);
  }
}
