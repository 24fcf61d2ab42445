import { createHash } from 'node:crypto';
import {
  FieldPath,
  FieldValue,
  Timestamp,
  type DocumentReference,
  type DocumentSnapshot,
  type Firestore,
  type Transaction,
} from 'firebase-admin/firestore';
import {
  AGENTS_LIST_MAX,
  AGENT_TOOLS,
  COLLECTIONS,
  PENDING_LEASE_MS,
  leaseExpired,
  HISTORY_ENTRY_MAX_CHARS,
  HISTORY_MESSAGES_SENT,
  type HistoryEntry,
  PREVIEW_MAX_CHARS,
  SANDBOX_OPS_PER_MINUTE,
  TITLE_MAX_CHARS,
  TOKENS_PER_RUN_DEFAULT,
  TOKENS_PER_USER_PER_DAY_DEFAULT,
  agentDocSchema,
  usageDocSchema,
  type AgentDoc,
  conversationDocSchema,
  messageDocSchema,
  requestDocSchema,
  userDocSchema,
  ipWindowDocSchema,
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
  AgentNotFoundError,
  ConversationNotFoundError,
  DatabaseUnavailableError,
  DomainError,
  InternalError,
  InvalidInputError,
  RateLimitedError,
  RequestInProgressError,
  RunnerTimeoutError,
  RunnerUnavailableError,
} from '../errors.ts';
import type { Logger } from '../logs.ts';
import { takeOne, takeUserWindow } from './rate-window.ts';
import { DbSteps } from './db-steps.ts';
import { boundedHistory, storableReply } from './storable.ts';
import type { RunResult, RunnerClient } from '../runner/runner-client.ts';

export type { SendResult };

export interface ServiceLimits {
  messagesPerMinute: number;
  /** The run cap asked of the runner (its timeoutMs). */
  runTimeoutMs: number;
  /** How long a pending message belongs to its function (PENDING_LEASE_MS; tests shorten it). */
  pendingLeaseMs?: number;
  /** Deadline of each Firestore step (FIRESTORE_CALL_TIMEOUT_MS). */
  firestoreCallMs?: number;
  /** Messages from one client address per minute, all accounts (default 120). */
  ipMessagesPerMinute?: number;
  /** Messages of one user being answered at once (default 2). */
  maxConcurrentPerUser?: number;
  /** Tokens one message's model calls may use (default TOKENS_PER_RUN_DEFAULT). */
  tokensPerRun?: number;
  /** Tokens one user's model calls may use per UTC day, unless their user doc says otherwise. */
  tokensPerUserPerDay?: number;
}

/** Where a call came from (the client address, when the transport knows it). */
export interface CallOrigin {
  ip: string | null;
}

/** The document id of a client address's window: no address is stored, only a hash of it. */
export function ipKey(ip: string): string {
  return createHash('sha256').update(ip, 'utf8').digest('hex').slice(0, 32);
}

/** The fields of users/{uid} that sendMessage's transaction writes (each replaced whole). */
const USER_FIELDS_SENT = ['rate', 'activeRuns', 'lastActiveAt', 'workspaceActive', 'tokenReservations'];

/** The usage document of a UTC day: users/{uid}/usage/{YYYY-MM-DD}. */
export function usageDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** gRPC status of a write to a missing document. */
const NOT_FOUND = 5;

/** Firestore layout: users/{uid}/{conversations/{cid}/messages/{mid}, agents/{aid}, requests/{rid}}. */
export class ConversationService {
  readonly #db: Firestore;
  readonly #runner: RunnerClient;
  readonly #limits: ServiceLimits;
  readonly #log: Logger;
  readonly #steps: DbSteps;

  constructor(db: Firestore, runner: RunnerClient, limits: ServiceLimits, log: Logger) {
    this.#db = db;
    this.#runner = runner;
    this.#limits = limits;
    this.#log = log;
    this.#steps = new DbSteps(log, limits.firestoreCallMs);
  }

  get #leaseMs(): number {
    return this.#limits.pendingLeaseMs ?? PENDING_LEASE_MS;
  }

  #user(uid: string): DocumentReference {
    return this.#db.collection(COLLECTIONS.users).doc(uid);
  }

  /** A stored document through its contract schema; an invalid one is logged and read as null. */

  /**
   * Stores the user's message (pending), calls the runner, stores the reply and marks the message
   * done, or marks it failed. Each step is one transaction, so no crash leaves a half-written
   * conversation, and a retry with the same requestId never makes a second message or run.
   */
  async sendMessage(
    uid: string,
    input: SendMessageInput,
    onText?: (delta: string) => void,
    origin: CallOrigin = { ip: null },
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
      const out = await this.#send(uid, input, seen, onText, origin);
      done(out.status, out.messageId);
      return out;
    } catch (err) {
      const detail =
        err instanceof RunnerUnavailableError || err instanceof DatabaseUnavailableError
          ? err.detail
          : undefined;
      done(err instanceof DomainError ? err.code : 'internal', null, detail);
      throw err;
    }
  }

  async #send(
    uid: string,
    input: SendMessageInput,
    seen: Handled,
    onText: ((delta: string) => void) | undefined,
    origin: CallOrigin,
  ): Promise<SendResult> {
    const user = this.#user(uid);
    const ipRef = origin.ip ? this.#db.collection(COLLECTIONS.ipWindows).doc(ipKey(origin.ip)) : null;
    const convs = user.collection(COLLECTIONS.conversations);
    const requestRef = input.requestId ? user.collection(COLLECTIONS.requests).doc(input.requestId) : null;
    const now = Date.now();
    // The history read does not depend on the transaction: run both at once (saves a round trip,
    // ~17 ms on the emulator). Messages written meanwhile are filtered out by seq below.
    const historyRead = input.conversationId
      ? this.#steps.step(this.#recentMessages(uid, convs.doc(input.conversationId)), 'reading the history')
      : Promise.resolve([]);
    historyRead.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile

    const asked = {
      messageSha256: createHash('sha256').update(input.message, 'utf8').digest('hex'),
      askedConversationId: input.conversationId ?? null,
    };
    type Prep =
      | { replay: unknown; asked: typeof asked }
      | {
          conversationRef: DocumentReference;
          messageRef: DocumentReference;
          seq: number;
          agent: AgentDoc | null;
          tokenBudget: number;
        };
    const leaseExpiresAt = Timestamp.fromMillis(now + this.#leaseMs);
    const usageRef = user.collection(COLLECTIONS.usage).doc(usageDay(now));
    let tokenBudget = 0;
    const prep = await this.#steps.step(
      this.#db.runTransaction(async (tx): Promise<Prep> => {
        const [requestSnap, userSnap, convSnap, ipSnap, usageSnap] = await Promise.all([
          requestRef ? tx.get(requestRef) : Promise.resolve(null),
          tx.get(user),
          input.conversationId ? tx.get(convs.doc(input.conversationId)) : Promise.resolve(null),
          ipRef ? tx.get(ipRef) : Promise.resolve(null),
          tx.get(usageRef),
        ]);
        const userDoc = this.#steps.read(uid, userDocSchema, userSnap);
        /** The conversation's agent (read before any write, as transactions require). */
        const agentOf = async (agentId: string | null): Promise<AgentDoc | null> => {
          if (agentId === null) return null;
          const snap = await tx.get(user.collection(COLLECTIONS.agents).doc(agentId));
          const agent = snap.exists ? this.#steps.read(uid, agentDocSchema, snap) : null;
          if (!agent) {
            throw new AgentNotFoundError(
              input.agentId === undefined
                ? "this conversation's agent was deleted; start a new conversation"
                : 'no such agent',
            );
          }
          return agent;
        };
        /**
         * Counts this message against the user's and the address's windows and the user's
         * messages in flight (an entry past its lease no longer counts: its function is gone),
         * and marks the user active.
         */
        const admit = (messageId: string) => {
          const rate = takeOne(userDoc?.rate ?? null, now, this.#limits.messagesPerMinute, 'messages');
          const active = Object.fromEntries(
            Object.entries(userDoc?.activeRuns ?? {}).filter(([, leaseMs]) => leaseMs > now),
          );
          // The run's token budget: what is left of the user's day, less what the messages
          // being answered now reserved, at most the per-message budget. Reserved until the
          // run's usage is stored (an entry whose message is no longer active is stale).
          const reservations = Object.fromEntries(
            Object.entries(userDoc?.tokenReservations ?? {}).filter(([id]) => id in active),
          );
          const reserved = Object.values(reservations).reduce((a, b) => a + b, 0);
          const usedToday = usageDocSchema.safeParse(usageSnap.data() ?? {}).data;
          const daily =
            userDoc?.tokensPerDay ?? this.#limits.tokensPerUserPerDay ?? TOKENS_PER_USER_PER_DAY_DEFAULT;
          tokenBudget = Math.max(
            0,
            Math.min(
              this.#limits.tokensPerRun ?? TOKENS_PER_RUN_DEFAULT,
              daily - (usedToday ? usedToday.inputTokens + usedToday.outputTokens : 0) - reserved,
            ),
          );
          const cap = this.#limits.maxConcurrentPerUser ?? 2;
          if (Object.keys(active).length >= cap) {
            throw new RateLimitedError(
              `at most ${cap} messages may be answered at once; wait for a reply`,
              Math.max(1, Math.ceil(this.#limits.runTimeoutMs / 2000)),
            );
          }
          if (ipRef && ipSnap) {
            const ipRate = ipWindowDocSchema.safeParse(ipSnap.data() ?? {}).data?.rate ?? null;
            tx.set(ipRef, {
              rate: takeOne(
                ipRate,
                now,
                this.#limits.ipMessagesPerMinute ?? 120,
                'messages from your network',
              ),
            });
          }
          tx.set(
            user,
            {
              rate,
              activeRuns: { ...active, [messageId]: leaseExpiresAt.toMillis() },
              lastActiveAt: FieldValue.serverTimestamp(),
              workspaceActive: true,
              tokenReservations: { ...reservations, [messageId]: tokenBudget },
            },
            { mergeFields: USER_FIELDS_SENT },
          );
        };
        if (requestSnap?.exists) {
          const again = await this.#retakeable(tx, uid, requestSnap, asked, now);
          if (!again) return { replay: requestSnap.data(), asked };
          const againConv = await tx.get(again.messageRef.parent.parent!);
          const agent = await agentOf(
            againConv.exists
              ? (this.#steps.read(uid, conversationDocSchema, againConv)?.agentId ?? null)
              : null,
          );
          // The first attempt failed, or its function died (its lease expired): this retry runs it
          // again, in the same message. The transaction makes it one retry, however many race.
          admit(again.messageRef.id);
          tx.update(again.messageRef, {
            status: 'pending',
            error: FieldValue.delete(),
            leaseExpiresAt,
          });
          tx.update(requestSnap.ref, {
            state: 'pending',
            errorCode: FieldValue.delete(),
            leaseExpiresAt,
          });
          return {
            conversationRef: again.messageRef.parent.parent!,
            messageRef: again.messageRef,
            seq: again.seq,
            agent,
            tokenBudget,
          };
        }

        if (convSnap && !convSnap.exists) throw new ConversationNotFoundError();
        const convRef = convSnap ? convSnap.ref : convs.doc();
        // Two slots: this message and its reply, so the reply needs no transaction of its own.
        let seq = 0;
        let agentId = input.agentId ?? null;
        if (convSnap) {
          const conv = this.#steps.read(uid, conversationDocSchema, convSnap);
          if (!conv) throw new InternalError('a stored conversation does not match the contract');
          seq = conv.nextSeq;
          if (input.agentId !== undefined && input.agentId !== (conv.agentId ?? null)) {
            throw new InvalidInputError(
              'this conversation is with another agent; start a new conversation to talk to this one',
              'agentId',
            );
          }
          agentId = conv.agentId ?? null;
        }
        const agent = await agentOf(agentId);
        const messageRef = convRef.collection(COLLECTIONS.messages).doc();
        admit(messageRef.id);
        tx.set(messageRef, {
          seq,
          role: 'user',
          text: input.message,
          status: 'pending',
          component: null,
          runId: null,
          requestId: input.requestId ?? null,
          createdAt: FieldValue.serverTimestamp(),
          leaseExpiresAt,
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
            agentId,
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
            leaseExpiresAt,
          } satisfies Written<RequestDoc>);
        }
        return { conversationRef: convRef, messageRef, seq, agent, tokenBudget };
      }),
      'storing the message',
    );

    if ('replay' in prep) {
      seen.replay = true;
      return replay(prep.replay, prep.asked);
    }
    const { conversationRef, messageRef, seq, agent } = prep;
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
          tokenBudget: prep.tokenBudget,
          ...(agent
            ? {
                agent: { name: agent.name, instructions: agent.instructions, tools: agent.tools },
                ...(agent.model ? { model: agent.model } : {}),
              }
            : {}),
        },
        onText,
      );
    } catch (err) {
      await this.#markFailed(uid, conversationRef, messageRef, requestRef, err, leaseExpiresAt.toMillis());
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
      leaseExpiresAt.toMillis(),
      usageRef,
    );
  }

  /** Whether the call with this lease still owns the message: pending, with that very lease. */
  #owns(uid: string, snap: DocumentSnapshot, leaseMs: number): boolean {
    const m = this.#steps.read(uid, messageDocSchema, snap);
    return m?.status === 'pending' && m.leaseExpiresAt?.toMillis() === leaseMs;
  }

  /**
   * Whether a stored request may run again (its message, if so): it failed, or it is pending past
   * its lease. Its message and conversation must match what is asked (else the replay refuses).
   */
  async #retakeable(
    tx: Transaction,
    uid: string,
    requestSnap: DocumentSnapshot,
    asked: { messageSha256: string; askedConversationId: string | null },
    nowMs: number,
  ): Promise<{ messageRef: DocumentReference; seq: number } | null> {
    const doc = this.#steps.read(uid, requestDocSchema, requestSnap);
    if (!doc || doc.messageSha256 !== asked.messageSha256) return null;
    if (asked.askedConversationId !== null && asked.askedConversationId !== doc.conversationId) return null;
    if (doc.state !== 'failed' && !leaseExpired(doc.state, doc.leaseExpiresAt?.toMillis(), nowMs))
      return null;
    const messageRef = this.#user(uid)
      .collection(COLLECTIONS.conversations)
      .doc(doc.conversationId)
      .collection(COLLECTIONS.messages)
      .doc(doc.userMessageId);
    const messageSnap = await tx.get(messageRef);
    const message = messageSnap.exists ? this.#steps.read(uid, messageDocSchema, messageSnap) : null;
    // Gone with its conversation, or answered after all: replay what the record says.
    if (!message || message.status === 'done') return null;
    return { messageRef, seq: message.seq };
  }

  /**
   * Marks failed every pending message (and its request record) whose lease expired: its function
   * died between storing it and storing the outcome. At most `limit` a call, each in a transaction
   * that checks it again (a retry may have taken it over since the query). Returns how many.
   */
  async sweepExpiredLeases(nowMs: number, limit = 200): Promise<number> {
    const snap = await this.#steps.step(
      this.#db
        .collectionGroup(COLLECTIONS.messages)
        .where('status', '==', 'pending')
        .where('leaseExpiresAt', '<=', Timestamp.fromMillis(nowMs))
        .limit(limit)
        .get(),
      'querying expired leases',
    );
    let swept = 0;
    for (const d of snap.docs) {
      const uid = d.ref.parent.parent?.parent.parent?.id;
      if (!uid) continue;
      const marked = await this.#steps.step(
        this.#db.runTransaction(async (tx) => {
          const fresh = await tx.get(d.ref);
          const m = fresh.exists ? this.#steps.read(uid, messageDocSchema, fresh) : null;
          if (!m || !leaseExpired(m.status, m.leaseExpiresAt?.toMillis(), nowMs)) return false;
          const requestRef = m.requestId
            ? this.#user(uid).collection(COLLECTIONS.requests).doc(m.requestId)
            : null;
          const r = requestRef ? await tx.get(requestRef) : null; // reads before writes
          tx.update(d.ref, { status: 'failed', error: 'deadline-exceeded' });
          if (requestRef && r?.exists && r.get('state') === 'pending' && r.get('userMessageId') === d.id) {
            tx.update(requestRef, { state: 'failed', errorCode: 'deadline-exceeded' });
          }
          return true;
        }),
        'marking an expired message failed',
      );
      if (marked) {
        swept++;
        this.#log.leaseExpired(uid, d.ref.parent.parent!.id, d.id);
      }
    }
    return swept;
  }

  /**
   * Deletes the workspaces of users without activity (a message, a warm-up) since `cutoffMs`: at
   * most `limit` a call. Each user is first marked inactive in a transaction that checks the
   * activity again (a message arriving meanwhile keeps the workspace), then the runner deletes
   * the workspace. Returns how many were deleted.
   */
  async expireIdleWorkspaces(cutoffMs: number, limit = 100): Promise<number> {
    const snap = await this.#steps.step(
      this.#db
        .collection(COLLECTIONS.users)
        .where('workspaceActive', '==', true)
        .where('lastActiveAt', '<', Timestamp.fromMillis(cutoffMs))
        .limit(limit)
        .get(),
      'querying idle workspaces',
    );
    let expired = 0;
    for (const d of snap.docs) {
      const claimed = await this.#steps.step(
        this.#db.runTransaction(async (tx) => {
          const fresh = this.#steps.read(d.id, userDocSchema, await tx.get(d.ref));
          const last = fresh?.lastActiveAt?.toMillis() ?? 0;
          if (!fresh?.workspaceActive || last >= cutoffMs) return false;
          tx.update(d.ref, { workspaceActive: false, workspaceExpiredAt: FieldValue.serverTimestamp() });
          return true;
        }),
        'marking a workspace expired',
      );
      if (!claimed) continue;
      await this.#runner.deleteWorkspace(d.id);
      this.#log.workspaceExpired(d.id);
      expired++;
    }
    return expired;
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
      const m = this.#steps.read(uid, messageDocSchema, d);
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
    leaseMs: number,
    usageRef: DocumentReference,
  ): Promise<SendResult> {
    const agents = this.#user(uid).collection(COLLECTIONS.agents);
    // A run may create an agent, within the user's cap (AGENTS_LIST_MAX, as createAgent).
    let agentRef = result.agent ? agents.doc() : null;
    // The agent's text may already say it created one: the reply then ends with why it did not.
    let agentNote = '';
    if (agentRef) {
      const held = await this.#steps.step(agents.count().get(), 'counting agents').catch(() => null);
      if (!held || held.data().count >= AGENTS_LIST_MAX) {
        const why = held
          ? `you have the most agents allowed (${AGENTS_LIST_MAX}); delete one first`
          : 'the agents could not be counted; try again';
        this.#log.agentNotCreated(uid, convRef.id, result.runId, why);
        agentNote = `\n\n[agent not created: ${why}]`;
        agentRef = null;
      }
    }
    const usage = result.usage;
    const usageIncrement = {
      calls: FieldValue.increment(usage.calls),
      inputTokens: FieldValue.increment(usage.inputTokens),
      outputTokens: FieldValue.increment(usage.outputTokens),
      runs: FieldValue.increment(1),
    };
    const replyRef = convRef.collection(COLLECTIONS.messages).doc();
    const reply = storableReply(result.text + agentNote, result.component);
    if (reply.dropped) this.#log.componentDropped(uid, convRef.id, result.runId, reply.dropped);
    const out: SendResult = {
      conversationId: convRef.id,
      messageId: replyRef.id,
      text: reply.text,
      status: result.status,
      component: reply.component,
      agentCreated: agentRef !== null,
      agentId: agentRef?.id ?? null,
      usage,
    };
    // The reply's slot (seq) was reserved with the user's message, so one transaction does it; it
    // first checks that this call still owns the message (pending, with this call's lease): a
    // call that outlived its lease, whose message a retry took over, must not store a second
    // outcome.
    const storeReply = this.#db.runTransaction(async (tx): Promise<'stored' | 'gone' | 'taken'> => {
      const snap = await tx.get(userMessageRef);
      if (!snap.exists) return 'gone';
      if (!this.#owns(uid, snap, leaseMs)) return 'taken';
      tx.set(replyRef, {
        seq: replySeq,
        role: 'agent',
        text: reply.text,
        status: result.status,
        component: reply.component,
        runId: result.runId,
        requestId,
        createdAt: FieldValue.serverTimestamp(),
        usage,
      });
      tx.update(userMessageRef, { status: 'done', runId: result.runId });
      tx.update(this.#user(uid), {
        [`activeRuns.${userMessageRef.id}`]: FieldValue.delete(),
        [`tokenReservations.${userMessageRef.id}`]: FieldValue.delete(),
      });
      tx.set(usageRef, usageIncrement, { merge: true });
      tx.update(convRef, {
        messageCount: FieldValue.increment(1),
        updatedAt: FieldValue.serverTimestamp(),
        lastMessagePreview: reply.text.slice(0, PREVIEW_MAX_CHARS),
      });
      return 'stored';
    });
    const outcome = this.#db.batch();
    if (agentRef && result.agent) {
      outcome.set(agentRef, {
        ...result.agent,
        model: null,
        tools: [...AGENT_TOOLS],
        conversationId: convRef.id,
        runId: result.runId,
        createdAt: FieldValue.serverTimestamp(),
        updatedAt: FieldValue.serverTimestamp(),
      });
    }
    if (requestRef) outcome.update(requestRef, { state: 'done', result: out });
    // Not stored with the reply (a retry owns the message, or the conversation is gone): the
    // tokens were spent all the same, so the day's usage counts them.
    const countUsage = () => usageRef.set(usageIncrement, { merge: true });
    let stored: 'stored' | 'gone' | 'taken' = 'gone';
    try {
      stored = await this.#steps.step(storeReply, 'storing the reply');
    } catch (err) {
      // The database did not answer: the batch may still land. The message keeps its lease (it
      // reads as failed once that expires, unless the reply landed); the sender is told.
      if (err instanceof DatabaseUnavailableError) throw err;
      if ((err as { code?: number }).code !== NOT_FOUND) {
        // Firestore refused the reply: the message and its request end as failed, never pending.
        this.#log.replyNotStored(uid, convRef.id, userMessageRef.id, err);
        const failure = new InternalError('the reply could not be stored');
        await this.#markFailed(uid, convRef, userMessageRef, requestRef, failure, leaseMs);
        throw failure;
      }
    }
    if (stored === 'taken') {
      // A retry owns the message now: its outcome is the one stored.
      this.#log.outcomeDropped(uid, convRef.id, userMessageRef.id);
      await this.#steps
        .step(countUsage(), 'counting the usage')
        .catch((e: unknown) => this.#log.markFailedFailed(uid, convRef.id, userMessageRef.id, e));
      return out;
    }
    // The conversation was deleted meanwhile: keep only the request's outcome and the agent.
    if (stored === 'gone') {
      this.#log.conversationGoneMidSend(uid, convRef.id, userMessageRef.id);
      outcome.set(usageRef, usageIncrement, { merge: true });
    }
    try {
      await this.#steps.step(outcome.commit(), 'storing the request outcome');
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
    leaseMs: number,
  ): Promise<void> {
    const code = err instanceof DomainError ? err.code : 'internal';
    try {
      const marked = await this.#steps.step(
        this.#db.runTransaction(async (tx): Promise<'marked' | 'gone' | 'taken'> => {
          const snap = await tx.get(messageRef);
          if (!snap.exists) return 'gone';
          // A retry took it over after this call's lease: its outcome is not ours to write.
          if (!this.#owns(uid, snap, leaseMs)) return 'taken';
          tx.update(messageRef, { status: 'failed', error: code });
          tx.update(this.#user(uid), {
            [`activeRuns.${messageRef.id}`]: FieldValue.delete(),
            [`tokenReservations.${messageRef.id}`]: FieldValue.delete(),
          });
          if (requestRef) tx.update(requestRef, { state: 'failed', errorCode: code });
          return 'marked';
        }),
        'marking the message failed',
      );
      if (marked === 'gone') this.#log.conversationGoneMidSend(uid, convRef.id, messageRef.id);
      if (marked === 'taken') this.#log.outcomeDropped(uid, convRef.id, messageRef.id);
    } catch (commitErr) {
      if ((commitErr as { code?: number }).code === NOT_FOUND) {
        // The conversation was deleted meanwhile: its message went with it, nothing is pending.
        this.#log.conversationGoneMidSend(uid, convRef.id, messageRef.id);
        return;
      }
      // The sender still gets the run's error; the message stays pending until its lease expires
      // (then it reads as failed, and the sweep marks it so). Logged, not hidden.
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
    const convRef = this.#user(uid).collection(COLLECTIONS.conversations).doc(conversationId);
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
    const convRef = this.#user(uid).collection(COLLECTIONS.conversations).doc(conversationId);
    const snap = await this.#steps.step(convRef.get(), 'reading a conversation');
    if (!snap.exists) throw new ConversationNotFoundError();
    await this.#db.recursiveDelete(convRef);
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
    await this.#steps.step(
      takeUserWindow(
        this.#db,
        uid,
        'sandboxOpsRate',
        SANDBOX_OPS_PER_MINUTE,
        'sandbox warm-ups and workspace deletions',
      ),
      'counting a sandbox operation',
    );
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
