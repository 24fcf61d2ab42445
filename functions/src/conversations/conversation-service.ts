import { FieldPath, Timestamp, type Firestore } from 'firebase-admin/firestore';
import {
  COLLECTIONS,
  leaseExpired,
  conversationDocSchema,
  messageDocSchema,
  type ConversationSummary,
  type GetConversationOutput,
  type ListConversationsOutput,
  type MessageView,
} from '@agent-platform/contract';
import { ConversationNotFoundError, InternalError } from '../errors.ts';
import type { DbSteps } from '../firestore/db-steps.ts';
import { iso } from '../firestore/iso.ts';
import { userRef } from '../firestore/refs.ts';
import { decodeCursor, encodeCursor } from './cursor.ts';

/**
 * A user's conversations as clients read them (users/{uid}/conversations/{cid}/messages/{mid}):
 * listed, opened page by page, deleted. Sending is send/message-sender.ts.
 */
export class ConversationService {
  readonly #db: Firestore;
  readonly #steps: DbSteps;

  constructor(db: Firestore, steps: DbSteps) {
    this.#db = db;
    this.#steps = steps;
  }

  #conversations(uid: string) {
    return userRef(this.#db, uid).collection(COLLECTIONS.conversations);
  }

  async listConversations(uid: string, limit: number, cursor?: string): Promise<ListConversationsOutput> {
    let q = this.#conversations(uid)
      .orderBy('updatedAt', 'desc')
      .orderBy(FieldPath.documentId(), 'desc')
      .limit(limit);
    if (cursor) {
      const [ms, id] = decodeCursor(
        cursor,
        (v): v is [number, string] =>
          Array.isArray(v) && v.length === 2 && Number.isInteger(v[0]) && typeof v[1] === 'string',
      );
      q = q.startAfter(Timestamp.fromMillis(ms), id);
    }
    const snap = await this.#steps.step(q.get(), 'listing conversations');
    const conversations = snap.docs.flatMap((d): ConversationSummary[] => {
      const c = this.#steps.read(uid, conversationDocSchema, d);
      if (!c) return [];
      return [
        {
          id: d.id,
          title: c.title,
          createdAt: iso(c.createdAt),
          updatedAt: iso(c.updatedAt),
          messageCount: c.messageCount,
          lastMessagePreview: c.lastMessagePreview,
          agentId: c.agentId ?? null,
        },
      ];
    });
    const last = snap.docs[snap.docs.length - 1];
    const nextCursor =
      snap.docs.length === limit && last
        ? encodeCursor([(last.get('updatedAt') as Timestamp).toMillis(), last.id])
        : null;
    return { conversations, nextCursor };
  }

  async getConversation(
    uid: string,
    conversationId: string,
    limit: number,
    cursor?: string,
  ): Promise<GetConversationOutput> {
    const convRef = this.#conversations(uid).doc(conversationId);
    let q = convRef.collection(COLLECTIONS.messages).orderBy('seq', 'asc').limit(limit);
    if (cursor) q = q.startAfter(decodeCursor(cursor, (v): v is number => Number.isInteger(v)));
    const [convSnap, snap] = await this.#steps.step(
      Promise.all([convRef.get(), q.get()]),
      'reading a conversation',
    );
    const nowMs = Date.now();
    if (!convSnap.exists) throw new ConversationNotFoundError();
    const conv = this.#steps.read(uid, conversationDocSchema, convSnap);
    if (!conv) throw new InternalError('a stored conversation does not match the contract');
    const messages = snap.docs.flatMap((d): MessageView[] => {
      const m = this.#steps.read(uid, messageDocSchema, d);
      if (!m) return [];
      return [
        {
          id: d.id,
          role: m.role,
          text: m.text,
          // Pending past its lease: its function is gone, so it was not answered.
          status: leaseExpired(m.status, m.leaseExpiresAt?.toMillis(), nowMs) ? 'failed' : m.status,
          component: m.component,
          runId: m.runId,
          createdAt: iso(m.createdAt),
          usage: m.usage ?? null,
        },
      ];
    });
    // The cursor follows the page as read, so an invalid message left out does not end paging.
    const last = snap.docs[snap.docs.length - 1];
    return {
      conversation: {
        id: convSnap.id,
        title: conv.title,
        createdAt: iso(conv.createdAt),
        updatedAt: iso(conv.updatedAt),
        messageCount: conv.messageCount,
        agentId: conv.agentId ?? null,
      },
      messages,
      nextCursor: snap.docs.length === limit && last ? encodeCursor(last.get('seq') as number) : null,
    };
  }

  async deleteConversation(uid: string, conversationId: string): Promise<void> {
    const convRef = this.#conversations(uid).doc(conversationId);
    const snap = await this.#steps.step(convRef.get(), 'reading a conversation');
    if (!snap.exists) throw new ConversationNotFoundError();
    await this.#db.recursiveDelete(convRef);
  }
}
