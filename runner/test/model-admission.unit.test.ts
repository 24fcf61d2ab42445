/**
 * The model gateway's pure parts (issue 17): admitting a call against its run's budget
 * (call-admission.ts), the run's reservations and finish (model-run.ts), and the usage meter
 * (usage-meter.ts). No network, no Docker; the gateway over real HTTP is model-budget.unit.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ModelRequestEvent } from '@agent-platform/contract';
import { admit, type Admission } from '../src/models/call-admission.ts';
import { listedModels, modelRefusal } from '../src/models/model-allowlist.ts';
import { ModelRun, newModelRun, type RunBudget } from '../src/models/model-run.ts';
import type { ModelSettings } from '../src/models/model-settings.ts';
import { chargeFor, meterAnswer, usageLines } from '../src/models/usage-meter.ts';

const SETTINGS: ModelSettings = {
  provider: 'openai',
  baseUrl: 'http://127.0.0.1:9/v1',
  apiKey: undefined,
  allowlist: ['small', 'large'],
  defaultModel: 'small',
  callsPerRun: 5,
  tokensPerRun: 1_000,
  defaultMaxTokens: 100,
  responseMaxBytes: 1024,
  callTimeoutMs: 1_000,
};
const FRESH: RunBudget = {
  model: null,
  tokenBudget: 1_000,
  calls: 0,
  usedTokens: 0,
  reservedTokens: 0,
  finished: false,
};

const chat = (body: unknown, method: 'GET' | 'POST' = 'POST'): ModelRequestEvent => ({
  type: 'model_request',
  id: 'a1',
  method,
  path: '/v1/chat/completions',
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const decide = (body: unknown, run: Partial<RunBudget> = {}, settings: Partial<ModelSettings> = {}) =>
  admit(chat(body), { ...FRESH, ...run }, { ...SETTINGS, ...settings });

function forwarded(a: Admission) {
  assert.equal(a.kind, 'forward', JSON.stringify(a));
  if (a.kind !== 'forward') throw new Error('unreachable');
  return { ...a, body: JSON.parse(a.payload) as Record<string, unknown> };
}
function refused(a: Admission, status: number, exhausted: 'calls' | 'tokens' | null = null) {
  assert.equal(a.kind, 'refuse', JSON.stringify(a));
  if (a.kind !== 'refuse') throw new Error('unreachable');
  assert.equal(a.status, status);
  assert.equal(a.exhausted, exhausted);
  return a;
}
/** The prompt estimate of a body as forwarded before its cap: 4 bytes a token. */
const promptOf = (body: object) => Math.ceil(Buffer.byteLength(JSON.stringify(body)) / 4);

describe('admitting a model call', () => {
  test('/v1/models is answered here on GET only; chat completions on POST only', () => {
    const models = (method: 'GET' | 'POST') =>
      admit({ type: 'model_request', id: 'a1', method, path: '/v1/models', body: null }, FRESH, SETTINGS);
    assert.deepEqual(models('GET'), { kind: 'models' });
    assert.equal(refused(models('POST'), 405).message, 'use GET');
    assert.equal(refused(admit(chat({}, 'GET'), FRESH, SETTINGS), 405).message, 'use POST');
  });

  test('refused before the body is read: a finished run, no provider, the call cap, a spent budget', () => {
    const ok = { messages: [] };
    assert.match(refused(decide(ok, { finished: true }), 503).message, /this run has ended/);
    assert.equal(
      refused(decide(ok, {}, { baseUrl: null }), 503).message,
      'no model provider is configured on this platform (MODEL_BASE_URL)',
    );
    assert.equal(
      refused(decide(ok, { calls: 5 }), 429, 'calls').message,
      'this run may make at most 5 model calls',
    );
    assert.equal(
      refused(decide(ok, { usedTokens: 1_000 }), 429, 'tokens').message,
      'the token budget of this run is spent (1000 of 1000 tokens); budgets are set per run and per user per day',
    );
    assert.equal(
      refused(decide(ok, { usedTokens: 300, reservedTokens: 700 }), 429, 'tokens').message,
      'the token budget of this run is spent (300 of 1000 tokens; 700 more are held by calls in flight); budgets are set per run and per user per day',
    );
    assert.equal(refused(decide('not json', { usedTokens: 1_200 }), 429, 'tokens').status, 429);
    refused(decide(ok, { tokenBudget: 0 }), 429, 'tokens');
  });

  test('the body must be a JSON object naming an allowed model (or the run has one, or a default)', () => {
    for (const body of ['', 'nope', '[]', 'null', '"text"', '3']) {
      assert.equal(refused(decide(body), 400).message, 'the body must be a JSON object');
    }
    assert.equal(refused(decide({ messages: [] }, {}, { defaultModel: null }), 400).message, 'name a model');
    assert.equal(
      refused(decide({ model: 'gpt-expensive' }), 400).message,
      'model "gpt-expensive" is not allowed here; allowed: small, large',
    );
    assert.equal(forwarded(decide({ messages: [] })).call.model, 'small', 'MODEL_DEFAULT');
    assert.equal(forwarded(decide({ messages: [] }, { model: 'large' })).call.model, 'large', "the run's");
    assert.equal(forwarded(decide({ model: 'large' }, { model: 'small' })).call.model, 'large');
    assert.equal(forwarded(decide({ model: '' })).call.model, 'small', 'an empty name is none');
    assert.equal(forwarded(decide({ model: 'anything' }, {}, { allowlist: [] })).body.model, 'anything');
  });

  test('the one allowlist message, for the run request and the sandbox alike', () => {
    assert.equal(modelRefusal(SETTINGS, 'small'), null);
    assert.equal(modelRefusal({ ...SETTINGS, allowlist: [] }, 'x'.repeat(300)), null, 'empty: any');
    assert.equal(
      modelRefusal(SETTINGS, 'x'.repeat(300)),
      `model "${'x'.repeat(79)} is not allowed here; allowed: small, large`,
    );
    assert.deepEqual(listedModels(SETTINGS), ['small', 'large']);
    assert.deepEqual(listedModels({ ...SETTINGS, allowlist: [] }), ['small']);
    assert.deepEqual(listedModels({ ...SETTINGS, allowlist: [], defaultModel: null }), []);
  });

  test('n and the caps must be numbers: a provider must not be left to read them its own way', () => {
    for (const n of [0, -1, 1.5, '2', true]) {
      assert.equal(refused(decide({ n }), 400).message, 'n must be a whole number of choices, at least 1');
    }
    for (const v of [-1, '10', {}, [5]]) {
      assert.equal(refused(decide({ max_tokens: v }), 400).message, 'max_tokens must be a number of tokens');
      assert.equal(
        refused(decide({ max_completion_tokens: v }), 400).message,
        'max_completion_tokens must be a number of tokens',
      );
    }
  });

  test('a call with no cap gets max_tokens: MODEL_DEFAULT_MAX_TOKENS, or what is left if less', () => {
    const body = { messages: [{ role: 'user', content: 'hi' }] };
    const prompt = promptOf({ ...body, model: 'small' });
    const a = forwarded(decide(body));
    assert.equal(a.body.max_tokens, 100);
    assert.equal(a.body.max_completion_tokens, undefined);
    assert.deepEqual(a.call, { model: 'small', promptTokens: prompt, completionTokens: 100 });
    // 40 left: the prompt's tokens, and the rest for the answer.
    const tight = forwarded(decide(body, { usedTokens: 900, reservedTokens: 60 }));
    assert.equal(tight.body.max_tokens, 40 - prompt);
    assert.equal(tight.call.promptTokens + tight.call.completionTokens, 40, 'exactly what was left');
    // Nothing left for an answer: refused, and the message says why.
    const none = refused(decide(body, { usedTokens: 1_000 - prompt }), 429, 'tokens');
    assert.equal(
      none.message,
      `this call's prompt (about ${prompt} tokens) does not fit in what is left of the token budget of this run (${prompt} of 1000 tokens); budgets are set per run and per user per day`,
    );
    forwarded(decide(body, { usedTokens: 1_000 - prompt - 1 }));
  });

  test('a cap the code set is kept when smaller, lowered when larger, under its own name', () => {
    assert.equal(forwarded(decide({ max_tokens: 7 })).body.max_tokens, 7);
    assert.equal(forwarded(decide({ max_tokens: 7 })).call.completionTokens, 7);
    assert.equal(forwarded(decide({ max_tokens: 500 })).body.max_tokens, 500, 'above the default: kept');
    const big = forwarded(decide({ max_tokens: 5_000 }));
    assert.equal(big.body.max_tokens, 1_000 - big.call.promptTokens, 'lowered to what is left');
    const named = forwarded(decide({ max_completion_tokens: 9 }));
    assert.equal(named.body.max_completion_tokens, 9);
    assert.equal(named.body.max_tokens, undefined, 'no second name added');
    const nulled = forwarded(decide({ max_completion_tokens: null }));
    assert.equal(nulled.body.max_completion_tokens, 100, 'the name the code wrote gets the default');
    assert.equal(nulled.body.max_tokens, undefined);
    const both = forwarded(decide({ max_tokens: 3, max_completion_tokens: 5_000 }));
    assert.equal(both.body.max_tokens, 3);
    assert.equal(both.body.max_completion_tokens, 1_000 - both.call.promptTokens);
    assert.equal(both.call.completionTokens, 1_000 - both.call.promptTokens, 'the larger bounds the call');
    assert.equal(forwarded(decide({ max_tokens: 2.5 })).call.completionTokens, 3, 'rounded up');
    assert.equal(forwarded(decide({ max_tokens: 0 })).call.completionTokens, 0);
  });

  test('n choices share what is left: each gets a cap, the call reserves them all', () => {
    const a = forwarded(decide({ n: 3 }));
    assert.equal(a.body.max_tokens, 100);
    assert.equal(a.call.completionTokens, 300);
    const tight = forwarded(decide({ n: 4, max_tokens: 1_000 }, { usedTokens: 800 }));
    const room = Math.floor((200 - tight.call.promptTokens) / 4);
    assert.equal(tight.body.max_tokens, room);
    assert.ok(tight.call.promptTokens + tight.call.completionTokens <= 200);
    const prompt = promptOf({ n: 100, model: 'small' });
    assert.match(
      refused(decide({ n: 100 }, { usedTokens: 1_000 - prompt - 99 }), 429, 'tokens').message,
      / and 100 choices\) does not fit/,
    );
  });

  test('a stream is asked for its usage; the extra chunk is hidden only when the code did not ask', () => {
    const plain = forwarded(decide({ stream: true, stream_options: { other: 1 } }));
    assert.deepEqual(plain.body.stream_options, { other: 1, include_usage: true });
    assert.equal(plain.hideUsageChunk, true);
    const asked = forwarded(decide({ stream: true, stream_options: { include_usage: true } }));
    assert.equal(asked.hideUsageChunk, false);
    const json = forwarded(decide({ stream: false }));
    assert.equal(json.hideUsageChunk, false);
    assert.equal(json.body.stream_options, undefined);
  });

  test('the payload is the body with the model, in the order the code wrote it', () => {
    const a = forwarded(decide({ messages: [], model: 'large', temperature: 0 }));
    assert.equal(a.payload, '{"messages":[],"model":"large","temperature":0,"max_tokens":100}');
  });
});

describe("a run's budget: reservations", () => {
  const call = { model: 'small', promptTokens: 10, completionTokens: 90 };

  test('reserve holds, commit charges what was spent, cancel releases and uncounts', () => {
    const run = newModelRun(SETTINGS, 'large', 5_000, 'r1');
    assert.equal(run.tokenBudget, 1_000, 'at most MODEL_TOKENS_PER_RUN');
    assert.equal(newModelRun(SETTINGS, null).tokenBudget, 1_000);
    assert.equal(newModelRun(SETTINGS, null, 300).tokenBudget, 300);
    const a = run.reserve(call);
    const b = run.reserve(call);
    assert.deepEqual(run.budget(), {
      model: 'large',
      tokenBudget: 1_000,
      calls: 2,
      usedTokens: 0,
      reservedTokens: 200,
      finished: false,
    });
    a.commit({ input: 8, output: 20 });
    a.commit({ input: 500, output: 500 }); // settled once
    b.cancel();
    assert.deepEqual(run.budget(), { ...run.budget(), calls: 1, usedTokens: 28, reservedTokens: 0 });
    assert.deepEqual(run.usage, {
      model: 'small',
      calls: 1,
      inputTokens: 8,
      outputTokens: 20,
      exhausted: null,
    });
    run.exhausted('tokens');
    assert.equal(run.usage.exhausted, 'tokens');
    const copy = run.usage;
    copy.calls = 99;
    assert.equal(run.usage.calls, 1, 'usage is a copy: only the run changes it');
  });

  test('finish aborts the calls in flight, waits for them, and charges the late ones their reservation', async () => {
    const run = new ModelRun(null, 1_000);
    const settles = run.reserve(call);
    const stuck = run.reserve(call);
    const done = run.reserve(call);
    done.commit({ input: 1, output: 1 });
    settles.signal.addEventListener('abort', () => settles.commit({ input: 10, output: 5 }));
    const t0 = performance.now();
    const usage = await run.finish(50);
    assert.ok(performance.now() - t0 < 1_000, 'bounded');
    assert.equal(stuck.signal.aborted, true, 'every call in flight was aborted');
    assert.deepEqual(usage, {
      model: 'small',
      calls: 3,
      inputTokens: 1 + 10 + 10,
      outputTokens: 1 + 5 + 90,
      exhausted: null,
    });
    stuck.commit({ input: 1, output: 1 }); // too late: already charged
    assert.deepEqual(run.usage, usage);
    assert.equal(run.budget().finished, true);
    assert.equal(run.budget().reservedTokens, 0);
    assert.throws(() => run.reserve(call), /finished/);
    assert.equal(await run.finish(), usage, 'idempotent');
  });

  test('finish with nothing in flight resolves at once', async () => {
    const run = new ModelRun(null, 10);
    const t0 = performance.now();
    assert.equal((await run.finish()).calls, 0);
    assert.ok(performance.now() - t0 < 100);
  });
});

async function* pieces(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
}
async function* broken(...parts: string[]): AsyncIterable<Uint8Array> {
  yield* pieces(...parts);
  throw new Error('connection reset');
}
const METER = { sse: true, ok: true, hideUsageChunk: false, maxBytes: 1024 };
const USAGE = '{"prompt_tokens":12,"completion_tokens":3}';

describe('the usage meter', () => {
  test('a stream passes on whole lines as they come; the usage chunk is read', async () => {
    const passed: string[] = [];
    const m = await meterAnswer(
      pieces(
        'data: {"choices":[{"delta":{"content":"a b"}}]}\n\nda',
        `ta: {"choices":[],"usage":${USAGE}}\n\n`,
        'data: [DONE]',
      ),
      METER,
      (c) => passed.push(c),
    );
    assert.deepEqual(passed, [
      'data: {"choices":[{"delta":{"content":"a b"}}]}\n\n',
      `data: {"choices":[],"usage":${USAGE}}\n\n`,
    ]);
    assert.equal(m.rest, 'data: [DONE]');
    assert.deepEqual(m.reported, { input: 12, output: 3 });
    assert.equal(m.whole, true);
  });

  test('the usage chunk is kept from a sandbox that did not ask for it, blank line and all', async () => {
    const passed: string[] = [];
    const m = await meterAnswer(
      pieces(
        'data: {"choices":[{"delta":{}}]}\n\n',
        `data: {"choices":[],"usage":${USAGE}}\n\ndata: [DONE]\n\n`,
      ),
      { ...METER, hideUsageChunk: true },
      (c) => passed.push(c),
    );
    assert.equal(passed.join('') + m.rest, 'data: {"choices":[{"delta":{}}]}\n\ndata: [DONE]\n\n');
    assert.deepEqual(m.reported, { input: 12, output: 3 });
    // A content chunk that carries a usage too is passed on.
    assert.equal(
      usageLines(`data: {"choices":[{"delta":{}}],"usage":${USAGE}}\n`, true, () => undefined),
      `data: {"choices":[{"delta":{}}],"usage":${USAGE}}\n`,
    );
  });

  test('JSON is passed on whole at the end, its usage read (a 2xx only)', async () => {
    const json = `{"choices":[],"usage":${USAGE}}`;
    const ok = await meterAnswer(pieces(json.slice(0, 5), json.slice(5)), { ...METER, sse: false }, () =>
      assert.fail('nothing before the end'),
    );
    assert.equal(ok.rest, json);
    assert.deepEqual(ok.reported, { input: 12, output: 3 });
    const failed = await meterAnswer(pieces(json), { ...METER, sse: false, ok: false }, () => undefined);
    assert.equal(failed.reported, null);
    const garbage = await meterAnswer(pieces('<html>'), { ...METER, sse: false }, () => undefined);
    assert.deepEqual([garbage.rest, garbage.reported, garbage.whole], ['<html>', null, true]);
  });

  test('an answer past the byte cap, or broken off, is not whole', async () => {
    const capped = await meterAnswer(
      pieces('x'.repeat(600), 'y'.repeat(600)),
      { ...METER, sse: false },
      () => undefined,
    );
    assert.deepEqual([capped.rest, capped.whole, capped.receivedBytes], ['x'.repeat(600), false, 1_200]);
    const passed: string[] = [];
    const cut = await meterAnswer(broken('data: {"a":1}\n\ndata: {"b"'), METER, (c) => passed.push(c));
    assert.deepEqual(passed, ['data: {"a":1}\n\n']);
    assert.equal(cut.whole, false);
  });

  test('the charge: reported usage, else an estimate (at most the cap), else the reservation', () => {
    const call = { model: 'm', promptTokens: 10, completionTokens: 20 };
    const reported = { input: 3, output: 400 };
    assert.deepEqual(chargeFor(call, { reported, receivedBytes: 0, whole: false }), reported);
    assert.deepEqual(chargeFor(call, { reported: null, receivedBytes: 40, whole: true }), {
      input: 10,
      output: 10,
    });
    assert.deepEqual(chargeFor(call, { reported: null, receivedBytes: 4_000, whole: true }), {
      input: 10,
      output: 20,
    });
    assert.deepEqual(chargeFor(call, { reported: null, receivedBytes: 4, whole: false }), {
      input: 10,
      output: 20,
    });
  });
});
