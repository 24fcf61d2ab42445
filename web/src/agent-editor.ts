/**
 * The agent editor: create or edit one of the user's agents (name, description, instructions,
 * model from the platform's list, tools it may use). Saving calls createAgent or updateAgent;
 * the functions check every field and a refusal is shown here, naming the field.
 */
import { AGENT_TOOLS, type AgentTool } from '@agent-platform/contract';
import { FirebaseError } from 'firebase/app';
import { callables, type Agent } from './api.ts';
import { byId, h } from './dom.ts';
import { callableErrorMessage } from './errors.ts';

const TOOL_LABELS: Record<AgentTool, string> = {
  run_code: 'Run code',
  read_file: 'Read files',
  write_file: 'Write files',
  create_agent: 'Create agents',
  show_component: 'Show cards, tables, buttons',
};

export class AgentEditor {
  readonly #onSaved: (agent: Agent) => void;
  readonly #el = {
    form: byId<HTMLFormElement>('agent-editor'),
    title: byId('agent-editor-title'),
    name: byId<HTMLInputElement>('agent-name'),
    description: byId<HTMLInputElement>('agent-description'),
    instructions: byId<HTMLTextAreaElement>('agent-instructions'),
    model: byId<HTMLSelectElement>('agent-model'),
    tools: byId<HTMLFieldSetElement>('agent-tools'),
    error: byId('agent-editor-error'),
    save: byId<HTMLButtonElement>('agent-save'),
    cancel: byId<HTMLButtonElement>('agent-cancel'),
  };
  #editing: Agent | null = null;

  constructor(onSaved: (agent: Agent) => void) {
    this.#onSaved = onSaved;
    this.#el.tools.append(
      ...AGENT_TOOLS.map((t) =>
        h(
          'label',
          { class: 'check' },
          h('input', { type: 'checkbox', name: 'tools', value: t, checked: true }),
          ` ${TOOL_LABELS[t]}`,
        ),
      ),
    );
    this.#el.form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.#save();
    });
    this.#el.cancel.addEventListener('click', () => this.close());
  }

  /** Opens the editor for a new agent (null) or for `agent`. */
  async open(agent: Agent | null): Promise<void> {
    const el = this.#el;
    this.#editing = agent;
    el.title.textContent = agent ? `Edit “${agent.name}”` : 'New agent';
    el.name.value = agent?.name ?? '';
    el.description.value = agent?.description ?? '';
    el.instructions.value = agent?.instructions ?? '';
    for (const box of el.tools.querySelectorAll<HTMLInputElement>('input[name=tools]')) {
      box.checked = agent ? agent.tools.includes(box.value as AgentTool) : true;
    }
    this.#showError(null);
    el.form.hidden = false;
    el.name.focus();
    el.model.replaceChildren(h('option', { value: '' }, 'Platform default'));
    try {
      const { models, default: def, configured } = (await callables.listModels()).data;
      el.model.replaceChildren(
        h(
          'option',
          { value: '' },
          configured ? `Platform default${def ? ` (${def})` : ''}` : 'No model (offline)',
        ),
        ...models.map((m) => h('option', { value: m }, m)),
      );
    } catch {
      // The default stays selectable; saving with it needs no list.
    }
    el.model.value = agent?.model ?? '';
  }

  close(): void {
    this.#el.form.hidden = true;
    this.#editing = null;
  }

  #showError(text: string | null): void {
    this.#el.error.textContent = text ?? '';
    this.#el.error.hidden = !text;
  }

  async #save(): Promise<void> {
    const el = this.#el;
    const fields = {
      name: el.name.value,
      description: el.description.value,
      instructions: el.instructions.value,
      model: el.model.value || null,
      tools: [...el.tools.querySelectorAll<HTMLInputElement>('input[name=tools]:checked')].map(
        (b) => b.value as AgentTool,
      ),
    };
    el.save.disabled = true;
    this.#showError(null);
    try {
      const editing = this.#editing;
      const { agent } = editing
        ? (await callables.updateAgent({ agentId: editing.id, ...fields })).data
        : (await callables.createAgent(fields)).data;
      this.close();
      this.#onSaved(agent);
    } catch (err) {
      // The functions name the field they refused ("name: must not be empty").
      const refused = err instanceof FirebaseError && err.code === 'functions/invalid-argument';
      this.#showError(refused ? `Not saved: ${err.message}` : callableErrorMessage(err));
    } finally {
      el.save.disabled = false;
    }
  }
}
