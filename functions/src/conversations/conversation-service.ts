import { createHash } from 'node:crypto';
import {
  FieldPath,
  FieldValue,
  Timestamp,
  type DocumentReference,
  type DocumentSnapshot,
  type Firestore,
} from 'firebase-admin/firestore';
import type { z } from 'zod';
import {
  AGENTS_LIST_MAX,
  COLLECTIONS,
  HISTORY_ENTRY_MAX_CHARS,
  HISTORY_MESSAGES_SENT,
  type HistoryEntry,
  PREVIEW_MAX_CHARS,
  SANDBOX_OPS_PER_MINUTE,
  TITLE_MAX_CHARS,
  agentDocSchema,
  conversationDocSchema,
  messageDocSchema,
  requestDocSchema,
  userDocSchema,
  type AgentView,
  type ConversationSummary,
  type GetConversationOutput,
  type ListConversationsOutput,
  type MessageView,
  type RequestDoc,
  type SendMessageInput,
  type SendResult,
  type TimestampLike,
} from '@agent-platform/contract';
import {
  ConversationNotFoundError,
  DomainError,
  InternalError,
  InvalidInputError,
  RequestInProgressError,
  RunnerTimeoutError,
  RunnerUnavailableError,
} from '../errors.ts';
import type { Logger } from '../logs.ts';
import { takeOne } from './rate-window.ts';
import { readDoc } from './read-doc.ts';
import { boundedHistory, storableReply } from './storable.ts';
import type { RunResult, RunnerClient } from '../runner/runner-client.ts';

export type { SendResult };

export interface ServiceLimits {
  messagesPerMinute: number;
  /** The run cap asked of the runner (its timeoutMs). */
  runTimeoutMs: number;
}

/** gRPC status of a write to a missing document. */
const NOT_FOUND = 5;

/** Firestore layout: users/{uid}/{conversations/{cid}/messages/{mid}, agents/{aid}, requests/{rid}}. */
export class ConversationService {
  readonly #db: Firestore;
  readonly #runner: RunnerClient;
  readonly #limits: ServiceLimits;
  readonly #log: Logger;

  constructor(db: Firestore, runner: RunnerClient, limits: ServiceLimits, log: Logger) {
    this.#db = db;
    this.#runner = runner;
    this.#limits = limits;
    this.#log = log;
  }

  #user(uid: string): DocumentReference {
    return this.#db.collection(COLLECTIONS.users).doc(uid);
  }

  /** A stored document through its contract schema; an invalid one is logged and read as null. */
  #read<T>(uid: string, schema: z.ZodType<T>, snap: DocumentSnapshot): T | null {
    return readDoc(schema, snap, (problem) =>
      this.#log.documentInvalid(uid, snap.ref.parent.id, snap.id, problem),
    );
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
    const t0 = performance.now();
    const seen: Handled = {
      conversationId: input.conversationId ?? null,
      messageId: null,
      runId: null,
      warm: null,
      replay: false,
    };
    const done = (status: string, replyId: string | null, detail?: string) =>
      this.#log.messageHandled({
        uid,
        conversationId: seen.conversationId,
        messageId: seen.messageId,
        replyId,
        runId: seen.runId,
        status,
        ms: Math.round(performance.now() - t0),
        streamed: onText !== undefined,
        replay: seen.replay,
        warm: seen.warm,
        ...(detail ? { detail } : {}),
      });
    try {
      const out = await this.#send(uid, input, seen, onText);
      done(out.status, out.messageId);
      return out;
    } catch (err) {
      const detail = err instanceof RunnerUnavailableError ? err.detail : undefined;
      done(err instanceof DomainError ? err.code : 'internal', null, detail);
      throw err;
    }
  }

  async #send(
    uid: string,
    input: SendMessageInput,
    seen: Handled,
    onText?: (delta: string) => void,
  ): Promise<SendResult> {
    const user = this.#user(uid);
    const convs = user.collection(COLLECTIONS.conversations);
    const requestRef = input.requestId ? user.collection(COLLECTIONS.requests).doc(input.requestId) : null;
    const now = Date.now();
    // The history read does not depend on the transaction: run both at once (saves a round trip,
    // ~17 ms on the emulator). Messages written meanwhile are filtered out by seq below.
    const historyRead = input.conversationId
      ? this.#recentMessages(uid, convs.doc(input.conversationId))
      : Promise.resolve([]);
    historyRead.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile

    const asked = {
      messageSha256: createHash('sha256').update(input.message, 'utf8').digest('hex'),
      askedConversationId: input.conversationId ?? null,
    };
    type Prep =
      | { replay: unknown; asked: typeof asked }
      | { conversationRef: DocumentReference; messageRef: DocumentReference; seq: number };
    const prep = await this.#db.runTransaction(async (tx): Promise<Prep> => {
      const [requestSnap, userSnap, convSnap] = await Promise.all([
        requestRef ? tx.get(requestRef) : Promise.resolve(null),
        tx.get(user),
        input.conversationId ? tx.get(convs.doc(input.conversationId)) : Promise.resolve(null),
      ]);
      if (requestSnap?.exists) return { replay: requestSnap.data(), asked };

      const rate = this.#read(uid, userDocSchema, userSnap)?.rate ?? null;
      tx.set(user, { rate: takeOne(rate, now, this.#limits.messagesPerMinute, 'messages') }, { merge: true });

      if (convSnap && !convSnap.exists) throw new ConversationNotFoundError();
      const convRef = convSnap ? convSnap.ref : convs.doc();
      // Two slots: this message and its reply, so the reply needs no transaction of its own.
      let seq = 0;
      if (convSnap) {
        const conv = this.#read(uid, conversationDocSchema, convSnap);
        if (!conv) throw new InternalError('a stored conversation does not match the contract');
        seq = conv.nextSeq;
      }
      const messageRef = convRef.collection(COLLECTIONS.messages).doc();
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
      const preview = input.message.slice(0, PREVIEW_MAX_CHARS);
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
          messageSha256: asked.messageSha256,
          askedConversationId: asked.askedConversationId,
          createdAt: FieldValue.serverTimestamp(),
        } satisfies Written<RequestDoc>);
      }
      return { conversationRef: convRef, messageRef, seq };
    });

    if ('replay' in prep) {
      seen.replay = true;
      return replay(prep.replay, prep.asked);
    }
    const { conversationRef, messageRef, seq } = prep;
    seen.conversationId = conversationRef.id;
    seen.messageId = messageRef.id;

    const history = boundedHistory(
      (await historyRead).filter((m) => m.seq < seq).map(({ role, text }) => ({ role, text })),
    );
    let result: RunResult;
    try {
      result = await this.#runner.run(
        {
          userId: uid,
          conversationId: conversationRef.id,
          message: input.message,
          history,
          timeoutMs: this.#limits.runTimeoutMs,
        },
        onText,
      );
    } catch (err) {
      await this.#markFailed(uid, conversationRef, messageRef, requestRef, err);
      if (err instanceof DomainError) err.conversationId = conversationRef.id;
      throw err;
    }
    seen.runId = result.runId;
    seen.warm = result.warm;
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
    uid: string,
    conv: DocumentReference,
  ): Promise<Array<HistoryEntry & { seq: number }>> {
    const snap = await conv
      .collection(COLLECTIONS.messages)
      .orderBy('seq', 'desc')
      .limit(HISTORY_MESSAGES_SENT)
      .get();
    return snap.docs.reverse().flatMap((d) => {
      const m = this.#read(uid, messageDocSchema, d);
      return m ? [{ seq: m.seq, role: m.role, text: m.text.slice(0, HISTORY_ENTRY_MAX_CHARS) }] : [];
    });
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
    const agentRef = result.agent ? this.#user(uid).collection(COLLECTIONS.agents).doc() : null;
    const replyRef = convRef.collection(COLLECTIONS.messages).doc();
    const reply = storableReply(result.text, result.component);
    if (reply.dropped) this.#log.componentDropped(uid, convRef.id, result.runId, reply.dropped);
    const out: SendResult = {
      conversationId: convRef.id,
      messageId: replyRef.id,
      text: reply.text,
      status: result.status,
      component: reply.component,
      agentCreated: agentRef !== null,
      agentId: agentRef?.id ?? null,
    };
    // The reply's slot (seq) was reserved with the user's message, so one batch does it.
    const batch = this.#db.batch();
    batch.set(replyRef, {
      seq: replySeq,
      role: 'agent',
      text: reply.text,
      status: result.status,
      component: reply.component,
      runId: result.runId,
      requestId,
      createdAt: FieldValue.serverTimestamp(),
    });
    batch.update(userMessageRef, { status: 'done', runId: result.runId });
    batch.update(convRef, {
      messageCount: FieldValue.increment(1),
      updatedAt: FieldValue.serverTimestamp(),
      lastMessagePreview: reply.text.slice(0, PREVIEW_MAX_CHARS),
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
      if ((err as { code?: number }).code !== NOT_FOUND) {
        // Firestore refused the reply: the message and its request end as failed, never pending.
        this.#log.replyNotStored(uid, convRef.id, userMessageRef.id, err);
        const failure = new InternalError('the reply could not be stored');
        await this.#markFailed(uid, convRef, userMessageRef, requestRef, failure);
        throw failure;
      }
      // The conversation was deleted meanwhile (the updates find no document): keep only the
      // request's outcome and the created agent.
      this.#log.conversationGoneMidSend(uid, convRef.id, userMessageRef.id);
    }
    try {
      await outcome.commit();
    } catch (err) {
      // The reply is stored; a retry of this request must not wait for ever on its record.
      this.#log.replyNotStored(uid, convRef.id, userMessageRef.id, err);
      if (requestRef) {
        await requestRef
          .update({ state: 'failed', errorCode: 'internal' })
          .catch((e: unknown) => this.#log.markFailedFailed(uid, convRef.id, userMessageRef.id, e));
      }
    }
    return out;
  }

  async #markFailed(
    uid: string,
    convRef: DocumentReference,
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
    } catch (commitErr) {
      if ((commitErr as { code?: number }).code === NOT_FOUND) {
        // The conversation was deleted meanwhile: its message went with it, nothing is pending.
        this.#log.conversationGoneMidSend(uid, convRef.id, messageRef.id);
        return;
      }
      // The sender still gets the run's error; the message stays pending (logged, not hidden).
      this.#log.markFailedFailed(uid, convRef.id, messageRef.id, commitErr);
    }
  }

  async listConversations(uid: string, limit: number, cursor?: string): Promise<ListConversationsOutput> {
    let q = this.#user(uid)
      .collection(COLLECTIONS.conversations)
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
    const conversations = snap.docs.flatMap((d): ConversationSummary[] => {
      const c = this.#read(uid, conversationDocSchema, d);
      if (!c) return [];
      return [
        {
          id: d.id,
          title: c.title,
          createdAt: iso(c.createdAt),
          updatedAt: iso(c.updatedAt),
          messageCount: c.messageCount,
          lastMessagePreview: c.lastMessagePreview,
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
    const convRef = this.#user(uid).collection(COLLECTIONS.conversations).doc(conversationId);
    let q = convRef.collection(COLLECTIONS.messages).orderBy('seq', 'asc').limit(limit);
    if (cursor) q = q.startAfter(decodeCursor(cursor, (v): v is number => Number.isInteger(v)));
    const [convSnap, snap] = await Promise.all([convRef.get(), q.get()]);
    if (!convSnap.exists) throw new ConversationNotFoundError();
    const conv = this.#read(uid, conversationDocSchema, convSnap);
    if (!conv) throw new InternalError('a stored conversation does not match the contract');
    const messages = snap.docs.flatMap((d): MessageView[] => {
      const m = this.#read(uid, messageDocSchema, d);
      if (!m) return [];
      return [
        {
          id: d.id,
          role: m.role,
          text: m.text,
          status: m.status,
          component: m.component,
          runId: m.runId,
          createdAt: iso(m.createdAt),
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
      },
      messages,
      nextCursor: snap.docs.length === limit && last ? encodeCursor(last.get('seq') as number) : null,
    };
  }

  async deleteConversation(uid: string, conversationId: string): Promise<void> {
    const convRef = this.#user(uid).collection(COLLECTIONS.conversations).doc(conversationId);
    const snap = await convRef.get();
    if (!snap.exists) throw new ConversationNotFoundError();
    await this.#db.recursiveDelete(convRef);
  }

  async listAgents(uid: string): Promise<{ agents: AgentView[] }> {
    const snap = await this.#user(uid)
      .collection(COLLECTIONS.agents)
      .orderBy('createdAt', 'desc')
      .limit(AGENTS_LIST_MAX)
      .get();
    return {
      agents: snap.docs.flatMap((d): AgentView[] => {
        const a = this.#read(uid, agentDocSchema, d);
        if (!a) return [];
        return [
          {
            id: d.id,
            name: a.name,
            description: a.description,
            instructions: a.instructions,
            conversationId: a.conversationId,
            createdAt: iso(a.createdAt),
          },
        ];
      }),
    };
  }

  /** Warms the caller's sandbox (e.g. when a client opens a conversation), so the reply is fast. */
  async warmSandbox(uid: string): Promise<{ warm: boolean; created: boolean }> {
    await this.#takeSandboxOp(uid);
    return this.#runner.warm(uid);
  }

  async deleteWorkspace(uid: string): Promise<{ deleted: boolean }> {
    await this.#takeSandboxOp(uid);
    return { deleted: await this.#runner.deleteWorkspace(uid) };
  }

  /**
   * Removes everything kept for a deleted account: the workspace on the runner first (so no run
   * of theirs can write it back), then all their documents. Each failure is logged and thrown.
   */
  async deleteUserData(uid: string): Promise<void> {
    const t0 = performance.now();
    try {
      const deletedWorkspace = await this.#runner.deleteWorkspace(uid);
      await this.#db.recursiveDelete(this.#user(uid));
      this.#log.userDataDeleted(uid, deletedWorkspace, Math.round(performance.now() - t0));
    } catch (err) {
      this.#log.userDataNotDeleted(uid, err);
      throw err;
    }
  }

  /**
   * warmSandbox and deleteWorkspace each cost the runner a container or a volume: they share a
   * per-user window of SANDBOX_OPS_PER_MINUTE (the web client warms about once a minute).
   */
  async #takeSandboxOp(uid: string): Promise<void> {
    const user = this.#user(uid);
    await this.#db.runTransaction(async (tx) => {
      const snap = await tx.get(user);
      const rate = this.#read(uid, userDocSchema, snap)?.sandboxOpsRate ?? null;
      tx.set(
        user,
        {
          sandboxOpsRate: takeOne(
            rate,
            Date.now(),
            SANDBOX_OPS_PER_MINUTE,
            'sandbox warm-ups and workspace deletions',
          ),
        },
        { merge: true },
      );
    });
  }
}

/** A document as written: its timestamps are server timestamps until the write lands. */
type Written<T> = Omit<T, 'createdAt'> & { createdAt: FieldValue };

/** What sendMessage learned, for its one log line. */
interface Handled {
  conversationId: string | null;
  /** The user's message, once stored. */
  messageId: string | null;
  runId: string | null;
  warm: boolean | null;
  replay: boolean;
}

/**
 * A retry returns the first outcome: the stored result, the same error, or "in progress". A
 * requestId reused for another message or conversation is refused: answering it with the first
 * message's result would be wrong, and silently.
 */
function replay(
  data: unknown,
  asked: { messageSha256: string; askedConversationId: string | null },
): SendResult {
  const parsed = requestDocSchema.safeParse(data);
  if (!parsed.success) throw new InternalError('a stored request record is not a RequestDoc');
  const doc = parsed.data;
  if (
    doc.messageSha256 !== asked.messageSha256 ||
    (asked.askedConversationId !== null && asked.askedConversationId !== doc.conversationId)
  ) {
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

/** The first line of prose (not a code fence or code), else "Code". */
function titleOf(message: string): string {
  let inFence = false;
  for (const raw of message.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('```')) {
      inFence = !inFence;
      continue;
    }
    if (!inFence && line) return line.slice(0, TITLE_MAX_CHARS);
  }
  return 'Code';
}

function iso(v: TimestampLike | null): string | null {
  return v ? v.toDate().toISOString() : null;
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
