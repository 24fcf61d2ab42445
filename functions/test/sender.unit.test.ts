import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentDoc, SendResult } from '@agent-platform/contract';
import {
  DatabaseUnavailableError,
  DomainError,
  RateLimitedError,
  RunnerUnavailableError,
} from '../src/errors.ts';
import { ipKey } from '../src/firestore/refs.ts';
import { Logger } from '../src/logs.ts';
import type { RunResult } from '../src/runner/runner-client.ts';
import type { SeqEntry } from '../src/send/history.ts';
import type { Outcome, Reservation, Reserved } from '../src/send/message-ledger.ts';
import { askedOf } from '../src/send/replay.ts';
import { MessageSender, type SenderParts } from '../src/send/message-sender.ts';
import type { Turn } from '../src/send/run-turn.ts';

/** The sendMessage orchestrator over stand-in parts: what it does in which order, and its log line. */

const AGENT: AgentDoc = {
  name: 'Helper',
  description: '',
  instructions: 'be brief',
  model: null,
  tools: [],
  conversationId: null,
  runId: null,
  createdAt: null,
};

// The orchestrator reads only ids, the slot, the agent and the budget of a reservation.
const RESERVATION = {
  uid: 'u1',
  conversationRef: { id: 'c1' },
  messageRef: { id: 'm1' },
  requestRef: null,
  usageRef: { id: '2024-01-01' },
  seq: 2,
  agent: AGENT,
  tokenBudget: 700,
  leaseMs: 1_000,
} as unknown as Reservation;

const RUN: RunResult = {
  runId: 'run-1',
  status: 'ok',
  text: 'hello back',
  component: null,
  agent: null,
  exitCode: 0,
  durationMs: 5,
  warm: true,
  timings: { queueMs: 0, createMs: 0, agentMs: 5, saveMs: 0 },
  usage: { model: null, calls: 1, inputTokens: 3, outputTokens: 2, exhausted: null },
  runnerId: 'runner-a',
};

const STORED: SendResult = {
  conversationId: 'c1',
  messageId: 'reply-1',
  text: 'hello back',
  status: 'ok',
  component: null,
  agentCreated: false,
  agentId: null,
  usage: RUN.usage,
};

const HISTORY: SeqEntry[] = [
  { seq: 0, role: 'user', text: 'first' },
  { seq: 1, role: 'agent', text: 'answer' },
  { seq: 2, role: 'user', text: 'this one, read after it was stored' },
];

interface Stage {
  reserved?: Reserved | Error;
  run?: RunResult | Error;
  settled?: Error;
  history?: SeqEntry[] | Error;
}

/** A sender over stand-ins that record, in order, what the orchestrator asked of them. */
function stage(s: Stage = {}) {
  const calls: string[] = [];
  const turns: Turn[] = [];
  const outcomes: Outcome[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const parts: SenderParts = {
    ledger: {
      reserve: async () => {
        calls.push('reserve');
        const r = s.reserved ?? { kind: 'reserved', reservation: RESERVATION };
        if (r instanceof Error) throw r;
        return r;
      },
      settle: (async (_r: Reservation, outcome: Outcome) => {
        calls.push(`settle ${outcome.kind}`);
        outcomes.push(outcome);
        if (s.settled) throw s.settled;
        return outcome.kind === 'replied' ? STORED : undefined;
      }) as SenderParts['ledger']['settle'],
    },
    runTurn: async (turn) => {
      calls.push('run');
      turns.push(turn);
      const r = s.run ?? RUN;
      if (r instanceof Error) throw r;
      return r;
    },
    recentMessages: async () => {
      calls.push('history');
      const h = s.history ?? HISTORY;
      if (h instanceof Error) throw h;
      return h;
    },
    log: new Logger({ write: (_severity, message, fields) => lines.push({ message, ...fields }) }),
  };
  return { sender: new MessageSender(parts), calls, turns, outcomes, lines };
}

describe('sendMessage: a message answered', () => {
  test('reserved, run with the history before it and its agent and budget, settled with the reply', async () => {
    const st = stage();
    const out = await st.sender.sendMessage('u1', { message: 'hi', conversationId: 'c1' });
    assert.deepEqual(out, STORED);
    assert.deepEqual(st.calls, ['history', 'reserve', 'run', 'settle replied']);
    assert.deepEqual(st.turns, [
      {
        uid: 'u1',
        conversationId: 'c1',
        message: 'hi',
        history: [
          { role: 'user', text: 'first' },
          { role: 'agent', text: 'answer' },
        ],
        agent: AGENT,
        tokenBudget: 700,
        client: { addressKey: null, anonymous: false },
      },
    ]);
    assert.deepEqual(st.outcomes, [{ kind: 'replied', result: RUN }]);
  });

  test('the run names whom it is for: the address as its hash (never the address), and an anonymous account', async () => {
    const st = stage();
    await st.sender.sendMessage('u1', { message: 'hi' }, undefined, { ip: '203.0.113.7', anonymous: true });
    assert.deepEqual(st.turns[0]!.client, { addressKey: ipKey('203.0.113.7'), anonymous: true });
    assert.doesNotMatch(JSON.stringify(st.turns), /203\.0\.113\.7/);
  });

  test('a new conversation reads no history', async () => {
    const st = stage();
    await st.sender.sendMessage('u1', { message: 'hi' });
    assert.deepEqual(st.calls, ['reserve', 'run', 'settle replied']);
    assert.deepEqual(st.turns[0]!.history, []);
  });

  test('one log line with the ids, the run, its warmth and the status', async () => {
    const st = stage();
    await st.sender.sendMessage('u1', { message: 'hi' }, () => undefined);
    assert.equal(st.lines.length, 1);
    const { ms, user, ...line } = st.lines[0]!;
    assert.equal(typeof ms, 'number');
    assert.equal(typeof user, 'string');
    assert.deepEqual(line, {
      message: 'message handled',
      conversationId: 'c1',
      messageId: 'm1',
      replyId: 'reply-1',
      runId: 'run-1',
      status: 'ok',
      streamed: true,
      replay: false,
      warm: true,
    });
  });
});

describe('sendMessage: replays and refusals', () => {
  test('a retry answered from its record runs nothing and settles nothing', async () => {
    const asked = askedOf({ message: 'hi' });
    const request = {
      state: 'done',
      conversationId: 'c1',
      userMessageId: 'm1',
      ...asked,
      createdAt: null,
      result: STORED,
    };
    const st = stage({ reserved: { kind: 'replay', request, asked } });
    assert.deepEqual(await st.sender.sendMessage('u1', { message: 'hi', requestId: 'r-12345678' }), STORED);
    assert.deepEqual(st.calls, ['reserve']);
    assert.equal(st.lines[0]!.replay, true);
    assert.equal(st.lines[0]!.messageId, null);
  });

  test('a refused message is thrown as it is, with nothing run or settled', async () => {
    const st = stage({ reserved: new RateLimitedError('at most 2 messages per minute', 30) });
    await assert.rejects(st.sender.sendMessage('u1', { message: 'hi' }), RateLimitedError);
    assert.deepEqual(st.calls, ['reserve']);
    assert.equal(st.lines[0]!.status, 'resource-exhausted');
  });
});

describe('sendMessage: failures after the message was stored', () => {
  test('a failed run is settled failed, and its error names the stored conversation', async () => {
    const failure = new RunnerUnavailableError(undefined, 'ECONNREFUSED');
    const st = stage({ run: failure });
    const err = await st.sender.sendMessage('u1', { message: 'hi' }).catch((e: unknown) => e);
    assert.equal(err, failure);
    assert.equal((err as DomainError).conversationId, 'c1');
    assert.deepEqual(st.calls, ['reserve', 'run', 'settle failed']);
    assert.deepEqual(st.outcomes, [{ kind: 'failed', error: failure }]);
    assert.equal(st.lines[0]!.status, 'unavailable');
    assert.equal(st.lines[0]!.detail, 'ECONNREFUSED');
    assert.equal(st.lines[0]!.messageId, 'm1');
  });

  test('a history that cannot be read fails the stored message as a failed run does', async () => {
    // It used to be thrown before the run's try: the message stayed pending, counted against the
    // user's messages in flight and "in progress" to retries, until its lease expired.
    const failure = new DatabaseUnavailableError('reading the history: no answer in 5000 ms');
    const st = stage({ history: failure });
    const err = await st.sender
      .sendMessage('u1', { message: 'hi', conversationId: 'c1' })
      .catch((e: unknown) => e);
    assert.equal(err, failure);
    assert.equal((err as DomainError).conversationId, 'c1');
    assert.deepEqual(st.calls, ['history', 'reserve', 'settle failed']);
    assert.deepEqual(st.outcomes, [{ kind: 'failed', error: failure }]);
  });

  test('a reply that cannot be stored: the error is thrown, the log line still names the run', async () => {
    const st = stage({ settled: new Error('refused') });
    await assert.rejects(st.sender.sendMessage('u1', { message: 'hi' }), /refused/);
    assert.equal(st.lines[0]!.runId, 'run-1');
    assert.equal(st.lines[0]!.status, 'internal');
  });
});
