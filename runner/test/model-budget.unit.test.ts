/**
 * Spending that cannot escape a run's budget (issue 18): the gateway (runner/src/models) against
 * the stand-in provider (helpers/fake-model.ts: real HTTP on loopback). Concurrent calls,
 * streaming and not, spend at most the budget; a provider reporting more than it was allowed is
 * logged; `finish()` aborts the calls in flight at the provider, charges them and refuses later
 * ones. No Docker: the sandbox's side of the channel is the `reply` callback.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ModelRequestEvent, ModelResponseLine } from '@agent-platform/contract';
import { Logger } from '../src/logs.ts';
import { ModelGateway, newModelRun, type ModelRun, type ModelSettings } from '../src/models/model-gateway.ts';
import { startFakeModel, type FakeModel } from './helpers/fake-model.ts';

let fake: FakeModel;
let logs: string[];
let gateway: ModelGateway;
let settings: ModelSettings;

before(async () => {
  fake = await startFakeModel();
  settings = {
    provider: 'openai',
    baseUrl: fake.baseUrl,
    apiKey: 'k',
    allowlist: [],
    defaultModel: 'fake-small',
    callsPerRun: 100,
    tokensPerRun: 100_000,
    defaultMaxTokens: 8_192,
    responseMaxBytes: 1024 * 1024,
    callTimeoutMs: 10_000,
  };
  logs = [];
  gateway = new ModelGateway(
    settings,
    () => Promise.resolve('Bearer k'),
    new Logger({ write: (l) => logs.push(l) }),
  );
});
after(() => fake.close());

/** One call of code in the sandbox: its status and its body as the sandbox would read it. */
async function call(run: ModelRun, body: object, signal = new AbortController().signal) {
  const lines: ModelResponseLine[] = [];
  const req: ModelRequestEvent = {
    type: 'model_request',
    id: Math.random().toString(36).slice(2, 10),
    method: 'POST',
    path: '/v1/chat/completions',
    body: JSON.stringify(body),
  };
  await gateway.serve(req, (l) => lines.push(l), run, signal);
  assert.equal(lines.at(-1)?.done, true, 'every call is answered to its end');
  return { status: lines[0]?.status, text: lines.map((l) => l.chunk ?? '').join('') };
}
/** The prompt estimate of a body as the code sent it, with the model: 4 bytes a token. */
const promptOf = (body: object) =>
  Math.ceil(Buffer.byteLength(JSON.stringify({ ...body, model: 'fake-small' })) / 4);
const spent = (run: ModelRun) => run.usage.inputTokens + run.usage.outputTokens;
/** Waits (bounded) until the stand-in has seen `n` more requests than `from`. */
async function seen(from: number, n: number) {
  for (let i = 0; i < 200 && fake.requests.length < from + n; i++) await sleep(10);
  assert.equal(fake.requests.length - from, n);
}

describe('a run cannot spend past its budget', () => {
  test('5 concurrent calls at 18 tokens against 50 (the adversarial case): one answer, the rest 429', async () => {
    fake.usage = { input: 10, output: 8 };
    const from = fake.requests.length;
    const run = newModelRun(settings, null, 50);
    const results = await Promise.all(
      Array.from({ length: 5 }, () => call(run, { messages: [{ role: 'user', content: 'hi' }] })),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 429, 429, 429, 429],
      'the first holds all it may spend: the whole budget',
    );
    assert.match(results[1]!.text, /more are held by calls in flight/);
    assert.equal(fake.requests.length - from, 1);
    assert.equal((fake.requests.at(-1)!.body as { max_tokens: number }).max_tokens < 50, true);
    assert.equal(spent(run), 18);
    assert.equal(run.usage.exhausted, 'tokens');
  });

  for (const stream of [false, true]) {
    test(`20 concurrent ${stream ? 'streaming' : 'JSON'} calls with caps of their own spend at most the budget`, async () => {
      fake.usage = { input: 10, output: 40 };
      const from = fake.requests.length;
      const run = newModelRun(settings, null, 300);
      // A slow provider, so that the calls are in flight together.
      fake.script.push(...Array.from({ length: 20 }, () => ({ text: 'one two three', delayMs: 100 })));
      const results = await Promise.all(
        Array.from({ length: 20 }, () => call(run, { messages: [], max_tokens: 20, stream })),
      );
      fake.script.length = 0;
      const ok = results.filter((r) => r.status === 200).length;
      const refused = results.filter((r) => r.status === 429).length;
      assert.equal(ok + refused, 20);
      assert.ok(ok >= 5, `several calls fit side by side (${ok})`);
      assert.equal(fake.requests.length - from, ok, 'the refused never reached the provider');
      const reserved = fake.requests
        .slice(from)
        .map((q) => (q.body as { max_tokens: number }).max_tokens)
        .reduce((a, b) => a + b, 0);
      assert.ok(reserved <= 300, `the caps sent add up to less than the budget (${reserved})`);
      assert.ok(spent(run) <= 300, `spent ${spent(run)} of 300`);
      assert.equal(run.usage.calls, ok);
      assert.equal(run.usage.exhausted, 'tokens');
      assert.ok(
        !logs.some((l) => l.includes('more tokens than reserved')),
        'the provider kept to its caps: nothing over',
      );
      if (stream) assert.ok(results.every((r) => r.status !== 200 || !r.text.includes('"usage"')));
    });
  }

  test('20 concurrent calls without caps: each holds what is left, one at a time; the budget holds', async () => {
    fake.usage = { input: 10, output: 40 };
    const run = newModelRun(settings, null, 300);
    fake.script.push(...Array.from({ length: 20 }, () => ({ text: 'x', delayMs: 50 })));
    const first = await Promise.all(Array.from({ length: 10 }, () => call(run, { messages: [] })));
    const second = await Promise.all(
      Array.from({ length: 10 }, () => call(run, { messages: [], stream: true })),
    );
    fake.script.length = 0;
    const ok = [...first, ...second].filter((r) => r.status === 200).length;
    assert.equal(ok, 2, 'one call of each wave: each held the whole budget while in flight');
    assert.equal(spent(run), 100);
  });

  test('a provider that reports more than max_tokens is charged what it reported, and logged', async () => {
    const run = newModelRun(settings, null, 1_000, 'run-over');
    fake.script.push({ text: 'long', usage: { input: 5, output: 995 } });
    const r = await call(run, { messages: [], max_tokens: 10 });
    assert.equal(r.status, 200);
    assert.deepEqual([run.usage.inputTokens, run.usage.outputTokens], [5, 995]);
    const line = logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.runId === 'run-over');
    assert.ok(line, logs.join('\n'));
    assert.equal(line.severity, 'WARNING');
    assert.equal(line.message, 'model provider reported more tokens than reserved');
    assert.deepEqual([line.model, line.inputTokens, line.outputTokens], ['fake-small', 5, 995]);
    assert.equal(line.reservedTokens, promptOf({ messages: [], max_tokens: 10 }) + 10);
    assert.ok(!JSON.stringify(line).includes('Bearer'), 'no secret');
    const next = await call(run, { messages: [] });
    assert.equal(next.status, 429, 'the budget is spent');
    assert.match(next.text, /spent \(1000 of 1000 tokens\)/);
  });
});

describe("finish(): a run's usage is final only when every call has settled", () => {
  test('calls in flight are aborted at the provider, charged their reservation, counted; later calls refused', async () => {
    fake.usage = { input: 7, output: 3 };
    const from = fake.requests.length;
    const closedBefore = fake.closedEarly;
    const run = newModelRun(settings, null, 30_000);
    fake.script.push(
      { text: 'never', delayMs: 30_000 }, // a JSON answer that does not come
      { text: 'never', delayMs: 30_000 },
      { text: 'a b c d e f g h', pieceDelayMs: 5_000 }, // a stream that has begun
    );
    const bodies = [{ messages: [] }, { messages: [], max_tokens: 50 }, { messages: [], stream: true }];
    const calls = bodies.map((b) => call(run, b));
    await seen(from, 3);
    await sleep(50); // the stream's first piece is on its way
    assert.equal(run.usage.calls, 3);
    assert.equal(spent(run), 0, 'nothing has settled yet');
    const t0 = performance.now();
    const usage = await run.finish();
    assert.ok(performance.now() - t0 < 1_000, `settled at once (${Math.round(performance.now() - t0)} ms)`);
    const results = await Promise.all(calls);
    assert.deepEqual(
      results.map((r) => r.status),
      [502, 502, 200],
      'the JSON calls got no answer; the stream got what had arrived',
    );
    for (let i = 0; i < 100 && fake.closedEarly < closedBefore + 3; i++) await sleep(10);
    assert.equal(fake.closedEarly - closedBefore, 3, 'the provider saw the three connections close');
    assert.equal(usage.calls, 3);
    // Each is charged its whole reservation: its prompt, and its cap (what it may have generated).
    assert.equal(
      usage.inputTokens,
      bodies.map(promptOf).reduce((a, b) => a + b, 0),
    );
    assert.equal(usage.outputTokens, 8_192 + 50 + 8_192);

    const late = await call(run, { messages: [] });
    assert.equal(late.status, 503);
    assert.match(late.text, /this run has ended/);
    assert.equal(fake.requests.length - from, 3, 'nothing more reached the provider');
    assert.deepEqual(run.usage, usage, 'charged nothing');
    assert.deepEqual(await run.finish(), usage);
  });

  test('finish is bounded: a call stuck before the provider is charged its reservation when the wait ends', async () => {
    const stuck = new ModelGateway(
      settings,
      () => new Promise<string>(() => undefined),
      new Logger({ write: () => undefined }),
    );
    const run = newModelRun(settings, null, 1_000);
    const lines: ModelResponseLine[] = [];
    void stuck.serve(
      { type: 'model_request', id: 'x1', method: 'POST', path: '/v1/chat/completions', body: '{}' },
      (l) => lines.push(l),
      run,
      new AbortController().signal,
    );
    const t0 = performance.now();
    const usage = await run.finish(100);
    const ms = performance.now() - t0;
    assert.ok(ms >= 90 && ms < 1_000, `${Math.round(ms)} ms`);
    assert.deepEqual([usage.calls, usage.inputTokens + usage.outputTokens], [1, 1_000]);
  });

  test('a call finish() catches before it reached the provider is not charged', async () => {
    let release!: (v: string) => void;
    const slowAuth = new ModelGateway(
      settings,
      () => new Promise<string>((r) => (release = r)),
      new Logger({ write: () => undefined }),
    );
    const from = fake.requests.length;
    const run = newModelRun(settings, null, 1_000);
    const lines: ModelResponseLine[] = [];
    const serving = slowAuth.serve(
      { type: 'model_request', id: 'x2', method: 'POST', path: '/v1/chat/completions', body: '{}' },
      (l) => lines.push(l),
      run,
      new AbortController().signal,
    );
    const finishing = run.finish(1_000);
    release('Bearer k');
    await serving;
    const usage = await finishing;
    assert.deepEqual([usage.calls, usage.inputTokens, usage.outputTokens], [0, 0, 0]);
    assert.equal(fake.requests.length, from);
    assert.equal(lines.at(-1)?.status, 502);
  });
});
