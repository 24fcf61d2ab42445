/**
 * One request's answer, made per request so that nothing of a run outlives it in a warm sandbox:
 * the reply as it is said (each piece goes out at once as a `text` event), then the `result`
 * event with what the run produced. Agents and tools add to it; only the process's loop
 * (agent.ts) ends it.
 */
import {
  REPLY_MAX_CHARS,
  type AgentEvent,
  type CreatedAgent,
  type KnownComponent,
  type ResultEvent,
} from '@agent-platform/contract';

export type TurnStatus = NonNullable<ResultEvent['status']>;

const REPLY_TRUNCATED = '\n[reply truncated]';
const FAILED_UNEXPECTEDLY = 'The agent failed unexpectedly.';

export class Turn {
  readonly #emit: (event: AgentEvent) => void;
  #text = '';
  #full = false;
  #ended = false;
  #component: KnownComponent | null = null;
  #agent: CreatedAgent | null = null;
  #workspaceChanged = false;

  /** @param emit writes one event line to stdout */
  constructor(emit: (event: AgentEvent) => void) {
    this.#emit = emit;
  }

  /** The reply so far. */
  get text(): string {
    return this.#text;
  }

  /**
   * Adds to the reply and emits it as a `text` delta. The reply stops at REPLY_MAX_CHARS with
   * `[reply truncated]`: the runner would refuse a longer result (resultEventSchema).
   */
  say(delta: string): void {
    if (this.#full || this.#ended || delta === '') return;
    const room = REPLY_MAX_CHARS - REPLY_TRUNCATED.length - this.#text.length;
    if (delta.length > room) {
      delta = delta.slice(0, Math.max(0, room)) + REPLY_TRUNCATED;
      this.#full = true;
    }
    this.#text += delta;
    this.#emit({ type: 'text', delta });
  }

  /** Says `text` as a paragraph of its own: after a blank line, unless nothing was said yet. */
  sayParagraph(text: string): void {
    this.say(`${this.#text === '' ? '' : '\n\n'}${text}`);
  }

  /** The component the result carries (a later one replaces it). */
  show(component: KnownComponent): void {
    this.#component = component;
  }

  /** The agent the result carries (a later one replaces it). */
  created(agent: CreatedAgent): void {
    this.#agent = agent;
  }

  /** Code ran or a file was written: the runner must save /workspace after this run. */
  changedWorkspace(): void {
    this.#workspaceChanged = true;
  }

  /**
   * Ends the turn with its result. `workspaceChanged` stays false unless code ran or a file was
   * written, which spares the runner a save of /workspace after most runs.
   */
  finish(status: TurnStatus): void {
    this.#end({
      type: 'result',
      text: this.#text,
      status,
      component: this.#component,
      agent: this.#agent,
      workspaceChanged: this.#workspaceChanged,
    });
  }

  /**
   * Ends a turn whose agent failed in itself (a bug, not an outcome): the reply says so if it is
   * empty, what the turn built is dropped, and the workspace counts as changed since code may
   * have run before the failure.
   */
  failUnexpectedly(): void {
    if (this.#text === '') this.say(FAILED_UNEXPECTEDLY);
    this.#end({
      type: 'result',
      text: this.#text,
      status: 'error',
      component: null,
      agent: null,
      workspaceChanged: true,
    });
  }

  /** The result is the answer's last line: the runner stops reading at it. */
  #end(result: ResultEvent): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#emit(result);
  }
}
