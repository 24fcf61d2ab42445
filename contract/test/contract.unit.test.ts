import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  filePathSchema,
  FUNCTION_TIMEOUT_S,
  FUNCTIONS_RUN_TIMEOUT_MAX_MS,
  ID_PATTERN,
  LineSplitter,
  REPLY_MAX_CHARS,
  TIMEOUT_MARGINS,
  budgetProblem,
  idSchema,
  parseAgentLine,
  agentRequestSchema,
  requestIdSchema,
  runResultSchema,
  runStreamLineSchema,
  sendMessageInputSchema,
  settleBy,
  timeoutBudget,
  withDeadline,
} from '../src/index.ts';

describe('LineSplitter', () => {
  test('joins lines across chunks and keeps the unfinished rest', () => {
    const s = new LineSplitter();
    assert.deepEqual(s.push('a\nb'), ['a']);
    assert.equal(s.pendingChars, 1);
    assert.deepEqual(s.push('c\r\n\nd'), ['bc', '']);
    assert.equal(s.end(), 'd');
    assert.equal(s.end(), null);
  });

  test('a line longer than the bound is dropped up to its newline and reported once', () => {
    const s = new LineSplitter(4);
    assert.deepEqual(s.push('abc'), []);
    assert.deepEqual(s.push('defg'), [null]);
    assert.equal(s.pendingChars, 0, 'the long line is not kept in memory');
    assert.deepEqual(s.push('hij\nok\n'), ['ok']);
    assert.deepEqual(s.push('12345\nxy\n'), [null, 'xy']);
  });

  test('many short lines in one chunk are split in one pass (linear)', () => {
    const s = new LineSplitter();
    const lines = s.push('x\n'.repeat(200_000));
    assert.equal(lines.length, 200_000);
    assert.ok(lines.every((l) => l === 'x'));
  });
});

describe('ids', () => {
  test('one id rule', () => {
    assert.ok(ID_PATTERN.test('a-B_9'));
    assert.ok(!ID_PATTERN.test('a/b'));
    assert.ok(!ID_PATTERN.test('x'.repeat(129)));
    assert.equal(idSchema.safeParse('../etc').success, false);
    assert.equal(requestIdSchema.safeParse('short').success, false);
    assert.equal(requestIdSchema.safeParse('long-enough').success, true);
  });
});

describe('timeout budget', () => {
  test('each layer waits longer than the one inside it, by its stated margin', () => {
    const b = timeoutBudget(30_000);
    assert.equal(b.runnerAnswerMs, 30_000 + TIMEOUT_MARGINS.queueMs + TIMEOUT_MARGINS.sandboxGraceMs);
    assert.equal(b.runnerClientMs, b.runnerAnswerMs + TIMEOUT_MARGINS.networkMarginMs);
    assert.equal(b.functionMs, b.runnerClientMs + TIMEOUT_MARGINS.firestoreMarginMs);
    assert.ok(b.functionMs <= b.functionTimeoutMs);
    assert.equal(b.webClientMs, FUNCTION_TIMEOUT_S * 1000 + TIMEOUT_MARGINS.webMarginMs);
  });

  test('a run cap that does not fit the function timeout is refused, naming both values', () => {
    assert.equal(budgetProblem(FUNCTIONS_RUN_TIMEOUT_MAX_MS), null);
    const problem = budgetProblem(FUNCTIONS_RUN_TIMEOUT_MAX_MS + 1);
    assert.ok(problem);
    assert.match(problem, new RegExp(`RUN_TIMEOUT_MS=${FUNCTIONS_RUN_TIMEOUT_MAX_MS + 1}`));
    assert.match(problem, new RegExp(`FUNCTION_TIMEOUT_S=${FUNCTION_TIMEOUT_S}`));
  });
});

describe('schemas', () => {
  const result = {
    runId: 'r1',
    status: 'ok',
    text: 'hi',
    component: null,
    agent: null,
    exitCode: 0,
    durationMs: 3,
    warm: true,
    timings: { queueMs: 0, createMs: 0, agentMs: 2, saveMs: 0 },
    usage: { model: 'm', calls: 1, inputTokens: 5, outputTokens: 2, exhausted: null },
    runnerId: 'r1',
  };

  test('workspace file paths: relative, no dot segments, no NUL or line breaks', () => {
    for (const ok of ['a.txt', 'dir/sub/file.bin', 'a b/c', '.hidden', 'x..y']) {
      assert.equal(filePathSchema.safeParse(ok).success, true, ok);
    }
    for (const bad of [
      '',
      '/abs',
      '../up',
      'a/../b',
      './a',
      'a/.',
      'dir/',
      'a\u0000b',
      'a\nb',
      'x'.repeat(1025),
    ]) {
      assert.equal(filePathSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });

  test('a run result and its stream lines', () => {
    assert.equal(runResultSchema.safeParse(result).success, true);
    assert.equal(runResultSchema.safeParse({ ...result, status: 'exploded' }).success, false);
    assert.equal(
      runResultSchema.safeParse({ ...result, text: 'x'.repeat(REPLY_MAX_CHARS + 1) }).success,
      false,
    );
    assert.equal(runStreamLineSchema.safeParse({ type: 'result', result }).success, true);
    assert.equal(runStreamLineSchema.safeParse({ type: 'text', delta: 'a' }).success, true);
    assert.equal(
      runStreamLineSchema.safeParse({ type: 'error', error: { code: 'internal', message: 'x' } }).success,
      true,
    );
  });

  test('agent lines are parsed without throwing; requests are checked by their schema', () => {
    assert.deepEqual(parseAgentLine('{"type":"text","delta":"a"}'), { event: { type: 'text', delta: 'a' } });
    assert.ok('error' in parseAgentLine('nope'));
    assert.ok('error' in parseAgentLine('{"type":"result"}'));
    const request = {
      protocol: 1,
      runId: 'r',
      userId: 'u',
      conversationId: 'c',
      message: 'm',
      history: [{ role: 'user', text: 't' }],
      model: null,
      agent: { name: 'a', instructions: 'i', tools: ['run_code'] },
    };
    assert.equal(agentRequestSchema.safeParse(request).success, true);
    assert.equal(
      agentRequestSchema.safeParse({ ...request, agent: { ...request.agent, tools: ['rm_rf'] } }).success,
      false,
    );
    const bad = agentRequestSchema.safeParse({ ...request, protocol: 2 });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error?.issues[0]?.path, ['protocol']);
  });

  test('sendMessage input: the message cap is a parameter', () => {
    const schema = sendMessageInputSchema(5);
    assert.equal(schema.safeParse({ message: 'hello' }).success, true);
    assert.equal(schema.safeParse({ message: 'hello!' }).success, false);
    assert.equal(schema.safeParse({ message: '   ' }).success, false);
  });
});

describe('deadlines (the one settleBy / withDeadline)', () => {
  test('the value when the operation wins', async () => {
    assert.deepEqual(await settleBy(Promise.resolve(7), AbortSignal.timeout(1_000)), {
      settled: true,
      value: 7,
    });
    assert.equal(
      await withDeadline(Promise.resolve('x'), new AbortController().signal, () => new Error()),
      'x',
    );
  });

  test('the signal first: not settled, the error made then, and a late failure swallowed', async () => {
    let fail!: (e: Error) => void;
    const op = new Promise<number>((_resolve, reject) => (fail = reject));
    const ac = new AbortController();
    const waiting = settleBy(op, ac.signal);
    ac.abort();
    assert.deepEqual(await waiting, { settled: false });
    await assert.rejects(
      withDeadline(op, AbortSignal.timeout(5), () => new RangeError('too late')),
      RangeError,
    );
    fail(new Error('late')); // an unhandled rejection here would fail the test run
    await new Promise((r) => setTimeout(r, 10));
  });

  test('an already aborted signal ends the wait at once; the operation’s own failure passes through', async () => {
    const ac = new AbortController();
    ac.abort();
    assert.deepEqual(await settleBy(new Promise(() => undefined), ac.signal), { settled: false });
    await assert.rejects(
      settleBy(Promise.reject(new TypeError('own')), AbortSignal.timeout(1_000)),
      TypeError,
    );
  });
});
