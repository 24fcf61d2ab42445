/**
 * One send and its reply, as the client lives through them:
 * idle -> sending -> streaming -> done | failed. No DOM and no Firebase set-up: the callable comes
 * in, every state goes out to one listener, so this runs in Node (web/test/send.unit.test.ts)
 * and can move into a client SDK as it is. What the page shows of a send is not decided here:
 * the stored documents win over it (unstored.ts).
 */
import {
  withDeadline,
  type SendMessageInput,
  type SendResult,
  type TextChunk,
} from '@agent-platform/contract';
import { FirebaseError } from 'firebase/app';

/** What the client sends (sendMessage's input; its requestId is always set: a retry reuses it). */
export type SendRequest = SendMessageInput & { requestId: string };

/** sendMessage's `.stream()`: the callable's chunks, then its result (or error). */
export type StreamingCall = (
  request: SendRequest,
) => Promise<{ stream: AsyncIterable<TextChunk>; data: Promise<SendResult> }>;

/** The message on its way. */
export interface Outgoing {
  requestId: string;
  /** null for a first message until its result names the conversation it created. */
  conversationId: string | null;
  text: string;
}

export type SendState =
  | { phase: 'idle' }
  /** Called; nothing streamed yet. */
  | { phase: 'sending'; send: Outgoing }
  /** `streamed`: the reply's text so far. */
  | { phase: 'streaming'; send: Outgoing; streamed: string }
  | { phase: 'done'; send: Outgoing; result: SendResult }
  /** `error`: what the callable rejected with. */
  | { phase: 'failed'; send: Outgoing; error: unknown };

export type SettledSend = Extract<SendState, { phase: 'done' | 'failed' }>;

/** How long the result may lag the end of the stream (default 5 s): see #result. */
const RESULT_WAIT_MS = 5_000;
const IDLE: SendState = { phase: 'idle' };

/** A fresh idempotency key for one send: 32 of [0-9a-f] (requestIdSchema: 8-128 of [A-Za-z0-9_-]). */
export function newRequestId(): string {
  return crypto.randomUUID().replaceAll('-', '');
}

/** A send is on its way (no other may start). */
export function inFlight(state: SendState): state is Extract<SendState, { phase: 'sending' | 'streaming' }> {
  return state.phase === 'sending' || state.phase === 'streaming';
}

/** A send has ended; its state stays until the next send, a dismiss or a reset. */
export function settled(state: SendState): state is SettledSend {
  return state.phase === 'done' || state.phase === 'failed';
}

export class SendMachine {
  readonly #call: StreamingCall;
  readonly #onChange: (state: SendState) => void;
  readonly #resultWaitMs: number;
  #state: SendState = IDLE;
  /** The send whose states count; reset() drops it, so an abandoned send goes quiet. */
  #current: object | null = null;

  /** `onChange` hears every state, reset and dismiss included; it must not throw. */
  constructor(
    call: StreamingCall,
    onChange: (state: SendState) => void,
    { resultWaitMs = RESULT_WAIT_MS }: { resultWaitMs?: number } = {},
  ) {
    this.#call = call;
    this.#onChange = onChange;
    this.#resultWaitMs = resultWaitMs;
  }

  get state(): SendState {
    return this.#state;
  }

  /**
   * Sends and streams the reply; resolves to how it settled, or null when it was refused (another
   * send is on its way) or abandoned by reset().
   */
  async send(request: SendRequest): Promise<SettledSend | null> {
    if (inFlight(this.#state)) return null;
    const token = {};
    this.#current = token;
    const send: Outgoing = {
      requestId: request.requestId,
      conversationId: request.conversationId ?? null,
      text: request.message,
    };
    this.#enter(token, { phase: 'sending', send });
    let end: SettledSend;
    try {
      const result = await this.#reply(token, request, send);
      end = { phase: 'done', send: { ...send, conversationId: result.conversationId }, result };
    } catch (error) {
      end = { phase: 'failed', send, error };
    }
    return this.#enter(token, end) ? end : null;
  }

  /** Forgets everything (e.g. on sign-out): a send on its way reports nothing more. */
  reset(): void {
    this.#current = null;
    this.#set(IDLE);
  }

  /** Forgets a settled send (its conversation was left); one on its way stays. */
  dismiss(): void {
    if (!settled(this.#state)) return;
    this.#current = null;
    this.#set(IDLE);
  }

  async #reply(token: object, request: SendRequest, send: Outgoing): Promise<SendResult> {
    const { stream, data } = await this.#call(request);
    data.catch(() => undefined); // awaited below, after the stream
    let streamed = '';
    try {
      for await (const chunk of stream) {
        if (chunk?.type === 'text' && typeof chunk.delta === 'string') {
          streamed += chunk.delta;
          this.#enter(token, { phase: 'streaming', send, streamed });
        }
      }
    } catch {
      // The same error rejects `data`.
    }
    return this.#result(data);
  }

  /**
   * The callable's result. The stream has ended when this is called, and the SDK settles `data`
   * when it reads the result (or error) line, so it is settled by now unless the response had
   * neither (e.g. a proxy error page), which the SDK would leave pending forever.
   */
  #result(data: Promise<SendResult>): Promise<SendResult> {
    return withDeadline(
      data,
      AbortSignal.timeout(this.#resultWaitMs),
      () => new FirebaseError('functions/internal', 'the reply ended without a result'),
    );
  }

  /** Enters `state` if `token`'s send still counts. */
  #enter(token: object, state: SendState): boolean {
    if (this.#current !== token) return false;
    this.#set(state);
    return true;
  }

  #set(state: SendState): void {
    this.#state = state;
    this.#onChange(state);
  }
}
