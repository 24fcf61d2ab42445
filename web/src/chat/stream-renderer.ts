/**
 * The two bubbles after the stored messages: the message being sent and its reply so far
 * ("Agent is working…", the streamed text and code output, then the result), for what the stored
 * documents do not show yet (unstored.ts). Streamed text re-renders at most every
 * STREAM_RENDER_MS.
 */
import type { SendResult } from '@agent-platform/contract';
import { byId, h } from '../dom.ts';
import { renderText } from '../render.ts';
import { RenderThrottle } from './render-throttle.ts';
import type { ReplyDraft, Unstored } from './unstored.ts';

/** Streamed text is re-rendered at most this often. */
const STREAM_RENDER_MS = 50;
/** Closer than this to the end, the thread follows what is added. */
const FOLLOW_WITHIN_PX = 120;

/** Whether the reader is at (or near) the end of the thread, so it should stay there. */
export function nearBottom(thread: HTMLElement): boolean {
  return thread.scrollHeight - thread.scrollTop - thread.clientHeight < FOLLOW_WITHIN_PX;
}

export class StreamRenderer {
  readonly #user = byId('pending-user');
  readonly #reply = byId('pending-reply');
  readonly #thread: HTMLElement;
  readonly #read: () => Unstored;
  readonly #result: (r: SendResult) => Node[];
  readonly #throttle = new RenderThrottle(() => this.render(nearBottom(this.#thread)), STREAM_RENDER_MS);

  /** `read`: what to show now; `result`: a result's parts, as a stored reply shows them. */
  constructor(thread: HTMLElement, read: () => Unstored, result: (r: SendResult) => Node[]) {
    this.#thread = thread;
    this.#read = read;
    this.#result = result;
  }

  /** Renders at once; `stick` scrolls to the end. */
  render(stick: boolean): void {
    const { user, reply } = this.#read();
    this.#user.hidden = user === null;
    if (user !== null) {
      this.#user.replaceChildren(
        h('span', { class: 'who' }, 'You'),
        renderText(user),
        h('p', { class: 'msg-note' }, 'Sending…'),
      );
    }
    this.#reply.hidden = reply === null;
    if (reply) {
      this.#reply.setAttribute('aria-busy', String(reply.kind !== 'result'));
      this.#reply.replaceChildren(h('span', { class: 'who' }, 'Agent'), ...this.#draft(reply));
    }
    if (stick) this.#thread.scrollTop = this.#thread.scrollHeight;
  }

  /** Renders a streamed chunk (throttled), following it if the reader is at the end. */
  streamed(): void {
    this.#throttle.request();
  }

  #draft(reply: ReplyDraft): Node[] {
    if (reply.kind === 'result') return this.#result(reply.result);
    if (reply.kind === 'streamed') return [renderText(reply.text)];
    return [
      h('p', { class: 'typing' }, h('span', { class: 'dots', 'aria-hidden': 'true' }), 'Agent is working…'),
    ];
  }
}
