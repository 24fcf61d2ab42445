import type { SendMessageInput, SendResult } from '@agent-platform/contract';
import { DatabaseUnavailableError, DomainError, RunnerUnavailableError } from '../errors.ts';
import type { Logger } from '../logs.ts';
import type { RunResult } from '../runner/runner-client.ts';
import { ipKey } from '../firestore/refs.ts';
import { historyBefore, type SeqEntry } from './history.ts';
import type { MessageLedger, Reservation } from './message-ledger.ts';
import { replay } from './replay.ts';
import type { RunTurn } from './run-turn.ts';

export type { SendResult };

/**
 * Where a call came from: the client's address (when the transport knows it) and whether the
 * account is anonymous (the runner shares its slots out by both: run-gate.ts).
 */
export interface CallOrigin {
  ip: string | null;
  anonymous: boolean;
}

/** What sendMessage learned, for its one log line. */
interface Handled {
  conversationId: string | null;
  /** The user's message, once stored. */
  messageId: string | null;
  runId: string | null;
  warm: boolean | null;
  replay: boolean;
}

/** What sendMessage is made of: every effect is one of these. */
export interface SenderParts {
  ledger: Pick<MessageLedger, 'reserve' | 'settle'>;
  runTurn: RunTurn;
  /** A conversation's recent messages (history.ts), for the history its next message runs with. */
  recentMessages: (uid: string, conversationId: string) => Promise<SeqEntry[]>;
  log: Logger;
}

/**
 * sendMessage: reserve the message (admission, idempotent replay), run its turn, settle the
 * outcome (message-ledger.ts), and log one line of what happened.
 */
export class MessageSender {
  readonly #ledger: SenderParts['ledger'];
  readonly #runTurn: RunTurn;
  readonly #recentMessages: SenderParts['recentMessages'];
  readonly #log: Logger;

  constructor(parts: SenderParts) {
    this.#ledger = parts.ledger;
    this.#runTurn = parts.runTurn;
    this.#recentMessages = parts.recentMessages;
    this.#log = parts.log;
  }

  /**
   * Stores the user's message (pending), has it answered, stores the reply and marks the message
   * done, or marks it failed. A retry with the same requestId never makes a second message or
   * run: it gets the first outcome, or runs the message again if its first attempt failed or died.
   */
  async sendMessage(
    uid: string,
    input: SendMessageInput,
    onText?: (delta: string) => void,
    origin: CallOrigin = { ip: null, anonymous: false },
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
    // The history read does not depend on the reservation: run both at once (saves a round trip,
    // ~17 ms on the emulator). Messages written meanwhile are left out by seq (history.ts).
    const history = input.conversationId
      ? this.#recentMessages(uid, input.conversationId)
      : Promise.resolve([]);
    history.catch(() => undefined); // awaited in the turn; a failure must not go unhandled meanwhile

    const reserved = await this.#ledger.reserve({ uid, input, ip: origin.ip, nowMs: Date.now() });
    if (reserved.kind === 'replay') {
      seen.replay = true;
      return replay(reserved.request, reserved.asked);
    }
    const r = reserved.reservation;
    seen.conversationId = r.conversationRef.id;
    seen.messageId = r.messageRef.id;
    return this.#turn(r, input.message, history, seen, onText, origin);
  }

  /**
   * The turn of a reserved message: run it, then settle its outcome. This is the seam for turns
   * that outlive the call (background turns): they take the reservation and do these two steps
   * elsewhere, and the caller learns the outcome from the ledger.
   */
  async #turn(
    r: Reservation,
    message: string,
    history: Promise<SeqEntry[]>,
    seen: Handled,
    onText: ((delta: string) => void) | undefined,
    origin: CallOrigin,
  ): Promise<SendResult> {
    let result: RunResult;
    try {
      // The history is awaited inside the try: one that cannot be read fails the message as a
      // failed run does, instead of leaving it pending (and counted in flight) until its lease ends.
      const turn = {
        uid: r.uid,
        conversationId: r.conversationRef.id,
        message,
        history: historyBefore(await history, r.seq),
        agent: r.agent,
        tokenBudget: r.tokenBudget,
        client: { addressKey: origin.ip ? ipKey(origin.ip) : null, anonymous: origin.anonymous },
      };
      result = await this.#runTurn(turn, onText);
    } catch (err) {
      await this.#ledger.settle(r, { kind: 'failed', error: err });
      if (err instanceof DomainError) err.conversationId = r.conversationRef.id;
      throw err;
    }
    seen.runId = result.runId;
    seen.warm = result.warm;
    return this.#ledger.settle(r, { kind: 'replied', result });
  }
}
