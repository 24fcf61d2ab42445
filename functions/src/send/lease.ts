import { leaseExpired, type MessageDoc, type RequestDoc } from '@agent-platform/contract';
import { sameAsk, type Asked } from './replay.ts';

/**
 * A pending message (and its request record) belongs to the call that stored it for its lease
 * (PENDING_LEASE_MS). Past it, that call is taken for dead: a retry with the same requestId may
 * run the message again, in the same message, with a new lease. The call that outlived its lease
 * then owns nothing and stores nothing.
 */

/** Whether the call holding the lease `leaseMs` still owns the message: pending, with that very lease. */
export function owns(message: MessageDoc | null, leaseMs: number): boolean {
  return message?.status === 'pending' && message.leaseExpiresAt?.toMillis() === leaseMs;
}

/**
 * Whether a stored request may run again: it asks the same (else the replay refuses), and it
 * failed or is pending past its lease. Its message must also still be unanswered (`unanswered`).
 */
export function retakeable(request: RequestDoc | null, asked: Asked, nowMs: number): request is RequestDoc {
  if (!request || !sameAsk(request, asked)) return false;
  return request.state === 'failed' || leaseExpired(request.state, request.leaseExpiresAt?.toMillis(), nowMs);
}

/** A retaken request's message: gone with its conversation, or answered after all, it is not run again. */
export function unanswered(message: MessageDoc | null): message is MessageDoc {
  return message !== null && message.status !== 'done';
}
