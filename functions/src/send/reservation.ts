import {
  FieldValue,
  Timestamp,
  type DocumentReference,
  type DocumentSnapshot,
  type Firestore,
  type Transaction,
} from 'firebase-admin/firestore';
import {
  COLLECTIONS,
  PREVIEW_MAX_CHARS,
  agentDocSchema,
  conversationDocSchema,
  ipWindowDocSchema,
  messageDocSchema,
  requestDocSchema,
  usageDocSchema,
  userDocSchema,
  type AgentDoc,
  type RequestDoc,
  type SendMessageInput,
} from '@agent-platform/contract';
import { admit, type AdmissionInput, type AdmissionLimits } from '../admission/admission.ts';
import {
  AgentNotFoundError,
  ConversationNotFoundError,
  InternalError,
  InvalidInputError,
  RateLimitedError,
} from '../errors.ts';
import type { DbSteps } from '../firestore/db-steps.ts';
import { ipWindowRef, usageDay, userRef } from '../firestore/refs.ts';
import { retakeable, unanswered } from './lease.ts';
import { askedOf, type Asked } from './replay.ts';
import { titleOf } from './title.ts';

export interface ReserveLimits extends AdmissionLimits {
  /** How long a pending message belongs to its call (PENDING_LEASE_MS; tests shorten it). */
  pendingLeaseMs: number;
}

/** A user message stored pending, leased to this call, with its run's agent and token budget. */
export interface Reservation {
  uid: string;
  conversationRef: DocumentReference;
  messageRef: DocumentReference;
  /** users/{uid}/requests/{requestId}, when the sender gave a requestId. */
  requestRef: DocumentReference | null;
  /** The usage document of the day the message was admitted (its run's usage is added there). */
  usageRef: DocumentReference;
  /** The message's slot in the conversation; its reply takes the next one. */
  seq: number;
  agent: AgentDoc | null;
  tokenBudget: number;
  /** This call's lease on the message (epoch ms): it owns the message while that lease is stored. */
  leaseMs: number;
}

/** A reservation, or a retry to answer from its request's record (replay.ts). */
export type Reserved =
  { kind: 'reserved'; reservation: Reservation } | { kind: 'replay'; request: unknown; asked: Asked };

/** Who sends what, from where (the client's address, when the transport knows it), and when. */
export interface ReserveRequest {
  uid: string;
  input: SendMessageInput;
  ip: string | null;
  nowMs: number;
}

/** The fields of users/{uid} that reserving writes (each replaced whole). */
const USER_FIELDS_SENT = ['rate', 'activeRuns', 'lastActiveAt', 'workspaceActive', 'tokenReservations'];

/** A document as written: its timestamps are server timestamps until the write lands. */
type Written<T> = Omit<T, 'createdAt'> & { createdAt: FieldValue };

/** One reservation being made: the request, the documents it touches, and how to read them. */
interface Sending extends Omit<ReserveRequest, 'ip'> {
  steps: DbSteps;
  limits: ReserveLimits;
  asked: Asked;
  leaseExpiresAt: Timestamp;
  refs: {
    user: DocumentReference;
    request: DocumentReference | null;
    usage: DocumentReference;
    /** The client address's window, when the address is known. */
    ip: DocumentReference | null;
  };
}

type Docs = Pick<AdmissionInput, 'user' | 'usage' | 'ip'>;

/**
 * Stores the user's message pending with a lease (in a new conversation if none is named), or
 * retakes the message of a retried request whose first attempt failed or died, or gives the
 * request's record to replay: one transaction, so a retry with the same requestId never makes a
 * second message. Throws a refusal (not found, invalid, rate limited) with nothing written.
 */
export function reserve(
  db: Firestore,
  steps: DbSteps,
  limits: ReserveLimits,
  a: ReserveRequest,
): Promise<Reserved> {
  const user = userRef(db, a.uid);
  const s: Sending = {
    uid: a.uid,
    input: a.input,
    nowMs: a.nowMs,
    steps,
    limits,
    asked: askedOf(a.input),
    leaseExpiresAt: Timestamp.fromMillis(a.nowMs + limits.pendingLeaseMs),
    refs: {
      user,
      request: a.input.requestId ? user.collection(COLLECTIONS.requests).doc(a.input.requestId) : null,
      usage: user.collection(COLLECTIONS.usage).doc(usageDay(a.nowMs)),
      ip: a.ip ? ipWindowRef(db, a.ip) : null,
    },
  };
  return steps.step(
    db.runTransaction((tx) => reserveIn(tx, s)),
    'storing the message',
  );
}

async function reserveIn(tx: Transaction, s: Sending): Promise<Reserved> {
  const convs = s.refs.user.collection(COLLECTIONS.conversations);
  const conversationId = s.input.conversationId;
  const [requestSnap, userSnap, convSnap, ipSnap, usageSnap] = await Promise.all([
    s.refs.request ? tx.get(s.refs.request) : Promise.resolve(null),
    tx.get(s.refs.user),
    conversationId ? tx.get(convs.doc(conversationId)) : Promise.resolve(null),
    s.refs.ip ? tx.get(s.refs.ip) : Promise.resolve(null),
    tx.get(s.refs.usage),
  ]);
  const docs: Docs = {
    user: s.steps.read(s.uid, userDocSchema, userSnap),
    usage: usageDocSchema.safeParse(usageSnap.data() ?? {}).data ?? null,
    ip: ipSnap ? (ipWindowDocSchema.safeParse(ipSnap.data() ?? {}).data ?? {}) : null,
  };
  if (requestSnap?.exists) return retake(tx, s, docs, requestSnap);

  if (convSnap && !convSnap.exists) throw new ConversationNotFoundError();
  const convRef = convSnap ? convSnap.ref : convs.doc();
  // Two slots: this message and its reply, so the reply needs no transaction of its own.
  let seq = 0;
  let agentId = s.input.agentId ?? null;
  if (convSnap) {
    const conv = s.steps.read(s.uid, conversationDocSchema, convSnap);
    if (!conv) throw new InternalError('a stored conversation does not match the contract');
    seq = conv.nextSeq;
    if (s.input.agentId !== undefined && s.input.agentId !== (conv.agentId ?? null)) {
      throw new InvalidInputError(
        'this conversation is with another agent; start a new conversation to talk to this one',
        'agentId',
      );
    }
    agentId = conv.agentId ?? null;
  }
  const agent = await agentOf(tx, s, agentId);
  const messageRef = convRef.collection(COLLECTIONS.messages).doc();
  const tokenBudget = admitted(tx, s, docs, messageRef.id);
  tx.set(messageRef, {
    seq,
    role: 'user',
    text: s.input.message,
    status: 'pending',
    component: null,
    runId: null,
    requestId: s.input.requestId ?? null,
    createdAt: FieldValue.serverTimestamp(),
    leaseExpiresAt: s.leaseExpiresAt,
  });
  const preview = s.input.message.slice(0, PREVIEW_MAX_CHARS);
  if (convSnap) {
    tx.update(convRef, {
      messageCount: FieldValue.increment(1),
      nextSeq: seq + 2,
      updatedAt: FieldValue.serverTimestamp(),
      lastMessagePreview: preview,
    });
  } else {
    tx.set(convRef, {
      title: titleOf(s.input.message),
      createdAt: FieldValue.serverTimestamp(),
      updatedAt: FieldValue.serverTimestamp(),
      messageCount: 1,
      nextSeq: 2,
      lastMessagePreview: preview,
      agentId,
    });
  }
  if (s.refs.request) {
    tx.set(s.refs.request, {
      state: 'pending',
      conversationId: convRef.id,
      userMessageId: messageRef.id,
      ...s.asked,
      createdAt: FieldValue.serverTimestamp(),
      leaseExpiresAt: s.leaseExpiresAt,
    } satisfies Written<RequestDoc>);
  }
  return reserved(s, { convRef, messageRef, seq, agent, tokenBudget });
}

/**
 * A retried request: its first attempt failed, or its function died (its lease expired), so this
 * retry runs it again, in the same message; else its record is replayed. The transaction makes it
 * one retry, however many race.
 */
async function retake(
  tx: Transaction,
  s: Sending,
  docs: Docs,
  requestSnap: DocumentSnapshot,
): Promise<Reserved> {
  const request = s.steps.read(s.uid, requestDocSchema, requestSnap);
  const replay: Reserved = { kind: 'replay', request: requestSnap.data(), asked: s.asked };
  if (!retakeable(request, s.asked, s.nowMs)) return replay;
  const convRef = s.refs.user.collection(COLLECTIONS.conversations).doc(request.conversationId);
  const messageRef = convRef.collection(COLLECTIONS.messages).doc(request.userMessageId);
  const messageSnap = await tx.get(messageRef);
  const message = messageSnap.exists ? s.steps.read(s.uid, messageDocSchema, messageSnap) : null;
  if (!unanswered(message)) return replay;
  const convSnap = await tx.get(convRef);
  const conv = convSnap.exists ? s.steps.read(s.uid, conversationDocSchema, convSnap) : null;
  const agent = await agentOf(tx, s, conv?.agentId ?? null);
  const tokenBudget = admitted(tx, s, docs, messageRef.id);
  tx.update(messageRef, { status: 'pending', error: FieldValue.delete(), leaseExpiresAt: s.leaseExpiresAt });
  tx.update(requestSnap.ref, {
    state: 'pending',
    errorCode: FieldValue.delete(),
    leaseExpiresAt: s.leaseExpiresAt,
  });
  return reserved(s, { convRef, messageRef, seq: message.seq, agent, tokenBudget });
}

/** The conversation's agent (read before any write, as transactions require). */
async function agentOf(tx: Transaction, s: Sending, agentId: string | null): Promise<AgentDoc | null> {
  if (agentId === null) return null;
  const snap = await tx.get(s.refs.user.collection(COLLECTIONS.agents).doc(agentId));
  const agent = snap.exists ? s.steps.read(s.uid, agentDocSchema, snap) : null;
  if (!agent) {
    throw new AgentNotFoundError(
      s.input.agentId === undefined
        ? "this conversation's agent was deleted; start a new conversation"
        : 'no such agent',
    );
  }
  return agent;
}

/**
 * Writes what admission decided for the message (admission.ts: windows, messages in flight,
 * token reservation) and marks the user active; or throws its refusal. Gives the token budget.
 */
function admitted(tx: Transaction, s: Sending, docs: Docs, messageId: string): number {
  const decision = admit(
    { ...docs, messageId, leaseExpiresAtMs: s.leaseExpiresAt.toMillis(), nowMs: s.nowMs },
    s.limits,
  );
  if (!decision.ok) throw new RateLimitedError(decision.refusal.message, decision.refusal.retryAfterSeconds);
  if (s.refs.ip && decision.ip) tx.set(s.refs.ip, decision.ip);
  tx.set(
    s.refs.user,
    { ...decision.user, lastActiveAt: FieldValue.serverTimestamp(), workspaceActive: true },
    { mergeFields: USER_FIELDS_SENT },
  );
  return decision.tokenBudget;
}

function reserved(
  s: Sending,
  m: {
    convRef: DocumentReference;
    messageRef: DocumentReference;
    seq: number;
    agent: AgentDoc | null;
    tokenBudget: number;
  },
): Reserved {
  return {
    kind: 'reserved',
    reservation: {
      uid: s.uid,
      conversationRef: m.convRef,
      messageRef: m.messageRef,
      requestRef: s.refs.request,
      usageRef: s.refs.usage,
      seq: m.seq,
      agent: m.agent,
      tokenBudget: m.tokenBudget,
      leaseMs: s.leaseExpiresAt.toMillis(),
    },
  };
}
