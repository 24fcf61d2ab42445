import { FieldValue, type DocumentReference, type Transaction } from 'firebase-admin/firestore';
import {
  AGENTS_LIST_MAX,
  AGENT_TOOLS,
  COLLECTIONS,
  PREVIEW_MAX_CHARS,
  messageDocSchema,
  type SendResult,
} from '@agent-platform/contract';
import { roomForAgent } from '../agents/agent-cap.ts';
import { DatabaseUnavailableError, DomainError, InternalError } from '../errors.ts';
import type { Store } from '../firestore/store.ts';
import { isNotFound, userRef } from '../firestore/refs.ts';
import type { RunResult } from '../runner/runner-client.ts';
import { owns } from './lease.ts';
import {
  reserve,
  type ReserveLimits,
  type ReserveRequest,
  type Reservation,
  type Reserved,
} from './reservation.ts';
import { storableReply } from './storable.ts';

export type { Reservation, Reserved };

/** How a reserved message's turn ended: the run's result, or the error its sender gets. */
export type Outcome = { kind: 'replied'; result: RunResult } | { kind: 'failed'; error: unknown };

/** How settling found the message: this call's to settle, deleted meanwhile, or a retry's. */
type Owned = 'settled' | 'gone' | 'taken';

/**
 * The user messages' state machine: reserve() stores a message pending with a lease
 * (reservation.ts), settle() stores its outcome (the reply, or failed) and releases what
 * reserving took: the message's slot in flight and its token reservation. Each is a transaction,
 * so no crash leaves a half-written conversation, and settling writes only while this call still
 * owns the message.
 */
export class MessageLedger {
  readonly #store: Store;
  readonly #limits: ReserveLimits;

  constructor(store: Store, limits: ReserveLimits) {
    this.#store = store;
    this.#limits = limits;
  }

  reserve(request: ReserveRequest): Promise<Reserved> {
    return reserve(this.#store.db, this.#store.steps, this.#limits, request);
  }

  /** Stores the outcome of a reserved message; a reply is given back as its sender sees it. */
  settle(r: Reservation, outcome: Outcome & { kind: 'replied' }): Promise<SendResult>;
  settle(r: Reservation, outcome: Outcome & { kind: 'failed' }): Promise<void>;
  async settle(r: Reservation, outcome: Outcome): Promise<SendResult | void> {
    if (outcome.kind === 'failed') return this.#settleFailed(r, outcome.error);
    return this.#settleReplied(r, outcome.result);
  }

  /**
   * The message and its request end as failed, with the error code its sender got. A failure to
   * do so is logged, not thrown: the sender still gets the run's error, and the message stays
   * pending until its lease expires (then it reads as failed, and the sweep marks it so).
   */
  async #settleFailed(r: Reservation, err: unknown): Promise<void> {
    const code = err instanceof DomainError ? err.code : 'internal';
    try {
      await this.#whileOwned(r, 'marking the message failed', (tx) => {
        tx.update(r.messageRef, { status: 'failed', error: code });
        if (r.requestRef) tx.update(r.requestRef, { state: 'failed', errorCode: code });
      });
    } catch (commitErr) {
      this.#store.log.markFailedFailed(r.uid, r.conversationRef.id, r.messageRef.id, commitErr);
    }
  }

  /**
   * Stores the reply in the slot reserved with the message (seq + 1), the message done, the
   * run's usage; then the request's outcome and the agent the run created, if any. A reply that
   * is no longer this call's to store still counts its usage: the tokens were spent.
   */
  async #settleReplied(r: Reservation, result: RunResult): Promise<SendResult> {
    const convId = r.conversationRef.id;
    const agentRef = await this.#agentRoom(r, result);
    const replyRef = r.conversationRef.collection(COLLECTIONS.messages).doc();
    const reply = storableReply(result.text + agentRef.note, result.component);
    if (reply.dropped) this.#store.log.componentDropped(r.uid, convId, result.runId, reply.dropped);
    const usage = result.usage;
    const usageIncrement = {
      calls: FieldValue.increment(usage.calls),
      inputTokens: FieldValue.increment(usage.inputTokens),
      outputTokens: FieldValue.increment(usage.outputTokens),
      runs: FieldValue.increment(1),
    };
    const out: SendResult = {
      conversationId: convId,
      messageId: replyRef.id,
      text: reply.text,
      status: result.status,
      component: reply.component,
      agentCreated: agentRef.ref !== null,
      agentId: agentRef.ref?.id ?? null,
      usage,
    };
    let owned: Owned;
    try {
      owned = await this.#whileOwned(r, 'storing the reply', (tx) => {
        tx.set(replyRef, {
          seq: r.seq + 1,
          role: 'agent',
          text: reply.text,
          status: result.status,
          component: reply.component,
          runId: result.runId,
          requestId: r.requestRef?.id ?? null,
          createdAt: FieldValue.serverTimestamp(),
          usage,
        });
        tx.update(r.messageRef, { status: 'done', runId: result.runId });
        tx.set(r.usageRef, usageIncrement, { merge: true });
        tx.update(r.conversationRef, {
          messageCount: FieldValue.increment(1),
          updatedAt: FieldValue.serverTimestamp(),
          lastMessagePreview: reply.text.slice(0, PREVIEW_MAX_CHARS),
        });
      });
    } catch (err) {
      // The database did not answer: the transaction may still land. The message keeps its lease
      // (it reads as failed once that expires, unless the reply landed); the sender is told.
      if (err instanceof DatabaseUnavailableError) throw err;
      // Firestore refused the reply: the message and its request end as failed, never pending.
      this.#store.log.replyNotStored(r.uid, convId, r.messageRef.id, err);
      const failure = new InternalError('the reply could not be stored');
      await this.#settleFailed(r, failure);
      throw failure;
    }
    if (owned === 'taken') {
      // A retry owns the message now: its outcome is the one stored, but these tokens were spent.
      await this.#store.steps
        .step(r.usageRef.set(usageIncrement, { merge: true }), 'counting the usage')
        .catch((e: unknown) => this.#store.log.markFailedFailed(r.uid, convId, r.messageRef.id, e));
      return out;
    }
    const outcome = this.#store.db.batch();
    if (agentRef.ref && result.agent) {
      outcome.set(agentRef.ref, {
        ...result.agent,
        model: null,
        tools: [...AGENT_TOOLS],
        conversationId: convId,
        runId: result.runId,
        createdAt: FieldValue.serverTimestamp(),
        updatedAt: FieldValue.serverTimestamp(),
      });
    }
    if (r.requestRef) outcome.update(r.requestRef, { state: 'done', result: out });
    // The conversation was deleted meanwhile: the request's outcome, the agent and the usage stay.
    if (owned === 'gone') outcome.set(r.usageRef, usageIncrement, { merge: true });
    try {
      await this.#store.steps.step(outcome.commit(), 'storing the request outcome');
    } catch (err) {
      // The reply is stored; a retry of this request must not wait for ever on its record.
      this.#store.log.replyNotStored(r.uid, convId, r.messageRef.id, err);
      if (r.requestRef) {
        await r.requestRef
          .update({ state: 'failed', errorCode: 'internal' })
          .catch((e: unknown) => this.#store.log.markFailedFailed(r.uid, convId, r.messageRef.id, e));
      }
    }
    return out;
  }

  /**
   * Where the agent a run created goes, within the user's cap (agent-cap.ts); when it may not be
   * created, a note for the reply (whose text may already say it created one) saying why.
   */
  async #agentRoom(
    r: Reservation,
    result: RunResult,
  ): Promise<{ ref: DocumentReference | null; note: string }> {
    if (!result.agent) return { ref: null, note: '' };
    const agents = userRef(this.#store.db, r.uid).collection(COLLECTIONS.agents);
    const room = await roomForAgent(this.#store.steps, agents).catch(() => null);
    if (room) return { ref: agents.doc(), note: '' };
    const why =
      room === false
        ? `you have the most agents allowed (${AGENTS_LIST_MAX}); delete one first`
        : 'the agents could not be counted; try again';
    this.#store.log.agentNotCreated(r.uid, r.conversationRef.id, result.runId, why);
    return { ref: null, note: `\n\n[agent not created: ${why}]` };
  }

  /**
   * One transaction that writes the message's outcome (`write`) only while this call owns it
   * (pending, with this call's lease: a call that outlived its lease, whose message a retry took
   * over, must not store a second outcome), and releases the message's slot in flight and its
   * token reservation with it. A message deleted with its conversation is `gone`.
   */
  async #whileOwned(r: Reservation, what: string, write: (tx: Transaction) => void): Promise<Owned> {
    let owned: Owned;
    try {
      owned = await this.#store.steps.step(
        this.#store.db.runTransaction(async (tx): Promise<Owned> => {
          const snap = await tx.get(r.messageRef);
          if (!snap.exists) return 'gone';
          if (!owns(this.#store.steps.read(r.uid, messageDocSchema, snap), r.leaseMs)) return 'taken';
          write(tx);
          tx.update(userRef(this.#store.db, r.uid), {
            [`activeRuns.${r.messageRef.id}`]: FieldValue.delete(),
            [`tokenReservations.${r.messageRef.id}`]: FieldValue.delete(),
          });
          return 'settled';
        }),
        what,
      );
    } catch (err) {
      // A write found its document deleted with the conversation: nothing is left pending.
      if (!isNotFound(err)) throw err;
      owned = 'gone';
    }
    if (owned === 'gone')
      this.#store.log.conversationGoneMidSend(r.uid, r.conversationRef.id, r.messageRef.id);
    if (owned === 'taken') this.#store.log.outcomeDropped(r.uid, r.conversationRef.id, r.messageRef.id);
    return owned;
  }
}
