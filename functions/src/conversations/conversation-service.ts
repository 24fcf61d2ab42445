import {
  FieldPath,
  FieldValue,
  Timestamp,
  type DocumentReference,
  type Firestore,
} from 'firebase-admin/firestore';
import {
  ConversationNotFoundError,
  DomainError,
  InternalError,
  InvalidInputError,
  RateLimitedError,
  RequestInProgressError,
  RunnerTimeoutError,
  RunnerUnavailableError,
} from '../errors.ts';
import type { RunResult, RunnerClient } from '../runner/runner-client.ts';
import type { SendMessageInput } from './schemas.ts';

/** What sendMessage returns (and what a retry with the same requestId returns again). */
export interface SendResult {
  conversationId: string;
  messageId: string;
  text: string;
  status: RunResult['status'];
  component: Record<string, unknown> | null;
  agentCreated: boolean;
  agentId: string | null;
}

export interface ServiceLimits {
  messagesPerMinute: number;
}

const HISTORY_MESSAGES = 20;
const PREVIEW_CHARS = 140;
const TITLE_CHARS = 80;
const WINDOW_MS = 60_000;
/** gRPC status of a write to a missing document. */
const NOT_FOUND = 5;

/** Firestore layout: users/{uid}/{conversations/{cid}/messages/{mid}, agents/{aid}, requests/{rid}}. */
export class ConversationService {
  readonly #db: Firestore;
  readonly #runner: RunnerClient;
  readonly #limits: () => ServiceLimits;

  constructor(db: Firestore, runner: RunnerClient, limits: () => ServiceLimits) {
    this.#db = db;
    this.#runner = runner;
    this.#limits = limits;
  }

  #user(uid: string): DocumentReference {
    return this.#db.collection('users').doc(uid);
  }

  /**
   * Stores the user's message (pending), calls the runner, stores the reply and marks the message
   * done, or marks it failed. Each step is one transaction, so no crash leaves a half-written
   * conversation, and a retry with the same requestId never makes a second message or run.
   */
  async sendMessage(
    uid: string,
    input: SendMessageInput,
    onText?: (delta: string) => void,
  ): Promise<SendResult> {
    const user = this.#user(uid);
    const convs = user.collection('conversations');
    const requestRef = input.requestId ? user.collection('requests').doc(input.requestId) : null;
    const now = Date.now();
    // The history read does not depend on the transaction: run both at once (saves a round trip,
    // ~17 ms on the emulator). Messages written meanwhile are filtered out by seq below.
    const historyRead = input.conversationId
      ? this.#recentMessages(convs.doc(input.conversationId))
      : Promise.resolve([]);
    historyRead.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile

    type Prep =
      | { replay: RequestDoc }
      | { conversationRef: DocumentReference; messageRef: DocumentReference; seq: number };
    const prep = await this.#db.runTransaction(async (tx): Promise<Prep> => {
      const [requestSnap, userSnap, convSnap] = await Promise.all([
        requestRef ? tx.get(requestRef) : Promise.resolve(null),
        tx.get(user),
        input.conversationId ? tx.get(convs.doc(input.conversationId)) : Promise.resolve(null),
      ]);
      if (requestSnap?.exists) return { replay: requestSnap.data() as unknown as RequestDoc };

      const rate = (userSnap.get('rate') as { windowStartMs: number; count: number } | undefined) ?? null;
      const limit = this.#limits().messagesPerMinute;
      const fresh = !rate || now - rate.windowStartMs >= WINDOW_MS;
      const count = fresh ? 0 : rate.count;
      if (count >= limit) {
        const retry = Math.max(1, Math.ceil((rate!.windowStartMs + WINDOW_MS - now) / 1000));
        throw new RateLimitedError(`at most ${limit} messages per minute; try again in ${retry} s`, retry);
      }
      tx.set(
        user,
        { rate: { windowStartMs: fresh ? now : rate.windowStartMs, count: count + 1 } },
        { merge: true },
      );

      if (convSnap && !convSnap.exists) throw new ConversationNotFoundError();
      const convRef = convSnap ? convSnap.ref : convs.doc();
      // Two slots: this message and its reply, so the reply needs no transaction of its own.
      const seq = convSnap ? (convSnap.get('nextSeq') as number) : 0;
      const messageRef = convRef.collection('messages').doc();
      tx.set(messageRef, {
        seq,
        role: 'user',
        text: input.message,
        status: 'pending',
        component: null,
        runId: null,
        requestId: input.requestId ?? null,
        createdAt: FieldValue.serverTimestamp(),
      });
      const preview = input.message.slice(0, PREVIEW_CHARS);
      if (convSnap) {
        tx.update(convRef, {
          messageCount: FieldValue.increment(1),
          nextSeq: seq + 2,
          updatedAt: FieldValue.serverTimestamp(),
          lastMessagePreview: preview,
        });
      } else {
        tx.set(convRef, {
          title: titleOf(input.message),
          createdAt: FieldValue.serverTimestamp(),
          updatedAt: FieldValue.serverTimestamp(),
          messageCount: 1,
          nextSeq: 2,
          lastMessagePreview: preview,
        });
      }
      if (requestRef) {
        tx.set(requestRef, {
          state: 'pending',
          conversationId: convRef.id,
          userMessageId: messageRef.id,
          createdAt: FieldValue.serverTimestamp(),
        } satisfies RequestDoc);
      }
      return { conversationRef: convRef, messageRef, seq };
    });

    if ('replay' in prep) return replay(prep.replay);
    const { conversationRef, messageRef, seq } = prep;

    const history = (await historyRead).filter((m) => m.seq < seq).map(({ role, text }) => ({ role, text }));
    let result: RunResult;
    try {
      result = await this.#runner.run(
        {
          userId: uid,
          conversationId: conversationRef.id,
          message: input.message,
          history,
        },
        onText,
      );
    } catch (err) {
      await this.#markFailed(messageRef, requestRef, err);
      if (err instanceof DomainError) err.conversationId = conversationRef.id;
      throw err;
    }
    return this.#storeReply(
      uid,
      conversationRef,
      seq + 1,
      messageRef,
      requestRef,
      input.requestId ?? null,
      result,
    );
  }

  async #recentMessages(
    conv: DocumentReference,
  ): Promise<Array<{ seq: number; role: 'user' | 'agent'; text: string }>> {
    const snap = await conv.collection('messages').orderBy('seq', 'desc').limit(HISTORY_MESSAGES).get();
    return snap.docs.reverse().map((d) => ({
      seq: d.get('seq') as number,
      role: d.get('role') as 'user' | 'agent',
      text: String(d.get('text')).slice(0, 100_000),
    }));
  }

  async #storeReply(
    uid: string,
    convRef: DocumentReference,
    replySeq: number,
    userMessageRef: DocumentReference,
    requestRef: DocumentReference | null,
    requestId: string | null,
    result: RunResult,
  ): Promise<SendResult> {
    const agentRef = result.agent ? this.#user(uid).collection('agents').doc() : null;
    const replyRef = convRef.collection('messages').doc();
    const out: SendResult = {
      conversationId: convRef.id,
      messageId: replyRef.id,
      text: result.text,
      status: result.status,
      component: result.component,
      agentCreated: agentRef !== null,
      agentId: agentRef?.id ?? null,
    };
    // The reply's slot (seq) was reserved with the user's message, so one batch does it.
    const batch = this.#db.batch();
    batch.set(replyRef, {
      seq: replySeq,
      role: 'agent',
      text: result.text,
      status: result.status,
      component: result.component,
      runId: result.runId,
      requestId,
      createdAt: FieldValue.serverTimestamp(),
    });
    batch.update(userMessageRef, { status: 'done', runId: result.runId });
    batch.update(convRef, {
      messageCount: FieldValue.increment(1),
      updatedAt: FieldValue.serverTimestamp(),
      lastMessagePreview: result.text.slice(0, PREVIEW_CHARS),
    });
    const outcome = this.#db.batch();
    if (agentRef && result.agent) {
      outcome.set(agentRef, {
        ...result.agent,
        conversationId: convRef.id,
        runId: result.runId,
        createdAt: FieldValue.serverTimestamp(),
      });
    }
    if (requestRef) outcome.update(requestRef, { state: 'done', result: out });
    try {
      await batch.commit();
    } catch (err) {
      // The conversation was deleted meanwhile (the updates find no document): keep only the
      // request's outcome and the created agent.
      if ((err as { code?: number }).code !== NOT_FOUND) throw err;
    }
    await outcome.commit();
    return out;
  }

  async #markFailed(
    messageRef: DocumentReference,
    requestRef: DocumentReference | null,
    err: unknown,
  ): Promise<void> {
    const code = err instanceof DomainError ? err.code : 'internal';
    const batch = this.#db.batch();
    batch.update(messageRef, { status: 'failed', error: code });
    if (requestRef) batch.update(requestRef, { state: 'failed', errorCode: code });
    try {
      await batch.commit();
    } catch {
      // The conversation was deleted meanwhile; nothing is left pending.
    }
  }

  async listConversations(uid: string, limit: number, cursor?: string) {
    let q = this.#user(uid)
      .collection('conversations')
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
    const snap = await q.get();
    const conversations = snap.docs.map((d) => ({
      id: d.id,
      title: d.get('title') as string,
      createdAt: iso(d.get('createdAt')),
      updatedAt: iso(d.get('updatedAt')),
      messageCount: d.get('messageCount') as number,
      lastMessagePreview: d.get('lastMessagePreview') as string,
    }));
    const last = snap.docs[snap.docs.length - 1];
    const nextCursor =
      snap.docs.length === limit && last
        ? encodeCursor([(last.get('updatedAt') as Timestamp).toMillis(), last.id])
        : null;
    return { conversations, nextCursor };
  }

  async getConversation(uid: string, conversationId: string, limit: number, cursor?: string) {
    const convRef = this.#user(uid).collection('conversations').doc(conversationId);
    let q = convRef.collection('messages').orderBy('seq', 'asc').limit(limit);
    if (cursor) q = q.startAfter(decodeCursor(cursor, (v): v is number => Number.isInteger(v)));
    const [convSnap, snap] = await Promise.all([convRef.get(), q.get()]);
    if (!convSnap.exists) throw new ConversationNotFoundError();
    const messages = snap.docs.map((d) => ({
      id: d.id,
      role: d.get('role') as string,
      text: d.get('text') as string,
      status: d.get('status') as string,
      component: (d.get('component') as Record<string, unknown> | null) ?? null,
      runId: (d.get('runId') as string | null) ?? null,
      createdAt: iso(d.get('createdAt')),
    }));
    const last = snap.docs[snap.docs.length - 1];
    return {
      conversation: {
        id: convSnap.id,
        title: convSnap.get('title') as string,
        createdAt: iso(convSnap.get('createdAt')),
        updatedAt: iso(convSnap.get('updatedAt')),
        messageCount: convSnap.get('messageCount') as number,
      },
      messages,
      nextCursor: snap.docs.length === limit && last ? encodeCursor(last.get('seq') as number) : null,
    };
  }

  async deleteConversation(uid: string, conversationId: string): Promise<void> {
    const convRef = this.#user(uid).collection('conversations').doc(conversationId);
    const snap = await convRef.get();
    if (!snap.exists) throw new ConversationNotFoundError();
    await this.#db.recursiveDelete(convRef);
  }

  async listAgents(uid: string) {
    const snap = await this.#user(uid).collection('agents').orderBy('createdAt', 'desc').limit(100).get();
    return {
      agents: snap.docs.map((d) => ({
        id: d.id,
        name: d.get('name') as string,
        description: d.get('description') as string,
        instructions: d.get('instructions') as string,
        conversationId: d.get('conversationId') as string,
        createdAt: iso(d.get('createdAt')),
      })),
    };
  }

  /** Warms the caller's sandbox (e.g. when a client opens a conversation), so the reply is fast. */
  async warmSandbox(uid: string): Promise<{ warm: boolean; created: boolean }> {
    return this.#runner.warm(uid);
  }

  async deleteWorkspace(uid: string): Promise<{ deleted: boolean }> {
    return { deleted: await this.#runner.deleteWorkspace(uid) };
  }
}

interface RequestDoc {
  state: 'pending' | 'done' | 'failed';
  conversationId: string;
  userMessageId: string;
  createdAt: FieldValue | Timestamp;
  result?: SendResult;
  errorCode?: string;
}

/** A retry returns the first outcome: the stored result, the same error, or "in progress". */
function replay(doc: RequestDoc): SendResult {
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

/** The first line of prose (not a code fence or code), else "Code". */
function titleOf(message: string): string {
  let inFence = false;
  for (const raw of message.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('```')) {
      inFence = !inFence;
      continue;
    }
    if (!inFence && line) return line.slice(0, TITLE_CHARS);
  }
  return 'Code';
}

function iso(v: unknown): string | null {
  return v instanceof Timestamp ? v.toDate().toISOString() : null;
}

function encodeCursor(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

function decodeCursor<T>(cursor: string, check: (v: unknown) => v is T): T {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (check(v)) return v;
  } catch {
    // fall through
  }
  throw new InvalidInputError('cursor: is not a cursor returned by this API', 'cursor');
}
