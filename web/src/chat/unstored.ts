/**
 * One source of truth for a reply: the Firestore document. A send reaches the page three ways
 * (the callable's stream, its result, the messages listener); the stream and the result only fill
 * in until the listener shows the stored message, and then it wins. Pure: unit-tested in Node.
 */
import type { SendResult } from '@agent-platform/contract';
import type { Message } from '../documents.ts';
import { settled, type SendState } from './send-machine.ts';

/** The reply before its document: still working, its text so far, or the callable's result. */
export type ReplyDraft =
  { kind: 'working' } | { kind: 'streamed'; text: string } | { kind: 'result'; result: SendResult };

/** What of a send the stored messages do not show yet (null: nothing to fill in). */
export interface Unstored {
  /** The message's text. */
  user: string | null;
  reply: ReplyDraft | null;
}

const NOTHING: Unstored = { user: null, reply: null };

/** What of `state` the page shows beside `messages`, the open conversation's (null: a new one). */
export function unstored(
  state: SendState,
  conversationId: string | null,
  messages: readonly Pick<Message, 'role' | 'requestId'>[],
): Unstored {
  // A failed send has no reply to wait for; its stored message says it was not answered.
  if (state.phase === 'idle' || state.phase === 'failed') return NOTHING;
  if (state.send.conversationId !== conversationId) return NOTHING;
  const stored = messages.filter((m) => m.requestId === state.send.requestId);
  return {
    user: stored.some((m) => m.role === 'user') ? null : state.send.text,
    reply: stored.some((m) => m.role === 'agent') ? null : draft(state),
  };
}

function draft(state: Extract<SendState, { phase: 'sending' | 'streaming' | 'done' }>): ReplyDraft {
  if (state.phase === 'done') return { kind: 'result', result: state.result };
  if (state.phase === 'streaming' && state.streamed) return { kind: 'streamed', text: state.streamed };
  return { kind: 'working' };
}

/**
 * Whether opening `toId` from `fromId` leaves a settled send behind. Its unstored parts belong to
 * its conversation; shown there again later they would flash stale bubbles while that
 * conversation loads. A first message moving to the conversation it created is not leaving.
 */
export function leavesSettledSend(state: SendState, fromId: string | null, toId: string | null): boolean {
  return settled(state) && !(fromId === null && state.send.conversationId === toId);
}
