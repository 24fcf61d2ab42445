/**
 * The model gateway (issue 10, first part): code in a network-less sandbox reaches a model
 * through the agent's loopback endpoint and the runner, which adds the provider's key. The
 * provider is the only stand-in (helpers/fake-model.ts: real HTTP, OpenAI's wire format); the
 * runner, the agent, Docker and the sandbox are real, under runc and runsc.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFakeModel, type FakeModel } from './helpers/fake-model.ts';
import {
  fence,
  leftovers,
  outputBlocks,
  postRun,
  removeLeftovers,
  startRunner,
  uniqueId,
  type RunnerProcess,
} from './helpers/runner-process.ts';

const KEY = `sk-test-${'k'.repeat(24)}-secret`;
let fake: FakeModel;
let runner: RunnerProcess;

/** A js code block whose body runs in an async function; its console output is the block's. */
const js = (body: string) =>
  fence('js', `(async () => {\n${body}\n})().catch((e) => console.log('error', e.message));`);

const CHAT = `const chat = (body) => fetch(process.env.OPENAI_BASE_URL + '/chat/completions', {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: 'Bearer ' + process.env.OPENAI_API_KEY },
  body: JSON.stringify(body),
});`;

async function runCode(code: string, userId = uniqueId('u')): Promise<string> {
  const r = await postRun(runner, { userId, message: code });
  assert.equal(r.status, 200);
  assert.equal(r.body.status, 'ok', r.body.text);
  const [block] = outputBlocks(r.body.text);
  assert.ok(block, r.body.text);
  return block.output;
}

before(async () => {
  fake = await startFakeModel();
  runner = await startRunner({
    MODEL_BASE_URL: fake.baseUrl,
    MODEL_API_KEY: KEY,
    MODEL_ALLOWLIST: 'fake-small,fake-large',
    MODEL_DEFAULT: 'fake-small',
    MODEL_CALLS_PER_RUN: '3',
  });
});

after(async () => {
  await runner.stop();
  const left = await leftovers(runner.runnerId);
  await removeLeftovers(runner.runnerId);
  await fake.close();
  assert.deepEqual(left.containers, []);
});

describe('the model gateway', () => {
  test('code in the sandbox calls a model at OPENAI_BASE_URL; the provider gets the runner key, the default model', async () => {
    const before = fake.requests.length;
    const out = await runCode(
      js(`${CHAT}
const r = await chat({ messages: [{ role: 'user', content: 'hi' }] });
const j = await r.json();
console.log(r.status, j.choices[0].message.content, j.model, process.env.OPENAI_BASE_URL);`),
    );
    assert.equal(out, '200 scripted answer fake-small http://127.0.0.1:4180/v1');
    const seen = fake.requests.slice(before);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.authorization, `Bearer ${KEY}`, 'the runner added its key');
    assert.deepEqual((seen[0]!.body as { messages: unknown }).messages, [{ role: 'user', content: 'hi' }]);
  });

  test('the official openai SDK in the image works unchanged, streaming included', async () => {
    fake.answer = 'hello from the sdk';
    try {
      const out = await runCode(
        js(`const OpenAI = require('openai');
const client = new OpenAI(); // OPENAI_BASE_URL and OPENAI_API_KEY from the environment
const r = await client.chat.completions.create({ model: 'fake-large', messages: [{ role: 'user', content: 'hi' }] });
console.log(r.choices[0].message.content);
const stream = await client.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }], model: 'fake-small', stream: true });
let text = '';
for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
console.log(text);`),
      );
      assert.equal(out, 'hello from the sdk\nhello from the sdk');
    } finally {
      fake.answer = 'scripted answer';
    }
  });

  test('streaming: the provider server-sent events reach the sandbox as they are', async () => {
    fake.answer = 'one two three';
    try {
      const out = await runCode(
        js(`${CHAT}
const r = await chat({ model: 'fake-large', stream: true, messages: [{ role: 'user', content: 'count' }] });
const text = await r.text();
const content = text.split('\\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)).choices[0].delta.content ?? '').join('');
console.log(r.headers.get('content-type'), JSON.stringify(content), text.trim().endsWith('data: [DONE]'));`),
      );
      assert.equal(out, 'text/event-stream "one two three" true');
    } finally {
      fake.answer = 'scripted answer';
    }
  });

  test('python with the standard library works too; /v1/models lists the allowlist', async () => {
    const out = await runCode(
      fence(
        'python',
        [
          'import json, os, urllib.request',
          "with urllib.request.urlopen(os.environ['OPENAI_BASE_URL'] + '/models') as r:",
          "    print(','.join(m['id'] for m in json.load(r)['data']))",
        ].join('\n'),
      ),
    );
    assert.equal(out, 'fake-small,fake-large');
  });

  test('a model off the allowlist and calls past the run budget are refused in the sandbox; the provider sees none of them', async () => {
    const before = fake.requests.length;
    const out = await runCode(
      js(`${CHAT}
const off = await chat({ model: 'gpt-expensive', messages: [] });
console.log(off.status, (await off.json()).error.message);
for (let i = 1; i <= 4; i++) {
  const r = await chat({ messages: [{ role: 'user', content: String(i) }] });
  console.log(i, r.status, r.status === 200 ? 'ok' : (await r.json()).error.type);
}`),
    );
    assert.equal(
      out,
      [
        '400 model "gpt-expensive" is not allowed here; allowed: fake-small, fake-large',
        '1 200 ok',
        '2 200 ok',
        '3 200 ok',
        '4 429 budget_exceeded',
      ].join('\n'),
    );
    assert.equal(fake.requests.length - before, 3, 'only the three admitted calls reached the provider');
  });

  test('the key is nowhere a sandbox can read, nor in the reply or the logs; the provider cannot be reached directly', async () => {
    const direct = new URL(fake.baseUrl);
    const r = await postRun(runner, {
      userId: uniqueId('u'),
      message: [
        fence(
          'sh',
          'env; cat /proc/1/environ /proc/self/environ | tr "\\\\0" "\\\\n"; grep -rl sk-test /proc/*/environ /opt /etc 2>/dev/null; echo scanned',
        ),
        js(
          `try { await fetch('http://127.0.0.1:${direct.port}/v1/models', { signal: AbortSignal.timeout(3000) }); console.log('reached'); } catch (e) { console.log('unreachable'); }`,
        ),
      ].join('\n'),
    });
    assert.equal(r.body.status, 'ok');
    const [env, reach] = outputBlocks(r.body.text);
    assert.match(env!.output, /OPENAI_API_KEY=sk-sandbox-placeholder-not-a-key/);
    assert.match(env!.output, /scanned$/);
    assert.ok(
      !r.body.text.includes(KEY),
      'the key is not in the reply (nor in any environment, file or process)',
    );
    assert.equal(reach!.output, 'unreachable', "the sandbox's 127.0.0.1 is its own; it has no other network");
    assert.ok(!runner.logs.some((l) => l.includes(KEY)), 'the key is in no log line');
  });

  test('between runs the gateway answers 503 and writes nothing: the warm sandbox stays healthy', async () => {
    const userId = uniqueId('u');
    const before = fake.requests.length;
    await runCode(
      fence(
        'sh',
        `( sleep 1; node -e "fetch(process.env.OPENAI_BASE_URL + '/models').then((r) => require('fs').writeFileSync('/tmp/bg', String(r.status)))" ) >/dev/null 2>&1 &\necho started`,
      ),
      userId,
    );
    await new Promise((r) => setTimeout(r, 2_500));
    const r = await postRun(runner, { userId, message: fence('sh', 'cat /tmp/bg') });
    assert.equal(r.body.warm, true, 'the same sandbox: nothing was written outside a run');
    assert.equal(outputBlocks(r.body.text)[0]?.output, '503');
    assert.equal(fake.requests.length, before);
  });

  test('without a provider configured, a model call gets a clear 503 in the sandbox', async () => {
    const bare = await startRunner({});
    try {
      const res = await postRun(bare, {
        userId: uniqueId('u'),
        message: js(`${CHAT}
const r = await chat({ model: 'x', messages: [] });
console.log(r.status, (await r.json()).error.message);`),
      });
      const [block] = outputBlocks(res.body.text);
      assert.equal(block?.output, '503 no model provider is configured on this platform (MODEL_BASE_URL)');
    } finally {
      await bare.stop();
      await removeLeftovers(bare.runnerId);
    }
  });
});
