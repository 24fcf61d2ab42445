import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RunGate } from '../src/concurrency/run-gate.ts';
import { ConfigError, loadConfig, redactedConfig } from '../src/config.ts';
import { ClientGoneError, OverloadedError } from '../src/errors.ts';
import { parseAgentLine, runRequestSchema } from '@agent-platform/contract';

const TOKEN = 'a-long-enough-development-secret';

describe('config', () => {
  test('defaults', () => {
    const c = loadConfig({ RUNNER_TOKEN: TOKEN });
    assert.equal(c.port, 8081);
    assert.equal(c.sandbox.memoryBytes, 512 * 1024 * 1024);
    assert.equal(c.sandbox.nanoCpus, 1e9);
    assert.equal(c.sandbox.runtime, 'runc');
    assert.deepEqual(c.allowedInvokers, []);
  });

  test('parses lists and numbers; empty values mean default', () => {
    const c = loadConfig({
      RUNNER_AUDIENCE: 'https://runner',
      RUNNER_ALLOWED_INVOKERS: ' a@x.com , b@y.com ,',
      SANDBOX_CPUS: '0.5',
      PORT: '',
    });
    assert.deepEqual(c.allowedInvokers, ['a@x.com', 'b@y.com']);
    assert.equal(c.sandbox.nanoCpus, 5e8);
    assert.equal(c.port, 8081);
    assert.equal(c.runnerToken, undefined);
  });

  test('reports every bad variable at once', () => {
    assert.throws(
      () =>
        loadConfig({
          RUNNER_TOKEN: TOKEN,
          PORT: '99999',
          MAX_CONCURRENT_RUNS: '0',
          SANDBOX_RUNTIME: 'Bad Runtime',
        }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.problems.length, 3);
        assert.match(err.message, /PORT="99999": must be at most 65535/);
        assert.match(err.message, /MAX_CONCURRENT_RUNS="0": must be at least 1/);
        assert.match(err.message, /SANDBOX_RUNTIME/);
        return true;
      },
    );
  });

  test('memory must leave room above both tmpfs', () => {
    assert.throws(
      () =>
        loadConfig({
          RUNNER_TOKEN: TOKEN,
          SANDBOX_MEMORY_BYTES: String(128 * 1024 * 1024),
          WORKSPACE_BYTES: String(100 * 1024 * 1024),
        }),
      /SANDBOX_MEMORY_BYTES=.*at least WORKSPACE_BYTES \+ SANDBOX_TMP_BYTES/,
    );
  });

  test('the redacted copy hides the secret', () => {
    const text = JSON.stringify(redactedConfig(loadConfig({ RUNNER_TOKEN: TOKEN })));
    assert.ok(!text.includes(TOKEN));
    assert.match(text, /\(set\)/);
  });
});

describe('run request schema', () => {
  const schema = runRequestSchema({ maxMessageChars: 10, runTimeoutMs: 5000 });
  test('accepts a minimal request and defaults history', () => {
    const r = schema.parse({ userId: 'u_1-A', conversationId: 'c', message: 'hi' });
    assert.deepEqual(r.history, []);
  });
  test('a request may only lower the timeout', () => {
    assert.equal(
      schema.safeParse({ userId: 'u', conversationId: 'c', message: 'hi', timeoutMs: 5000 }).success,
      true,
    );
    assert.equal(
      schema.safeParse({ userId: 'u', conversationId: 'c', message: 'hi', timeoutMs: 5001 }).success,
      false,
    );
  });
  test('ids reject separators and overlong values', () => {
    for (const userId of ['a/b', 'a.b', '', 'x'.repeat(129), 'ü']) {
      assert.equal(schema.safeParse({ userId, conversationId: 'c', message: 'hi' }).success, false, userId);
    }
  });
});

describe('agent protocol', () => {
  test('parses text and result events', () => {
    assert.deepEqual(parseAgentLine('{"type":"text","delta":"a"}'), { event: { type: 'text', delta: 'a' } });
    const r = parseAgentLine(
      '{"type":"result","text":"t","component":{"type":"card","title":"x"},"agent":null}',
    );
    assert.ok('event' in r && r.event.type === 'result' && r.event.component?.type === 'card');
    // The old end-of-process event is not part of the protocol any more.
    assert.ok('error' in parseAgentLine('{"type":"agent-exit","code":3}'));
  });
  test('rejects non-JSON, unknown types and bad fields with a message', () => {
    assert.match((parseAgentLine('hello') as { error: string }).error, /not JSON/);
    assert.match((parseAgentLine('{"type":"shell","cmd":"rm"}') as { error: string }).error, /invalid event/);
    assert.match(
      (parseAgentLine('{"type":"result","text":"t","agent":{"name":""}}') as { error: string }).error,
      /agent/,
    );
  });
  test('rejects an oversized component', () => {
    const big = JSON.stringify({
      type: 'result',
      text: 't',
      component: { type: 'card', body: 'x'.repeat(70_000) },
    });
    assert.match((parseAgentLine(big) as { error: string }).error, /component/);
  });
});

describe('run gate', () => {
  const limits = {
    maxConcurrent: 2,
    maxQueued: 2,
    maxQueuedPerUser: 1,
    retryAfterSeconds: 3,
    queueTimeoutMs: 10_000,
  };

  test('serializes one user and lets another through', async () => {
    const gate = new RunGate(limits);
    const order: string[] = [];
    const a1 = await gate.acquire('a');
    const a2 = gate.acquire('a').then((r) => {
      order.push('a2');
      return r;
    });
    const b1 = await gate.acquire('b');
    order.push('b1');
    await sleep(10);
    assert.deepEqual(order, ['b1']);
    a1();
    (await a2)();
    b1();
    assert.deepEqual(order, ['b1', 'a2']);
    assert.equal(gate.running, 0);
  });

  test('rejects beyond the per-user queue with Retry-After', async () => {
    const gate = new RunGate(limits);
    const a1 = await gate.acquire('a');
    const a2 = gate.acquire('a');
    await assert.rejects(
      gate.acquire('a'),
      (e: unknown) => e instanceof OverloadedError && e.retryAfterSeconds === 3,
    );
    a1();
    (await a2)();
  });

  test('never exceeds the global cap and hands slots over in order', async () => {
    const gate = new RunGate(limits);
    const r1 = await gate.acquire('u1');
    const r2 = await gate.acquire('u2');
    const got: string[] = [];
    const w3 = gate.acquire('u3').then((r) => (got.push('u3'), r));
    const w4 = gate.acquire('u4').then((r) => (got.push('u4'), r));
    await assert.rejects(gate.acquire('u5'), OverloadedError);
    assert.equal(gate.running, 2);
    r1();
    const r3 = await w3;
    assert.equal(gate.running, 2);
    r2();
    const r4 = await w4;
    assert.deepEqual(got, ['u3', 'u4']);
    r3();
    r4();
    assert.equal(gate.running, 0);
    assert.equal(gate.waiting, 0);
  });

  test('a waiter whose client leaves is dropped from the queue', async () => {
    const gate = new RunGate(limits);
    const r1 = await gate.acquire('a');
    const ac = new AbortController();
    const w = gate.acquire('a', ac.signal);
    ac.abort();
    await assert.rejects(w, ClientGoneError);
    assert.equal(gate.waiting, 0);
    r1();
    const again = await gate.acquire('a');
    again();
    assert.equal(gate.running, 0);
  });
});
