import type { UsageDoc, UserDoc } from '@agent-platform/contract';
import { countOne, type Counted, type RateWindow } from './rate-window.ts';

/** The deployment's limits on sending (config.ts reads them; their defaults live there). */
export interface AdmissionLimits {
  /** Messages one user may send per minute (MESSAGES_PER_MINUTE). */
  messagesPerMinute: number;
  /** Messages from one client address per minute, all accounts (IP_MESSAGES_PER_MINUTE). */
  ipMessagesPerMinute: number;
  /** Messages of one user being answered at once (MAX_CONCURRENT_PER_USER). */
  maxConcurrentPerUser: number;
  /** Tokens one message's model calls may use (MODEL_TOKENS_PER_RUN). */
  tokensPerRun: number;
  /** Tokens one user's model calls may use per UTC day, unless their user doc says otherwise. */
  tokensPerUserPerDay: number;
  /** The run cap (RUN_TIMEOUT_MS): a sender refused for messages in flight waits half of it. */
  runTimeoutMs: number;
}

/** What admission decides on: the documents as read in the sending transaction. */
export interface AdmissionInput {
  /** users/{uid}, or null (none yet, or not readable). */
  user: UserDoc | null;
  /** users/{uid}/usage/{today}, or null. */
  usage: UsageDoc | null;
  /** ipWindows/{ipKey} ({} when there is none yet), or null when the client's address is unknown. */
  ip: { rate?: RateWindow | undefined } | null;
  /** The message being admitted, and the lease it is stored with (epoch ms). */
  messageId: string;
  leaseExpiresAtMs: number;
  nowMs: number;
}

/** Why a message was refused, with the message for the sender and the seconds to wait. */
export interface Refusal {
  reason: 'user-rate' | 'in-flight' | 'ip-rate';
  message: string;
  retryAfterSeconds: number;
}

export type Admission =
  | {
      ok: true;
      /** The fields of users/{uid} to write, each replaced whole. */
      user: {
        rate: RateWindow;
        activeRuns: Record<string, number>;
        tokenReservations: Record<string, number>;
      };
      /** The address's window to write, or null when the address is unknown. */
      ip: { rate: RateWindow } | null;
      /** Tokens the message's run may use. */
      tokenBudget: number;
    }
  | { ok: false; refusal: Refusal };

/** The user's token budget of a UTC day: their own (set by an operator), else the deployment's. */
export function dailyTokenBudget(user: UserDoc | null, tokensPerUserPerDay: number): number {
  return user?.tokensPerDay ?? tokensPerUserPerDay;
}

/**
 * Whether a message may be sent now, and what sending it writes: it counts against the user's
 * and the address's one-minute windows and the user's messages in flight (an entry past its lease
 * no longer counts: its function is gone), and reserves its run's token budget. Refusals come in
 * this order: the user's window, the messages in flight, the address's window.
 */
export function admit(a: AdmissionInput, limits: AdmissionLimits): Admission {
  const rate = countOne(a.user?.rate ?? null, a.nowMs, limits.messagesPerMinute, 'messages');
  if (!rate.ok) return refuse('user-rate', rate);
  const active = Object.fromEntries(
    Object.entries(a.user?.activeRuns ?? {}).filter(([, leaseMs]) => leaseMs > a.nowMs),
  );
  // A reservation is held until its run's usage is stored; one whose message is no longer in
  // flight is stale (its function died before releasing it).
  const reservations = Object.fromEntries(
    Object.entries(a.user?.tokenReservations ?? {}).filter(([id]) => Object.hasOwn(active, id)),
  );
  const reserved = Object.values(reservations).reduce((sum, tokens) => sum + tokens, 0);
  const usedToday = a.usage ? a.usage.inputTokens + a.usage.outputTokens : 0;
  // What is left of the user's day, less what the messages in flight reserved, at most the
  // per-message budget.
  const tokenBudget = Math.max(
    0,
    Math.min(
      limits.tokensPerRun,
      dailyTokenBudget(a.user, limits.tokensPerUserPerDay) - usedToday - reserved,
    ),
  );
  if (Object.keys(active).length >= limits.maxConcurrentPerUser) {
    return {
      ok: false,
      refusal: {
        reason: 'in-flight',
        message: `at most ${limits.maxConcurrentPerUser} messages may be answered at once; wait for a reply`,
        retryAfterSeconds: Math.max(1, Math.ceil(limits.runTimeoutMs / 2000)),
      },
    };
  }
  let ip: { rate: RateWindow } | null = null;
  if (a.ip) {
    const ipRate = countOne(
      a.ip.rate ?? null,
      a.nowMs,
      limits.ipMessagesPerMinute,
      'messages from your network',
    );
    if (!ipRate.ok) return refuse('ip-rate', ipRate);
    ip = { rate: ipRate.rate };
  }
  return {
    ok: true,
    user: {
      rate: rate.rate,
      activeRuns: { ...active, [a.messageId]: a.leaseExpiresAtMs },
      tokenReservations: { ...reservations, [a.messageId]: tokenBudget },
    },
    ip,
    tokenBudget,
  };
}

function refuse(reason: Refusal['reason'], counted: Counted & { ok: false }): Admission {
  return {
    ok: false,
    refusal: { reason, message: counted.message, retryAfterSeconds: counted.retryAfterSeconds },
  };
}
