import type { DocumentReference } from 'firebase-admin/firestore';
import {
  COLLECTIONS,
  HISTORY_ENTRY_MAX_CHARS,
  HISTORY_MESSAGES_SENT,
  messageDocSchema,
  type HistoryEntry,
} from '@agent-platform/contract';
import type { DbSteps } from '../firestore/db-steps.ts';
import { boundedHistory } from './storable.ts';

/** A stored message as history, with its place in the conversation. */
export type SeqEntry = HistoryEntry & { seq: number };

/** The conversation's last HISTORY_MESSAGES_SENT messages, oldest first (invalid ones left out). */
export async function recentMessages(
  steps: DbSteps,
  uid: string,
  conversation: DocumentReference,
): Promise<SeqEntry[]> {
  const snap = await conversation
    .collection(COLLECTIONS.messages)
    .orderBy('seq', 'desc')
    .limit(HISTORY_MESSAGES_SENT)
    .get();
  return snap.docs.reverse().flatMap((d) => {
    const m = steps.read(uid, messageDocSchema, d);
    return m ? [{ seq: m.seq, role: m.role, text: m.text.slice(0, HISTORY_ENTRY_MAX_CHARS) }] : [];
  });
}

/**
 * The history a message at `seq` runs with: the messages before it, bounded. The history is read
 * beside the transaction that stores the message, so messages written meanwhile are left out here.
 */
export function historyBefore(entries: SeqEntry[], seq: number): HistoryEntry[] {
  return boundedHistory(entries.filter((m) => m.seq < seq).map(({ role, text }) => ({ role, text })));
}
