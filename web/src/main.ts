/** Wires the views together: auth state, routing (/ and /c/<id>), the narrow-screen layout. */
import './styles.css';
import { ID_PATTERN } from '@agent-platform/contract';
import { onAuthStateChanged, signOut, type User } from 'firebase/auth';
import { auth } from './api.ts';
import { setUpAuthView } from './auth-view.ts';
import { AgentEditor } from './agent-editor.ts';
import { ConversationView } from './chat/conversation-view.ts';
import { FilesView } from './files-view.ts';
import { byId } from './dom.ts';
import { Sidebar } from './sidebar.ts';

const shell = byId('shell');
const authView = byId('auth-view');

function conversationFromPath(): string | null {
  const m = /^\/c\/([^/]+)\/?$/.exec(location.pathname);
  return m && ID_PATTERN.test(m[1]!) ? m[1]! : null;
}

/** On a narrow screen the list and the chat take turns; wide screens show both. */
function showView(view: 'list' | 'chat'): void {
  shell.dataset.view = view;
}

function navigate(conversationId: string | null, replace = false): void {
  const path = conversationId ? `/c/${conversationId}` : '/';
  if (location.pathname !== path) history[replace ? 'replaceState' : 'pushState'](null, '', path);
  route();
}

function route(): void {
  const id = conversationFromPath();
  if (!id && location.pathname !== '/') history.replaceState(null, '', '/');
  chat.open(id);
  sidebar.setCurrent(id);
}

const chat = new ConversationView({
  navigate,
  async agentCreated(agentId) {
    const agents = await sidebar.loadAgents();
    return agents.find((a) => a.id === agentId)?.name ?? null;
  },
  agentName: (agentId) => sidebar.agentName(agentId),
  replied: () => {
    void sidebar.loadUsage();
    void filesView.load();
  },
});
const filesView = new FilesView();
const editor = new AgentEditor((agent) => {
  void sidebar.loadAgents();
  chat.notice(`Saved the agent “${agent.name}”.`);
});
const sidebar = new Sidebar({
  open(id) {
    navigate(id);
    showView('chat');
    byId('chat-title').focus();
  },
  chatWith(agent) {
    editor.close();
    navigate(null);
    chat.startWith(agent);
    showView('chat');
  },
  edit(agent) {
    showView('chat');
    void editor.open(agent);
  },
});

setUpAuthView();
window.addEventListener('popstate', route);

byId('new-conversation').addEventListener('click', () => {
  navigate(null);
  showView('chat');
  chat.focusComposer();
});
byId('show-list').addEventListener('click', () => {
  showView('list');
  byId('conversations-heading').focus();
});
byId('sign-out').addEventListener('click', () => {
  // Stop the listeners first: after sign-out they could only fail.
  sidebar.stop();
  filesView.stop();
  chat.setUser(null);
  void signOut(auth);
});

function label(user: User): string {
  if (user.isAnonymous) return 'Guest (anonymous)';
  return user.email ?? user.displayName ?? 'Signed in';
}

onAuthStateChanged(auth, (user) => {
  byId('boot').hidden = true;
  authView.hidden = user !== null;
  shell.hidden = user === null;
  if (!user) {
    sidebar.stop();
    chat.setUser(null);
    if (location.pathname !== '/') history.replaceState(null, '', '/');
    byId('auth-email').focus();
    return;
  }
  byId('user-label').textContent = label(user);
  sidebar.start(user.uid);
  void filesView.load();
  chat.setUser(user.uid);
  showView('chat');
  route();
});
