/** Deleting the open conversation: the header's Delete button, then an inline confirmation. */
import { callables } from '../api.ts';
import { byId } from '../dom.ts';

export interface DeleteHooks {
  /** The conversation to delete: the open one (null: a new conversation, nothing to delete). */
  target(): { id: string; title: string } | null;
  deleted(conversationId: string): void;
  failed(err: unknown): void;
}

export class DeleteDialog {
  readonly #hooks: DeleteHooks;
  readonly #open = byId<HTMLButtonElement>('delete-conversation');
  readonly #dialog = byId('confirm-delete');
  readonly #text = byId('confirm-text');
  readonly #yes = byId<HTMLButtonElement>('confirm-delete-yes');
  readonly #no = byId<HTMLButtonElement>('confirm-delete-no');

  constructor(hooks: DeleteHooks) {
    this.#hooks = hooks;
    this.#open.addEventListener('click', () => this.#ask());
    this.#no.addEventListener('click', () => this.close(true));
    this.#yes.addEventListener('click', () => void this.#delete());
    this.#dialog.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.close(true);
    });
  }

  /** Shows the Delete button only when there is a conversation to delete. */
  render(): void {
    this.#open.hidden = this.#hooks.target() === null;
  }

  /** `refocus`: back to the Delete button (when the conversation stays open). */
  close(refocus: boolean): void {
    this.#dialog.hidden = true;
    if (refocus) this.#open.focus();
  }

  #ask(): void {
    const title = this.#hooks.target()?.title ?? '';
    this.#text.textContent = `Delete “${title}” and all its messages? This cannot be undone.`;
    this.#dialog.hidden = false;
    this.#yes.disabled = false;
    this.#no.focus();
  }

  async #delete(): Promise<void> {
    const id = this.#hooks.target()?.id;
    if (!id) return;
    this.#yes.disabled = true;
    try {
      await callables.deleteConversation({ conversationId: id });
      this.close(false);
      this.#hooks.deleted(id);
    } catch (err) {
      this.close(true);
      this.#hooks.failed(err);
    }
  }
}
