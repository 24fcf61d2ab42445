/**
 * The message box: Enter sends, Shift+Enter adds a line, an example fills it; Send is off while a
 * send is on its way or the box is blank.
 */
import { byId } from '../dom.ts';

export class Composer {
  readonly #input = byId<HTMLTextAreaElement>('composer-input');
  readonly #send = byId<HTMLButtonElement>('send');
  readonly #submit: (text: string) => void;
  readonly #busy: () => boolean;

  /** `busy`: a send is on its way; `examples`: holds the example buttons (`data-example`). */
  constructor(submit: (text: string) => void, busy: () => boolean, examples: HTMLElement) {
    this.#submit = submit;
    this.#busy = busy;
    byId<HTMLFormElement>('composer').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#take();
    });
    this.#input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.#take();
      }
    });
    this.#input.addEventListener('input', () => this.update());
    for (const b of examples.querySelectorAll<HTMLButtonElement>('button[data-example]')) {
      b.addEventListener('click', () => {
        this.#input.value = b.dataset.example ?? '';
        this.update();
        this.#input.focus();
      });
    }
  }

  focus(): void {
    this.#input.focus();
  }

  /** Puts an unsent message back, to retry or edit, unless something new was typed meanwhile. */
  restore(text: string): void {
    if (!this.#input.value) this.#input.value = text;
  }

  update(): void {
    const busy = this.#busy();
    this.#send.disabled = busy || !this.#input.value.trim();
    this.#send.textContent = busy ? 'Sending…' : 'Send';
  }

  #take(): void {
    const text = this.#input.value;
    if (!text.trim() || this.#busy()) return;
    this.#input.value = '';
    this.#submit(text);
  }
}
