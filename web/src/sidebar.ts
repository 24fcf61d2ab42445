/** The sidebar: the user's conversations (live from Firestore) and agents (listAgents). */
import { COLLECTIONS } from '@agent-platform/contract';
import { collection, limit, onSnapshot, orderBy, query, type Unsubscribe } from 'firebase/firestore';
import { callables, db, type Agent } from './api.ts';
import { toConversation, type Conversation } from './documents.ts';
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

export interface SidebarHooks {
  /** Open a conversation. */
  open(conversationId: string): void;
  /** Start a new conversation with this agent. */
  chatWith(agent: Agent): void;
  /** Open the editor (null: a new agent). */
  edit(agent: Agent | null): void;
}

const tokens = new Intl.NumberFormat();

export class Sidebar {
  readonly #hooks: SidebarHooks;
  readonly #el = {
    status: byId('conversations-status'),
    list: byId<HTMLUListElement>('conversation-list'),
    agentsStatus: byId('agents-status'),
    agents: byId<HTMLUListElement>('agent-list'),
    refresh: byId<HTMLButtonElement>('refresh-agents'),
    newAgent: byId<HTMLButtonElement>('new-agent'),
    usage: byId('usage'),
  };
  #agents: Agent[] = [];
  #unsubscribe: Unsubscribe | null = null;
  #conversations: Conversation[] = [];
  #current: string | null = null;
  #agentsRequest = 0;

  constructor(hooks: SidebarHooks) {
    this.#hooks = hooks;
    this.#el.refresh.addEventListener('click', () => void this.loadAgents());
    this.#el.newAgent.addEventListener('click', () => this.#hooks.edit(null));
  }

  /** The name of one of the user's agents, as last loaded (null: unknown or deleted). */
  agentName(agentId: string): string | null {
    return this.#agents.find((a) => a.id === agentId)?.name ?? null;
  }

  /** Today's model usage against the daily budget (shown under the agents). */
  async loadUsage(): Promise<void> {
    try {
      const u = (await callables.getUsage()).data;
      const used = u.inputTokens + u.outputTokens;
      this.#el.usage.textContent = `Today: ${tokens.format(used)} of ${tokens.format(u.tokensPerDay)} tokens (${u.calls} model calls)`;
    } catch {
      this.#el.usage.textContent = '';
    }
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
    void this.loadUsage();
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
                this.#hooks.open(c.id);
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

  #renderAgent(a: Agent): HTMLLIElement {
    const del = h('button', { type: 'button', class: 'small danger' }, 'Delete');
    del.addEventListener('click', () => {
      // Two clicks: the first asks.
      if (del.dataset.confirm !== 'yes') {
        del.dataset.confirm = 'yes';
        del.textContent = 'Delete?';
        return;
      }
      del.disabled = true;
      callables
        .deleteAgent({ agentId: a.id })
        .then(() => this.loadAgents())
        .catch((err: unknown) => {
          this.#el.agentsStatus.hidden = false;
          this.#el.agentsStatus.textContent = `Couldn't delete “${a.name}”. ${callableErrorMessage(err)}`;
          del.disabled = false;
        });
    });
    return h(
      'li',
      { class: 'agent', 'data-id': a.id },
      h('span', { class: 'agent-name' }, a.name),
      a.description ? h('span', { class: 'agent-description' }, a.description) : null,
      h(
        'span',
        { class: 'agent-meta' },
        `${a.model ?? 'default model'} · ${a.tools.length} tool${a.tools.length === 1 ? '' : 's'}`,
      ),
      h(
        'span',
        { class: 'row agent-actions' },
        h(
          'button',
          { type: 'button', class: 'small primary', onclick: () => this.#hooks.chatWith(a) },
          'Chat',
        ),
        h('button', { type: 'button', class: 'small', onclick: () => this.#hooks.edit(a) }, 'Edit'),
        del,
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
      this.#agents = list;
      agentsStatus.textContent = list.length
        ? ''
        : 'No agents yet. Create one with “+ New agent”, or ask the agent to.';
      agentsStatus.hidden = list.length > 0;
      agents.replaceChildren(...list.map((a) => this.#renderAgent(a)));
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
