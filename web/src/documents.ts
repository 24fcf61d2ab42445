/**
 * The stored documents the client reads (users/{uid}/conversations and their messages), as shown:
 * every field read defensively, so an odd document renders as something rather than throwing.
 */
import { leaseExpired, type MessageDoc, type ModelUsage } from '@agent-platform/contract';
import { Timestamp, type DocumentData } from 'firebase/firestore';

/** users/{uid}/conversations/{id} */
export interface Conversation {
  id: string;
  title: string;
  preview: string;
  updatedAt: Date | null;
}

/** users/{uid}/conversations/{cid}/messages/{id} (MessageDoc in the contract), as shown. */
export interface Message {
  id: string;
  seq: number;
  role: MessageDoc['role'];
  text: string;
  /** user: pending | done | failed; agent: a RunStatus */
  status: string;
  component: unknown;
  requestId: string | null;
  /** Why a user message failed (a callable error code), when it did. */
  error: string | null;
  /** A pending user message: when its function's lease ends (then it was not answered). */
  leaseExpiresAtMs: number | null;
  /** An agent message: what its run's model calls used (null: none recorded). */
  usage: ModelUsage | null;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

export function toConversation(id: string, d: DocumentData): Conversation {
  return {
    id,
    title: str(d.title) || 'Untitled',
    preview: str(d.lastMessagePreview),
    updatedAt: d.updatedAt instanceof Timestamp ? d.updatedAt.toDate() : null,
  };
}

export function toMessage(id: string, d: DocumentData): Message {
  return {
    id,
    seq: typeof d.seq === 'number' ? d.seq : 0,
    role: d.role === 'user' ? 'user' : 'agent',
    text: str(d.text),
    status: str(d.status),
    component: d.component ?? null,
    requestId: str(d.requestId) || null,
    error: str(d.error) || null,
    leaseExpiresAtMs: d.leaseExpiresAt instanceof Timestamp ? d.leaseExpiresAt.toMillis() : null,
    usage: toUsage(d.usage),
  };
}

const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

export function toUsage(v: unknown): ModelUsage | null {
  if (typeof v !== 'object' || v === null) return null;
  const u = v as Record<string, unknown>;
  return {
    model: typeof u.model === 'string' ? u.model : null,
    calls: count(u.calls),
    inputTokens: count(u.inputTokens),
    outputTokens: count(u.outputTokens),
    exhausted: u.exhausted === 'tokens' || u.exhausted === 'calls' ? u.exhausted : null,
  };
}

/** A pending message whose function is gone (its lease ended): it will not be answered. */
export function notAnswered(m: Message, nowMs: number): boolean {
  return m.status === 'failed' || leaseExpired(m.status, m.leaseExpiresAtMs, nowMs);
}
