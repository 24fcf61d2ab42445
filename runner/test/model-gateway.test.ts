/**
 * The model gateway and the reference LLM agent (issue 10): code in a network-less sandbox
 * reaches a model through the agent's loopback endpoint and the runner, which adds the provider's
 * key; the default agent, given a model, runs a tool loop over the same channel. The provider is
 * the only stand-in (helpers/fake-model.ts: real HTTP, OpenAI's wire format, scripted answers);
 * the runner, the agent, Docker and the sandbox are real, under runc and runsc.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AGENT_MAX_STEPS, MODEL_REQUEST_MAX_BYTES, type RunResult } from '@agent-platform/contract';
import { startFakeMetadata } from './helpers/fake-metadata.ts';
import { startFakeModel, type FakeModel, type Scripted } from './helpers/fake-model.ts';
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

/** The reference agent's run_code call, as the model asks for it. */
const runCodeCall = (language: string, code: string) => ({
  toolCalls: [{ name: 'run_code', arguments: JSON.stringify({ language, code }) }],
});

/**
 * With a provider configured the default agent is the LLM agent: the scripted model asks it to
 * run `code` (a fenced block: its language and body), then answers "done". Returns the output.
 */
async function runCode(block: string, userId = uniqueId('u')): Promise<string> {
  const m = /^```(\w+)\n([\s\S]*)\n```$/.exec(block);
  assert.ok(m, 'a fenced block');
  fake.agentScript.push(runCodeCall(m[1] === 'python' ? 'python' : m[1] === 'js' ? 'js' : 'sh', m[2]!), {
    text: 'done',
  });
  const r = await postRun(runner, { userId, message: 'run it' });
  assert.equal(r.status, 200);
  assert.equal(r.body.status, 'ok', r.body.text);
  const [out] = outputBlocks(r.body.text);
  assert.ok(out, r.body.text);
  return out.output;
}

before(async () => {
  fake = await startFakeModel();
  runner = await startRunner({
    MODEL_BASE_URL: fake.baseUrl,
    MODEL_API_KEY: KEY,
    MODEL_ALLOWLIST: 'fake-small,fake-large',
    MODEL_DEFAULT: 'fake-small',
    MODEL_CALLS_PER_RUN: '10',
    MODEL_CALL_TIMEOUT_MS: '3000',
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
    const seen = fake.requests.slice(before).filter((q) => !('tools' in (q.body as object)));
    assert.equal(seen.length, 1, 'one call of the code (the others are the agent tool loop)');
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
    // MODEL_CALLS_PER_RUN=10: the agent's first call is one, the code gets nine, the agent's
    // last call is refused and the run says why.
    fake.agentScript.push(
      runCodeCall(
        'js',
        `(async () => {\n${CHAT}
const off = await chat({ model: 'gpt-expensive', messages: [] });
console.log(off.status, (await off.json()).error.message);
for (let i = 1; i <= 10; i++) {
  const r = await chat({ messages: [{ role: 'user', content: String(i) }] });
  console.log(i, r.status, r.status === 200 ? 'ok' : (await r.json()).error.type);
}\n})();`,
      ),
    );
    const r = await postRun(runner, { userId: uniqueId('u'), message: 'spend' });
    assert.equal(
      outputBlocks(r.body.text)[0]?.output,
      [
        '400 model "gpt-expensive" is not allowed here; allowed: fake-small, fake-large',
        '1 200 ok',
        '2 200 ok',
        '3 200 ok',
        '4 200 ok',
        '5 200 ok',
        '6 200 ok',
        '7 200 ok',
        '8 200 ok',
        '9 200 ok',
        '10 429 budget_exceeded',
      ].join('\n'),
    );
    assert.equal(r.body.status, 'error');
    assert.match(r.body.text, /the model call failed \(429\): this run may make at most 10 model calls$/);
    assert.deepEqual(r.body.usage, {
      model: 'fake-small',
      calls: 10,
      inputTokens: 70,
      outputTokens: 30,
      exhausted: 'calls',
    });
    assert.equal(fake.requests.length - before, 10, 'only the ten admitted calls reached the provider');
  });

  test('the key is nowhere a sandbox can read, nor in the reply or the logs; the provider cannot be reached directly', async () => {
    const direct = new URL(fake.baseUrl);
    fake.agentScript.push(
      {
        toolCalls: [
          {
            name: 'run_code',
            arguments: JSON.stringify({
              language: 'sh',
              code: 'env; cat /proc/1/environ /proc/self/environ | tr "\\0" "\\n"; grep -rl sk-test /proc/*/environ /opt /etc 2>/dev/null; echo scanned',
            }),
          },
          {
            name: 'run_code',
            arguments: JSON.stringify({
              language: 'js',
              code: `fetch('http://127.0.0.1:${direct.port}/v1/models', { signal: AbortSignal.timeout(3000) }).then(() => console.log('reached'), () => console.log('unreachable'));`,
            }),
          },
        ],
      },
      { text: 'scanned' },
    );
    const r = await postRun(runner, { userId: uniqueId('u'), message: 'look around' });
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
    const during = fake.requests.length;
    fake.agentScript.push(runCodeCall('sh', 'cat /tmp/bg'), { text: 'done' });
    const r = await postRun(runner, { userId, message: 'check' });
    assert.equal(r.body.warm, true, 'the same sandbox: nothing was written outside a run');
    assert.equal(outputBlocks(r.body.text)[0]?.output, '503');
    assert.equal(
      during - before,
      2,
      "the provider saw the agent's two calls of the first run, nothing between runs",
    );
  });

  test('without a provider configured, the agent answers offline and a model call gets a clear 503', async () => {
    const bare = await startRunner({});
    try {
      const res = await postRun(bare, {
        userId: uniqueId('u'),
        message: js(`${CHAT}
const r = await chat({ model: 'x', messages: [] });
console.log(r.status, (await r.json()).error.message);`),
      });
      assert.match(res.body.text, /^Test response: /, 'the offline agent');
      const [block] = outputBlocks(res.body.text);
      assert.equal(block?.output, '503 no model provider is configured on this platform (MODEL_BASE_URL)');
      assert.deepEqual(res.body.usage, {
        model: null,
        calls: 0,
        inputTokens: 0,
        outputTokens: 0,
        exhausted: null,
      });
    } finally {
      await bare.stop();
      await removeLeftovers(bare.runnerId);
    }
  });
});

/** POST /v1/runs streamed (NDJSON): the text deltas as they came, and the result. */
async function streamRun(body: Record<string, unknown>): Promise<{ deltas: string[]; result: RunResult }> {
  const res = await fetch(`${runner.url}/v1/runs`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${runner.token}`,
      'content-type': 'application/json',
      accept: 'application/x-ndjson',
    },
    body: JSON.stringify({ conversationId: 'c1', ...body }),
  });
  assert.equal(res.status, 200);
  const deltas: string[] = [];
  let result: RunResult | null = null;
  for (const line of (await res.text()).split('\n')) {
    if (!line.trim()) continue;
    const l = JSON.parse(line) as { type: string; delta?: string; result?: RunResult };
    if (l.type === 'text') deltas.push(l.delta!);
    if (l.type === 'result') result = l.result!;
  }
  assert.ok(result);
  return { deltas, result };
}

type Sent = {
  messages: Array<{ role: string; content?: string; tool_call_id?: string }>;
  tools?: Array<{ function: { name: string } }>;
  model: string;
};
const agentCalls = (from: number) =>
  fake.requests
    .slice(from)
    .filter((q) => typeof q.body === 'object' && q.body !== null && 'tools' in q.body)
    .map((q) => q.body as Sent);

describe('the reference LLM agent', () => {
  test('a tool loop: the model runs code, answers from its output; tokens stream; usage comes back', async () => {
    const before = fake.requests.length;
    fake.agentScript.push(
      { text: 'Let me compute. ', ...runCodeCall('python', 'print(6 * 7)'), usage: { input: 20, output: 5 } },
      { text: 'The answer is 42.', usage: { input: 40, output: 6 } },
    );
    const { deltas, result } = await streamRun({
      userId: uniqueId('u'),
      message: 'what is 6 times 7?',
      history: [
        { role: 'user', text: 'earlier' },
        { role: 'agent', text: 'before' },
      ],
    });
    assert.equal(result.status, 'ok', result.text);
    assert.ok(result.text.startsWith('Let me compute. \n\n```python\nprint(6 * 7)\n```'), result.text);
    assert.equal(outputBlocks(result.text)[0]?.output, '42');
    assert.ok(result.text.endsWith('(exit 0)\n\nThe answer is 42.'), result.text);
    assert.ok(deltas.length >= 6, 'the text came in pieces as the model streamed it');
    assert.equal(deltas.join(''), result.text);
    assert.deepEqual(result.usage, {
      model: 'fake-small',
      calls: 2,
      inputTokens: 60,
      outputTokens: 11,
      exhausted: null,
    });
    const [first, second] = agentCalls(before);
    assert.deepEqual(
      first!.messages.slice(1).map((m) => [m.role, m.content]),
      [
        ['user', 'earlier'],
        ['assistant', 'before'],
        ['user', 'what is 6 times 7?'],
      ],
      'history and message after the system prompt',
    );
    assert.deepEqual(
      first!.tools!.map((t) => t.function.name),
      ['run_code', 'read_file', 'write_file', 'create_agent', 'show_component'],
    );
    const tool = second!.messages.find((m) => m.role === 'tool');
    assert.equal(tool?.content, 'exit 0\n42', 'the output went back to the model');
    assert.equal(tool?.tool_call_id, 'call_0');
  });

  test("files, a new agent and a component; a user's agent speaks with its instructions and only its tools", async () => {
    const userId = uniqueId('u');
    fake.agentScript.push(
      {
        toolCalls: [
          { name: 'write_file', arguments: JSON.stringify({ path: 'notes/a.txt', content: 'hello file' }) },
          { name: 'read_file', arguments: JSON.stringify({ path: 'notes/a.txt' }) },
          { name: 'read_file', arguments: JSON.stringify({ path: '../etc/passwd' }) },
          {
            name: 'create_agent',
            arguments: JSON.stringify({ name: 'Poet', description: 'writes verse', instructions: 'Rhyme.' }),
          },
          {
            name: 'show_component',
            arguments: JSON.stringify({ type: 'table', columns: ['a', 'b'], rows: [['1', '2']] }),
          },
        ],
      },
      { text: 'all done' },
    );
    const before = fake.requests.length;
    const r = await postRun(runner, { userId, message: 'do things' });
    assert.equal(r.body.status, 'ok', r.body.text);
    assert.deepEqual(r.body.agent, { name: 'Poet', description: 'writes verse', instructions: 'Rhyme.' });
    assert.deepEqual(r.body.component, { type: 'table', columns: ['a', 'b'], rows: [{ cells: ['1', '2'] }] });
    const results = agentCalls(before)[1]!
      .messages.filter((m) => m.role === 'tool')
      .map((m) => m.content);
    assert.deepEqual(results, [
      'written',
      'hello file',
      'error: the path must be inside /workspace',
      'created',
      'shown',
    ]);
    // The file is in the workspace: the next run (a user's agent allowed only read_file) reads it.
    fake.agentScript.push(
      {
        toolCalls: [
          { name: 'run_code', arguments: JSON.stringify({ language: 'sh', code: 'echo no' }) },
          { name: 'read_file', arguments: JSON.stringify({ path: '/workspace/notes/a.txt' }) },
        ],
      },
      { text: 'read it' },
    );
    const mid = fake.requests.length;
    const r2 = await postRun(runner, {
      userId,
      message: 'again',
      model: 'fake-large',
      agent: { name: 'Reader', instructions: 'Only read.', tools: ['read_file'] },
    });
    assert.equal(r2.body.status, 'ok', r2.body.text);
    const [call1, call2] = agentCalls(mid);
    assert.equal(call1!.model, 'fake-large', "the run's model");
    assert.match(call1!.messages[0]!.content!, /^You are Reader\. Only read\./);
    assert.deepEqual(
      call1!.tools!.map((t) => t.function.name),
      ['read_file'],
    );
    assert.deepEqual(
      call2!.messages.filter((m) => m.role === 'tool').map((m) => m.content),
      ['error: no tool named "run_code" is available', 'hello file'],
    );
    assert.equal(outputBlocks(r2.body.text).length, 0, 'no code ran');
  });

  test('a model off the allowlist is refused with 400 before any run', async () => {
    const r = await postRun(runner, { userId: uniqueId('u'), message: 'x', model: 'gpt-expensive' });
    assert.equal(r.status, 400);
    assert.equal((r.body as unknown as { error: { field: string } }).error.field, 'model');
  });

  test("the run's token budget: a call past it gets 429 in the sandbox, the result says why", async () => {
    const before = fake.requests.length;
    // Each call holds its prompt (4 bytes a token) and a cap before it is forwarded, so none can
    // pass the budget (issue 18): of 2000 tokens the agent's call spends 1980, the code's first
    // call may use the 20 left (9 of prompt, max_tokens 11) and does; the second finds none left.
    fake.agentScript.push({
      ...runCodeCall(
        'js',
        `(async () => {\n${CHAT}\nfor (let i = 1; i <= 2; i++) { const r = await chat({ messages: [] }); console.log(i, r.status, r.status === 200 ? 'ok' : (await r.json()).error.message); }\n})();`,
      ),
      usage: { input: 1_970, output: 10 },
    });
    fake.script.push({ text: 'brief', usage: { input: 9, output: 11 } });
    const r = await postRun(runner, { userId: uniqueId('u'), message: 'spend', tokenBudget: 2_000 });
    assert.deepEqual(outputBlocks(r.body.text)[0]?.output.split('\n'), [
      '1 200 ok',
      '2 429 the token budget of this run is spent (2000 of 2000 tokens); budgets are set per run and per user per day',
    ]);
    assert.equal(r.body.status, 'error');
    assert.equal(r.body.usage.exhausted, 'tokens');
    assert.equal(r.body.usage.inputTokens + r.body.usage.outputTokens, 2_000);
    assert.equal(fake.requests.length - before, 2);
    const code = fake.requests[before + 1]!.body as { max_tokens: number };
    assert.equal(code.max_tokens, 11, 'the gateway capped the call to what was left');
  });

  test('a provider that fails, answers garbage or is slow gives a clear status; nothing is left pending', async () => {
    const userId = uniqueId('u');
    const cases: Array<{ script: Scripted; expect: RegExp }> = [
      {
        script: { status: 500, body: JSON.stringify({ error: { message: 'upstream exploded' } }) },
        expect: /the model call failed \(500\): upstream exploded$/,
      },
      {
        script: { status: 200, contentType: 'text/event-stream', body: 'data: {not json\n\n' },
        expect: /not JSON$/,
      },
      {
        script: { status: 200, contentType: 'application/json', body: '<html>' },
        expect: /did not stream its answer$/,
      },
      {
        script: { text: 'late', delayMs: 5_000 },
        expect: /the model call failed \(504\): the model provider did not answer within 3000 ms$/,
      },
    ];
    for (const c of cases) {
      fake.agentScript.push(c.script);
      const t0 = performance.now();
      const r = await postRun(runner, { userId, message: 'hi' });
      assert.equal(r.body.status, 'error', r.body.text);
      assert.match(r.body.text, c.expect);
      assert.ok(performance.now() - t0 < 10_000);
    }
    // The sandbox is healthy and warm after all of that.
    fake.agentScript.push({ text: 'fine' });
    const ok = await postRun(runner, { userId, message: 'hi' });
    assert.equal(ok.body.status, 'ok');
    assert.equal(ok.body.warm, true);
    assert.equal(ok.body.text, 'fine');
  });

  test('a provider that is down: 502 in the sandbox, the run ends with why', async () => {
    const down = await startRunner({ MODEL_BASE_URL: 'http://127.0.0.1:9/v1', MODEL_DEFAULT: 'm' });
    try {
      const r = await postRun(down, { userId: uniqueId('u'), message: 'hi' });
      assert.equal(r.body.status, 'error');
      assert.match(r.body.text, /^the model call failed \(502\): the model provider could not be reached$/);
    } finally {
      await down.stop();
      await removeLeftovers(down.runnerId);
    }
  });

  test('the step limit ends a runaway tool loop', async () => {
    const before = fake.requests.length;
    for (let i = 0; i < AGENT_MAX_STEPS + 2; i++) fake.agentScript.push(runCodeCall('sh', `echo step ${i}`));
    // Each call holds its prompt (500-900 tokens at 4 bytes a token, growing step by step) and a
    // cap until it settles at the 10 tokens the stand-in reports: 2000 leaves room for all eight.
    const r = await postRun(runner, { userId: uniqueId('u'), message: 'loop', tokenBudget: 2_000 });
    fake.agentScript.length = 0;
    assert.equal(r.body.status, 'ok');
    assert.match(
      r.body.text,
      new RegExp(`\\[stopped: the step limit of ${AGENT_MAX_STEPS} model calls was reached\\]$`),
    );
    assert.equal(agentCalls(before).length, AGENT_MAX_STEPS);
  });

  test("the agent's own model request over the bound ends the run with why; the sandbox stays warm", async () => {
    const userId = uniqueId('u');
    const before = fake.requests.length;
    // A refused write still goes back to the model as the call's arguments: the next request
    // would be larger than a model_request line may be (the runner ended such a run as malformed).
    const content = 'x'.repeat(MODEL_REQUEST_MAX_BYTES + 1024);
    fake.agentScript.push(
      { toolCalls: [{ name: 'write_file', arguments: JSON.stringify({ path: 'big.txt', content }) }] },
      { text: 'never' },
    );
    const r = await postRun(runner, { userId, message: 'write a lot' });
    fake.agentScript.length = 0;
    assert.equal(r.body.status, 'error', r.body.text);
    assert.match(
      r.body.text,
      new RegExp(`a model request may have at most ${MODEL_REQUEST_MAX_BYTES} bytes$`),
    );
    assert.equal(agentCalls(before).length, 1, 'the oversized call was not made');
    fake.agentScript.push({ text: 'fine' });
    const next = await postRun(runner, { userId, message: 'hi' });
    assert.equal(next.body.text, 'fine');
    assert.equal(next.body.warm, true);
  });

  test('read_file reads the start of a file that never ends', async () => {
    const before = fake.requests.length;
    fake.agentScript.push(
      {
        toolCalls: [
          { name: 'run_code', arguments: JSON.stringify({ language: 'sh', code: 'ln -s /dev/zero zeros' }) },
          { name: 'read_file', arguments: JSON.stringify({ path: 'zeros' }) },
        ],
      },
      { text: 'read' },
    );
    const r = await postRun(runner, { userId: uniqueId('u'), message: 'read zeros' });
    assert.equal(r.body.status, 'ok', r.body.text);
    const [, read] = agentCalls(before)[1]!.messages.filter((m) => m.role === 'tool');
    assert.match(read?.content ?? '', /^\0+\n\[cut: \d+ more characters\]$/);
  });

  test('a flood of concurrent model calls and an oversized request are bounded', async () => {
    const before = fake.requests.length;
    fake.agentScript.push(
      runCodeCall(
        'js',
        `(async () => {\n${CHAT}
const big = await chat({ messages: [{ role: 'user', content: 'x'.repeat(300 * 1024) }] });
const flood = await Promise.all(Array.from({ length: 40 }, () => chat({ messages: [] }).then((r) => r.status)));
const n = (s) => flood.filter((x) => x === s).length;
console.log(big.status, n(200), n(429));\n})();`,
      ),
    );
    const r = await postRun(runner, { userId: uniqueId('u'), message: 'flood' });
    assert.equal(
      outputBlocks(r.body.text)[0]?.output,
      '413 9 31',
      "the call budget (10, one the agent's) holds under concurrency",
    );
    assert.equal(fake.requests.length - before, 10);
  });
});

describe('budgets under attack (issue 18)', () => {
  test('20 concurrent calls, streaming or not, spend at most the run budget', async () => {
    const saved = fake.usage;
    // A provider that writes up to each call's cap: every admitted call costs what it reserved.
    // The token budget binds before the call cap (10): admitted without a reservation, nine calls
    // of 215 tokens would spend 1935 of 1000.
    fake.usage = { input: 15, output: 1_000 };
    try {
      for (const stream of [false, true]) {
        const before = fake.requests.length;
        fake.agentScript.push(
          {
            ...runCodeCall(
              'js',
              `(async () => {\n${CHAT}
const calls = Array.from({ length: 20 }, () =>
  chat({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 200, stream: ${stream} }).then(async (r) => (await r.text(), r.status)));
const statuses = await Promise.all(calls);
console.log(statuses.filter((s) => s === 200).length, statuses.filter((s) => s === 429).length);\n})();`,
            ),
            usage: { input: 20, output: 5 },
          },
          { text: 'done', usage: { input: 20, output: 5 } },
        );
        const r = await postRun(runner, { userId: uniqueId('u'), message: 'spend', tokenBudget: 1_000 });
        assert.equal(r.status, 200);
        const u: RunResult['usage'] = r.body.usage;
        const served = fake.requests.slice(before).filter((q) => !(q.body as { tools?: unknown }).tools);
        assert.ok(u.inputTokens + u.outputTokens <= 1_000, `stream ${stream}: ${JSON.stringify(u)}`);
        assert.ok(served.length > 0 && served.length < 20, `stream ${stream}: ${served.length} served`);
        assert.equal(
          u.calls,
          fake.requests.length - before,
          'every call that reached the provider is counted',
        );
        fake.agentScript.length = 0;
      }
    } finally {
      fake.usage = saved;
    }
  });

  test('calls still in flight when the run ends are aborted at the provider and charged', async () => {
    const before = fake.requests.length;
    const closedBefore = fake.closedEarly;
    fake.script.push(...[1, 2, 3].map(() => ({ text: 'late', delayMs: 20_000 })));
    // The code starts three calls in a process of its own, waits until they have been on their
    // way for 1.5 s, and returns: the run ends (the agent's result) while they wait at the provider.
    fake.agentScript.push(
      runCodeCall(
        'sh',
        `rm -f /tmp/sent
node -e '${CHAT.replaceAll("'", `'"'"'`)} for (let i = 0; i < 3; i++) chat({ messages: [] }); setTimeout(() => require("fs").writeFileSync("/tmp/sent", "1"), 1500);' > /dev/null 2>&1 &
for i in $(seq 1 100); do [ -f /tmp/sent ] && break; sleep 0.2; done; echo started`,
      ),
      { text: 'done' },
    );
    const r = await postRun(runner, { userId: uniqueId('u'), message: 'leave them' });
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'ok', r.body.text);
    const seen = fake.requests.length - before;
    assert.equal(seen, 5, "the agent's two calls and the three left in flight");
    assert.equal(r.body.usage.calls, 5, 'all counted');
    assert.equal(fake.closedEarly - closedBefore, 3, 'the three were aborted at the provider');
    // Charged their reservations: each its prompt and a cap of MODEL_DEFAULT_MAX_TOKENS or what was left.
    assert.ok(r.body.usage.inputTokens + r.body.usage.outputTokens > 3 * 1_000, JSON.stringify(r.body.usage));
    fake.script.length = 0;
  });
});

describe('Vertex AI with the VM service account', () => {
  test('no metadata server (no credentials): the model call gets a clear 502 and the run ends with why', async () => {
    const vertex = await startRunner({
      MODEL_PROVIDER: 'vertex',
      VERTEX_PROJECT: 'test-project-1',
      MODEL_BASE_URL: fake.baseUrl,
      MODEL_DEFAULT: 'google/gemini-2.0-flash-001',
      GCE_METADATA_HOST: '127.0.0.1:9',
      METADATA_SERVER_DETECTION: 'ping-only',
    });
    try {
      const before = fake.requests.length;
      const r = await postRun(vertex, { userId: uniqueId('u'), message: 'hi' });
      assert.equal(r.body.status, 'error');
      assert.match(
        r.body.text,
        /the model call failed \(502\): the runner could not get credentials for the model provider$/,
      );
      assert.equal(fake.requests.length, before, 'nothing reached the provider');
      assert.equal(r.body.usage.calls, 0);
    } finally {
      await vertex.stop();
      await removeLeftovers(vertex.runnerId);
    }
  });

  test('no key: the runner gets a Google access token from the metadata server and the sandbox never sees it', async () => {
    const token = `ya29.stand-in-${'t'.repeat(40)}`;
    const metadata = await startFakeMetadata(token);
    const vertex = await startRunner({
      MODEL_PROVIDER: 'vertex',
      VERTEX_PROJECT: 'test-project-1',
      // Vertex's endpoint stands in at the fake provider (the real URL is built from the project).
      MODEL_BASE_URL: fake.baseUrl,
      MODEL_DEFAULT: 'google/gemini-2.0-flash-001',
      GCE_METADATA_HOST: metadata.host,
    });
    fake.requireAuthorization = `Bearer ${token}`;
    try {
      const before = fake.requests.length;
      fake.agentScript.push(
        runCodeCall('sh', 'env | grep -c ya29 || true; grep -rl ya29 /proc/*/environ 2>/dev/null | wc -l'),
        { text: 'through vertex' },
      );
      const r = await postRun(vertex, { userId: uniqueId('u'), message: 'hi' });
      assert.equal(r.body.status, 'ok', r.body.text);
      assert.ok(r.body.text.endsWith('through vertex'));
      assert.equal(outputBlocks(r.body.text)[0]?.output, '0\n0', 'no token in the sandbox');
      assert.deepEqual(
        fake.requests.slice(before).map((q) => [q.authorization, (q.body as { model: string }).model]),
        [
          [`Bearer ${token}`, 'google/gemini-2.0-flash-001'],
          [`Bearer ${token}`, 'google/gemini-2.0-flash-001'],
        ],
      );
      assert.ok(
        metadata.requests.some((q) => q.path.endsWith('/service-accounts/default/token') && q.flavored),
        JSON.stringify(metadata.requests),
      );
      assert.ok(!vertex.logs.some((l) => l.includes(token)), 'the token is in no log line');
      assert.ok(!r.body.text.includes(token));
    } finally {
      fake.requireAuthorization = null;
      await vertex.stop();
      await removeLeftovers(vertex.runnerId);
      await metadata.close();
    }
  });
});
