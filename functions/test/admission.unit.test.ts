import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { UsageDoc, UserDoc } from '@agent-platform/contract';
import {
  admit,
  dailyTokenBudget,
  type Admission,
  type AdmissionInput,
  type AdmissionLimits,
} from '../src/admission/admission.ts';
import { WINDOW_MS, countOne, takeOne } from '../src/admission/rate-window.ts';
import { RateLimitedError } from '../src/errors.ts';

/** Pure: sendMessage's admission decided from the documents it read, no Firestore. */

const NOW = 1_700_000_000_000;
const LEASE = NOW + 130_000;
const LIMITS: AdmissionLimits = {
  messagesPerMinute: 3,
  ipMessagesPerMinute: 5,
  maxConcurrentPerUser: 2,
  tokensPerRun: 1_000,
  tokensPerUserPerDay: 10_000,
  runTimeoutMs: 30_000,
};

function input(over: Partial<AdmissionInput> = {}): AdmissionInput {
  return {
    user: null,
    usage: null,
    ip: null,
    messageId: 'm-new',
    leaseExpiresAtMs: LEASE,
    nowMs: NOW,
    ...over,
  };
}

function usage(inputTokens: number, outputTokens: number): UsageDoc {
  return { calls: 1, inputTokens, outputTokens, runs: 1 };
}

function admitted(a: Admission): Extract<Admission, { ok: true }> {
  assert.ok(a.ok, `refused: ${a.ok ? '' : a.refusal.message}`);
  return a;
}

function refused(a: Admission): Extract<Admission, { ok: false }>['refusal'] {
  assert.ok(!a.ok, 'admitted');
  return a.refusal;
}

describe('admission: a first message', () => {
  test('a new user is admitted: one in the window, the message in flight with its lease, its budget reserved', () => {
    const a = admitted(admit(input(), LIMITS));
    assert.deepEqual(a, {
      ok: true,
      user: {
        rate: { windowStartMs: NOW, count: 1 },
        activeRuns: { 'm-new': LEASE },
        tokenReservations: { 'm-new': 1_000 },
      },
      ip: null,
      tokenBudget: 1_000,
    });
  });

  test('the documents as read are not changed', () => {
    const user: UserDoc = { rate: { windowStartMs: NOW - 1_000, count: 1 }, activeRuns: { a: LEASE } };
    const copy = structuredClone(user);
    admit(input({ user }), LIMITS);
    assert.deepEqual(user, copy);
  });
});

describe("admission: the user's window", () => {
  test('counts up to MESSAGES_PER_MINUTE in a minute, then refuses with the seconds to wait', () => {
    let user: UserDoc = {};
    for (let i = 1; i <= LIMITS.messagesPerMinute; i++) {
      const a = admitted(admit(input({ user, nowMs: NOW + i * 1_000, messageId: `m${i}` }), LIMITS));
      assert.deepEqual(a.user.rate, { windowStartMs: NOW + 1_000, count: i });
      user = { rate: a.user.rate }; // each answered meanwhile: nothing in flight
    }
    const r = refused(admit(input({ user, nowMs: NOW + 20_500 }), LIMITS));
    assert.deepEqual(r, {
      reason: 'user-rate',
      message: 'at most 3 messages per minute; try again in 41 s',
      retryAfterSeconds: 41, // the window opened at NOW + 1 s and frees at NOW + 61 s
    });
  });

  test('a window a minute old (or older) starts again', () => {
    const user: UserDoc = { rate: { windowStartMs: NOW - WINDOW_MS, count: 3 } };
    assert.deepEqual(admitted(admit(input({ user }), LIMITS)).user.rate, { windowStartMs: NOW, count: 1 });
    const justInside: UserDoc = { rate: { windowStartMs: NOW - WINDOW_MS + 1, count: 3 } };
    assert.equal(refused(admit(input({ user: justInside }), LIMITS)).retryAfterSeconds, 1);
  });
});

describe('admission: messages in flight', () => {
  test('at most MAX_CONCURRENT_PER_USER at once; the next waits half the run cap', () => {
    const user: UserDoc = { activeRuns: { a: LEASE, b: LEASE } };
    assert.deepEqual(refused(admit(input({ user }), LIMITS)), {
      reason: 'in-flight',
      message: 'at most 2 messages may be answered at once; wait for a reply',
      retryAfterSeconds: 15,
    });
    const short = refused(admit(input({ user }), { ...LIMITS, runTimeoutMs: 1_000 }));
    assert.equal(short.retryAfterSeconds, 1, 'never less than a second');
  });

  test('one below the cap is admitted and joins the others', () => {
    const user: UserDoc = { activeRuns: { a: LEASE } };
    assert.deepEqual(admitted(admit(input({ user }), LIMITS)).user.activeRuns, { a: LEASE, 'm-new': LEASE });
  });

  test('an entry past its lease does not count and is dropped (its function is gone)', () => {
    const user: UserDoc = { activeRuns: { dead: NOW - 1, atNow: NOW, live: NOW + 1 } };
    const a = admitted(admit(input({ user }), LIMITS));
    assert.deepEqual(a.user.activeRuns, { live: NOW + 1, 'm-new': LEASE });
  });

  test('a retry taking over its own expired message replaces its entry and its reservation', () => {
    const user: UserDoc = {
      activeRuns: { 'm-new': NOW - 5, other: LEASE },
      tokenReservations: { 'm-new': 700, other: 300 },
    };
    const a = admitted(admit(input({ user }), LIMITS));
    assert.deepEqual(a.user.activeRuns, { other: LEASE, 'm-new': LEASE });
    assert.deepEqual(a.user.tokenReservations, { other: 300, 'm-new': 1_000 });
  });
});

describe('admission: the token budget', () => {
  test('what is left of the day, less the reservations of messages in flight, at most the per-run budget', () => {
    const user: UserDoc = { activeRuns: { a: LEASE }, tokenReservations: { a: 1_000 } };
    const a = admitted(admit(input({ user, usage: usage(6_000, 2_500) }), LIMITS));
    assert.equal(a.tokenBudget, 500); // 10 000 - 8 500 used - 1 000 reserved
    assert.deepEqual(a.user.tokenReservations, { a: 1_000, 'm-new': 500 });
    const fresh = admitted(admit(input({ usage: usage(10, 10) }), LIMITS));
    assert.equal(fresh.tokenBudget, 1_000, 'capped by MODEL_TOKENS_PER_RUN');
  });

  test('stale reservations (their message no longer in flight) are dropped and not counted', () => {
    const user: UserDoc = {
      activeRuns: { live: LEASE, expired: NOW - 1 },
      tokenReservations: { live: 400, expired: 5_000, gone: 5_000 },
    };
    const a = admitted(admit(input({ user, usage: usage(9_000, 0) }), LIMITS));
    assert.equal(a.tokenBudget, 600); // 10 000 - 9 000 - 400
    assert.deepEqual(a.user.tokenReservations, { live: 400, 'm-new': 600 });
  });

  test('a day used up admits the message with a zero budget (the run then says why), never a negative one', () => {
    const a = admitted(admit(input({ usage: usage(9_000, 3_000) }), LIMITS));
    assert.equal(a.tokenBudget, 0);
    assert.deepEqual(a.user.tokenReservations, { 'm-new': 0 });
  });

  test("the user's own tokensPerDay overrides the deployment's, zero included", () => {
    assert.equal(admitted(admit(input({ user: { tokensPerDay: 300 } }), LIMITS)).tokenBudget, 300);
    assert.equal(admitted(admit(input({ user: { tokensPerDay: 0 } }), LIMITS)).tokenBudget, 0);
    const more = admitted(admit(input({ user: { tokensPerDay: 50_000 }, usage: usage(45_000, 0) }), LIMITS));
    assert.equal(more.tokenBudget, 1_000);
    assert.equal(dailyTokenBudget({ tokensPerDay: 7 }, 10_000), 7);
    assert.equal(dailyTokenBudget({}, 10_000), 10_000);
    assert.equal(dailyTokenBudget(null, 10_000), 10_000);
  });

  test('a deployment with a zero per-run budget admits with zero', () => {
    assert.equal(admitted(admit(input(), { ...LIMITS, tokensPerRun: 0 })).tokenBudget, 0);
  });
});

describe("admission: the client address's window", () => {
  test('a known address is counted, across accounts; unknown, nothing is', () => {
    assert.deepEqual(admitted(admit(input({ ip: {} }), LIMITS)).ip, {
      rate: { windowStartMs: NOW, count: 1 },
    });
    const busy = { rate: { windowStartMs: NOW - 10_000, count: 4 } };
    assert.deepEqual(admitted(admit(input({ ip: busy }), LIMITS)).ip, {
      rate: { windowStartMs: NOW - 10_000, count: 5 },
    });
    assert.equal(admitted(admit(input({ ip: null }), LIMITS)).ip, null);
  });

  test('past IP_MESSAGES_PER_MINUTE the address is refused, naming the network', () => {
    const full = { rate: { windowStartMs: NOW - 10_000, count: 5 } };
    assert.deepEqual(refused(admit(input({ ip: full }), LIMITS)), {
      reason: 'ip-rate',
      message: 'at most 5 messages from your network per minute; try again in 50 s',
      retryAfterSeconds: 50,
    });
  });

  test("refusals come in order: the user's window, then messages in flight, then the address", () => {
    const userFull: UserDoc = { rate: { windowStartMs: NOW, count: 3 } };
    const inFlight: UserDoc = { activeRuns: { a: LEASE, b: LEASE } };
    const ipFull = { rate: { windowStartMs: NOW, count: 5 } };
    const both: UserDoc = { ...userFull, ...inFlight };
    assert.equal(refused(admit(input({ user: both, ip: ipFull }), LIMITS)).reason, 'user-rate');
    assert.equal(refused(admit(input({ user: inFlight, ip: ipFull }), LIMITS)).reason, 'in-flight');
    assert.equal(refused(admit(input({ ip: ipFull }), LIMITS)).reason, 'ip-rate');
  });
});

describe('rate window', () => {
  test('countOne refuses at the limit without throwing, and names what it counts', () => {
    assert.deepEqual(countOne(null, NOW, 1, 'things'), { ok: true, rate: { windowStartMs: NOW, count: 1 } });
    assert.deepEqual(countOne({ windowStartMs: NOW, count: 1 }, NOW + 59_999, 1, 'things'), {
      ok: false,
      message: 'at most 1 things per minute; try again in 1 s',
      retryAfterSeconds: 1,
    });
  });
});

describe('rate windows', () => {
  test('counts up to the limit in a minute, then refuses with the seconds to wait', () => {
    let w = takeOne(null, 1_000, 2, 'things');
    assert.deepEqual(w, { windowStartMs: 1_000, count: 1 });
    w = takeOne(w, 2_000, 2, 'things');
    assert.deepEqual(w, { windowStartMs: 1_000, count: 2 });
    assert.throws(
      () => takeOne(w, 31_000, 2, 'things'),
      (err: unknown) =>
        err instanceof RateLimitedError &&
        err.retryAfterSeconds === 30 &&
        err.message === 'at most 2 things per minute; try again in 30 s',
    );
    assert.deepEqual(takeOne(w, 61_000, 2, 'things'), { windowStartMs: 61_000, count: 1 }, 'a new window');
  });
});
