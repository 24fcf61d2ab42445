/** The sidebar: the user's conversations (live from Firestore) and agents (listAgents). */
import { COLLECTIONS } from '@agent-platform/contract';
import { collection, limit, onSnapshot, orderBy, query, type Unsubscribe } from 'firebase/firestore';
import { callables, db, toConversation, type Agent, type Conversation } from './api.ts';
import { byId, h } from './dom.ts';
import { callableErrorMessage } from './errors.ts';

const LIST_LIMIT = 100;

const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const date = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

function when(d: Date | null): HTMLElement | null {
  if (!d) return null;
  const today = d.toDateString() === new Date().toDateString();
  return h('time', { datetime: d.toISOString() }, (today ? time : date).format(d));
}

export class Sidebar {
  readonly #onOpen: (conversationId: string) => void;
  readonly #el = {
    status: byId('conversations-status'),
    list: byId<HTMLUListElement>('conversation-list'),
    agentsStatus: byId('agents-status'),
    agents: byId<HTMLUListElement>('agent-list'),
    refresh: byId<HTMLButtonElement>('refresh-agents'),
  };
  #unsubscribe: Unsubscribe | null = null;
  #conversations: Conversation[] = [];
  #current: string | null = null;
  #agentsRequest = 0;

  constructor(onOpen: (conversationId: string) => void) {
    this.#onOpen = onOpen;
    this.#el.refresh.addEventListener('click', () => void this.loadAgents());
  }

  start(uid: string): void {
    this.stop();
    this.#el.status.textContent = 'Loading conversations…';
    this.#el.status.hidden = false;
    const q = query(
      collection(db, COLLECTIONS.users, uid, COLLECTIONS.conversations),
      orderBy('updatedAt', 'desc'),
      limit(LIST_LIMIT),
    );
    this.#unsubscribe = onSnapshot(
      q,
      (snap) => {
        this.#conversations = snap.docs.map((d) => toConversation(d.id, d.data()));
        this.#renderConversations();
      },
      (err) => {
        this.#el.status.textContent = `Couldn't load your conversations (${err.code}). Reload to try again.`;
        this.#el.status.hidden = false;
      },
    );
    void this.loadAgents();
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#agentsRequest++;
    this.#conversations = [];
    this.#el.list.replaceChildren();
    this.#el.agents.replaceChildren();
  }

  setCurrent(conversationId: string | null): void {
    this.#current = conversationId;
    for (const a of this.#el.list.querySelectorAll('a')) {
      if (a.dataset.id === conversationId) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  #renderConversations(): void {
    const { list, status } = this.#el;
    status.hidden = this.#conversations.length > 0;
    status.textContent = 'No conversations yet. Start one with “New conversation”.';
    list.replaceChildren(
      ...this.#conversations.map((c) =>
        h(
          'li',
          {},
          h(
            'a',
            {
              href: `/c/${c.id}`,
              class: 'conversation',
              'data-id': c.id,
              'aria-current': c.id === this.#current ? 'page' : null,
              onclick: (e: Event) => {
                const m = e as MouseEvent;
                if (m.button !== 0 || m.metaKey || m.ctrlKey || m.shiftKey || m.altKey) return;
                e.preventDefault();
                this.#onOpen(c.id);
              },
            },
            h('span', { class: 'conversation-title' }, c.title),
            h(
              'span',
              { class: 'conversation-meta' },
              h('span', { class: 'preview' }, c.preview),
              when(c.updatedAt),
            ),
          ),
        ),
      ),
    );
  }

  /** (Re)loads the agents; resolves to them (empty on error, which is shown). */
  async loadAgents(): Promise<Agent[]> {
    const request = ++this.#agentsRequest;
    const { agentsStatus, agents, refresh } = this.#el;
    agentsStatus.hidden = false;
    agentsStatus.textContent = 'Loading agents…';
    refresh.disabled = true;
    try {
      const list = (await callables.listAgents()).data.agents;
      if (request !== this.#agentsRequest) return list;
      agentsStatus.textContent = list.length
        ? ''
        : 'No agents yet. Create one with a message like “/create-agent Name: what it does”.';
      agentsStatus.hidden = list.length > 0;
      agents.replaceChildren(
        ...list.map((a) =>
          h(
            'li',
            { class: 'agent', 'data-id': a.id },
            h('span', { class: 'agent-name' }, a.name),
            a.description ? h('span', { class: 'agent-description' }, a.description) : null,
          ),
        ),
      );
      return list;
    } catch (err) {
      if (request === this.#agentsRequest) {
        agentsStatus.textContent = `Couldn't load your agents. ${callableErrorMessage(err)}`;
      }
      return [];
    } finally {
      if (request === this.#agentsRequest) refresh.disabled = false;
    }
  }
}
