import { createHash } from 'node:crypto';
import {
  requestDocSchema,
  type RequestDoc,
  type SendMessageInput,
  type SendResult,
} from '@agent-platform/contract';
import {
  InternalError,
  InvalidInputError,
  RequestInProgressError,
  RunnerTimeoutError,
  RunnerUnavailableError,
} from '../errors.ts';

/** What a request asked, kept in its record: a retry with its requestId must ask the same. */
export interface Asked {
  messageSha256: string;
  /** The conversation it named (null: it started one). */
  askedConversationId: string | null;
}

export function askedOf(input: Pick<SendMessageInput, 'message' | 'conversationId'>): Asked {
  return {
    messageSha256: createHash('sha256').update(input.message, 'utf8').digest('hex'),
    askedConversationId: input.conversationId ?? null,
  };
}

/** Whether a retry asks what the stored request asked (a retry may leave out the conversation). */
export function sameAsk(request: RequestDoc, asked: Asked): boolean {
  return (
    request.messageSha256 === asked.messageSha256 &&
    (asked.askedConversationId === null || asked.askedConversationId === request.conversationId)
  );
}

/**
 * A retry returns the first outcome: the stored result, the same error, or "in progress". A
 * requestId reused for another message or conversation is refused: answering it with the first
 * message's result would be wrong, and silently.
 */
export function replay(data: unknown, asked: Asked): SendResult {
  const parsed = requestDocSchema.safeParse(data);
  if (!parsed.success) throw new InternalError('a stored request record is not a RequestDoc');
  const doc = parsed.data;
  if (!sameAsk(doc, asked)) {
    throw new InvalidInputError(
      'requestId: was already used for another message; use a new requestId for a new message',
      'requestId',
    );
  }
  if (doc.state === 'done' && doc.result) return doc.result;
  if (doc.state === 'pending') throw new RequestInProgressError();
  switch (doc.errorCode) {
    case 'deadline-exceeded':
      throw new RunnerTimeoutError();
    case 'unavailable':
      throw new RunnerUnavailableError();
    default:
      throw new InternalError(`replayed failure ${doc.errorCode ?? 'unknown'}`);
  }
}
