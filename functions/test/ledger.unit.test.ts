import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import type { AgentDoc, MessageDoc, RequestDoc, SendResult, TimestampLike } from '@agent-platform/contract';
import {
  InternalError,
  InvalidInputError,
  RequestInProgressError,
  RunnerTimeoutError,
  RunnerUnavailableError,
} from '../src/errors.ts';
import { historyBefore } from '../src/send/history.ts';
import { owns, retakeable, unanswered } from '../src/send/lease.ts';
import { askedOf, replay, sameAsk, type Asked } from '../src/send/replay.ts';
import { runRequest, type Turn } from '../src/send/run-turn.ts';
import { titleOf } from '../src/send/title.ts';

/** Pure: the message ledger's decisions (leases, retries, replays) and the turn's run request. */

const NOW = 1_700_000_000_000;

function at(ms: number): TimestampLike {
  return { toMillis: () => ms, toDate: () => new Date(ms) };
}

function message(over: Partial<MessageDoc> = {}): MessageDoc {
  return {
    seq: 4,
    role: 'user',
    text: 'hi',
    status: 'pending',
    component: null,
    runId: null,
    requestId: 'req-12345678',
    createdAt: null,
    leaseExpiresAt: at(NOW + 1_000),
    ...over,
  };
}

const ASKED: Asked = askedOf({ message: 'hello', conversationId: 'conv-1' });

function request(over: Partial<RequestDoc> = {}): RequestDoc {
  return {
    state: 'pending',
    conversationId: 'conv-1',
    userMessageId: 'msg-1',
    messageSha256: ASKED.messageSha256,
    askedConversationId: null,
    createdAt: null,
    leaseExpiresAt: at(NOW + 1_000),
    ...over,
  };
}

const RESULT: SendResult = {
  conversationId: 'conv-1',
  messageId: 'reply-1',
  text: 'hello back',
  status: 'ok',
  component: null,
  agentCreated: false,
  agentId: null,
  usage: { model: null, calls: 0, inputTokens: 0, outputTokens: 0, exhausted: null },
};

describe('lease ownership', () => {
  test('the call owns its message while it is pending with that very lease', () => {
    assert.equal(owns(message(), NOW + 1_000), true);
  });

  test('a retry that took the message over holds another lease: the first call owns nothing', () => {
    assert.equal(owns(message({ leaseExpiresAt: at(NOW + 9_000) }), NOW + 1_000), false);
  });

  test('a message already settled, without a lease, or unreadable is owned by no one', () => {
    assert.equal(owns(message({ status: 'done' }), NOW + 1_000), false);
    assert.equal(owns(message({ status: 'failed' }), NOW + 1_000), false);
    assert.equal(owns(message({ leaseExpiresAt: null }), NOW + 1_000), false);
    const withoutLease = message();
    delete withoutLease.leaseExpiresAt;
    assert.equal(owns(withoutLease, NOW + 1_000), false);
    assert.equal(owns(null, NOW + 1_000), false);
  });
});

describe('retries with a requestId', () => {
  test('the same message (and conversation, when named) is the same ask', () => {
    assert.equal(sameAsk(request(), ASKED), true);
    assert.equal(sameAsk(request(), { ...ASKED, askedConversationId: null }), true, 'a retry may omit it');
    assert.equal(sameAsk(request(), { ...ASKED, askedConversationId: 'conv-2' }), false);
    assert.equal(sameAsk(request(), askedOf({ message: 'hello!' })), false);
    assert.equal(
      askedOf({ message: 'hello' }).messageSha256,
      createHash('sha256').update('hello', 'utf8').digest('hex'),
    );
  });

  test('a failed request, or one pending past its lease, may run again', () => {
    assert.equal(retakeable(request({ state: 'failed' }), ASKED, NOW), true);
    assert.equal(retakeable(request({ leaseExpiresAt: at(NOW) }), ASKED, NOW), true, 'expired at now');
    assert.equal(retakeable(request({ leaseExpiresAt: at(NOW - 1) }), ASKED, NOW), true);
  });

  test('one in progress, done, asking something else, or unreadable is replayed instead', () => {
    assert.equal(retakeable(request(), ASKED, NOW), false, 'its lease runs');
    assert.equal(retakeable(request({ leaseExpiresAt: null }), ASKED, NOW), false, 'no lease: in progress');
    assert.equal(retakeable(request({ state: 'done', result: RESULT }), ASKED, NOW), false);
    assert.equal(retakeable(request({ state: 'failed' }), askedOf({ message: 'other' }), NOW), false);
    assert.equal(retakeable(request({ state: 'failed', conversationId: 'conv-9' }), ASKED, NOW), false);
    assert.equal(retakeable(null, ASKED, NOW), false);
  });

  test("a retaken request's message runs again unless it is gone or was answered after all", () => {
    assert.equal(unanswered(message({ status: 'failed' })), true);
    assert.equal(unanswered(message({ status: 'pending' })), true);
    assert.equal(unanswered(message({ status: 'done' })), false);
    assert.equal(unanswered(null), false);
  });
});

describe('replaying a request record', () => {
  test('a done request gives its stored result', () => {
    assert.deepEqual(replay(request({ state: 'done', result: RESULT }), ASKED), RESULT);
  });

  test('a pending one is in progress (aborted)', () => {
    assert.throws(() => replay(request(), ASKED), RequestInProgressError);
  });

  test('a failed one gives the same error again', () => {
    const failed = (errorCode: RequestDoc['errorCode']) => () =>
      replay(request({ state: 'failed', ...(errorCode ? { errorCode } : {}) }), ASKED);
    assert.throws(failed('deadline-exceeded'), RunnerTimeoutError);
    assert.throws(failed('unavailable'), RunnerUnavailableError);
    assert.throws(failed('internal'), (e: unknown) => {
      assert.ok(e instanceof InternalError);
      assert.equal(e.detail, 'replayed failure internal');
      return true;
    });
    assert.throws(failed(undefined), /internal error/);
  });

  test('a requestId reused for another message or conversation is invalid-argument, naming requestId', () => {
    for (const asked of [askedOf({ message: 'other' }), { ...ASKED, askedConversationId: 'conv-2' }]) {
      assert.throws(
        () => replay(request({ state: 'done', result: RESULT }), asked),
        (e: unknown) => {
          assert.ok(e instanceof InvalidInputError);
          assert.equal(e.field, 'requestId');
          assert.match(e.message, /^requestId: was already used for another message/);
          return true;
        },
      );
    }
  });

  test('a record that is not a RequestDoc is internal', () => {
    assert.throws(() => replay({ state: 'done' }, ASKED), InternalError);
    assert.throws(() => replay(undefined, ASKED), InternalError);
  });
});

describe("a turn's run request", () => {
  const agent: AgentDoc = {
    name: 'Helper',
    description: 'helps',
    instructions: 'be brief',
    model: null,
    tools: ['run_code'],
    conversationId: null,
    runId: null,
    createdAt: null,
  };
  const turn: Turn = {
    uid: 'u1',
    conversationId: 'c1',
    message: 'hi',
    history: [{ role: 'user', text: 'before' }],
    agent: null,
    tokenBudget: 500,
    client: { addressKey: 'a1b2c3d4e5f60718', anonymous: true },
  };

  test("the runner's default agent: no agent and no model", () => {
    assert.deepEqual(runRequest(turn, 30_000), {
      userId: 'u1',
      conversationId: 'c1',
      message: 'hi',
      history: [{ role: 'user', text: 'before' }],
      timeoutMs: 30_000,
      tokenBudget: 500,
      client: { addressKey: 'a1b2c3d4e5f60718', anonymous: true },
    });
  });

  test("the conversation's agent: its name, instructions and tools; its model only when it names one", () => {
    assert.deepEqual(runRequest({ ...turn, agent }, 30_000).agent, {
      name: 'Helper',
      instructions: 'be brief',
      tools: ['run_code'],
    });
    assert.equal('model' in runRequest({ ...turn, agent }, 30_000), false);
    assert.equal(runRequest({ ...turn, agent: { ...agent, model: 'm-1' } }, 30_000).model, 'm-1');
  });
});

describe('history and titles', () => {
  test('a message runs with the messages before it: later ones, written meanwhile, are left out', () => {
    const entries = [
      { seq: 0, role: 'user' as const, text: 'a' },
      { seq: 1, role: 'agent' as const, text: 'b' },
      { seq: 2, role: 'user' as const, text: 'c' },
      { seq: 3, role: 'agent' as const, text: 'd' },
    ];
    assert.deepEqual(historyBefore(entries, 2), [
      { role: 'user', text: 'a' },
      { role: 'agent', text: 'b' },
    ]);
    assert.deepEqual(historyBefore(entries, 0), []);
  });

  test("a conversation's title is the first line of prose of its first message, else Code", () => {
    assert.equal(titleOf('\n  Fix my script  \nplease'), 'Fix my script');
    assert.equal(titleOf('```sh\necho hi\n```\nthen this'), 'then this');
    assert.equal(titleOf('```sh\necho hi\n```'), 'Code');
    assert.equal(titleOf('x'.repeat(200)).length, 80);
  });
});
