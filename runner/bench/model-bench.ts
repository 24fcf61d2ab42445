/**
 * The model gateway's benchmark (issue 10), against the stand-in provider (no model can be
 * fetched here; runner/test/helpers/fake-model.ts answers at once, so what is measured is ours):
 *
 * - gateway overhead per model call: the same non-streaming chat completion timed from code in a
 *   sandbox (agent loopback server, stdout line, runner, provider, stdin lines, HTTP answer)
 *   and from this process straight to the provider; the difference of the p50s is the gateway's.
 * - time to first token through the streaming callable (sendMessage(...).stream() on the
 *   emulators, a warm sandbox, the reference LLM agent): from the call to the first text chunk,
 *   next to the provider's own time to its first byte from here.
 */
import { startFakeModel, type FakeModel } from '../test/helpers/fake-model.ts';
import { outputBlocks, postRun, uniqueId, type RunnerProcess } from '../test/helpers/runner-process.ts';
import { withRunner, type RunnerEnv, type TestRunner } from '../test/helpers/with-runner.ts';
import { summarize, type LatencyRow } from './stats.ts';

const BODY = JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: 'hi' }] });

/** The stand-in provider and a runner whose gateway calls it (warm sandboxes kept), both closed after `fn`. */
async function withModelRunner<T>(
  env: RunnerEnv,
  fn: (r: TestRunner, fake: FakeModel) => Promise<T>,
): Promise<T> {
  const fake = await startFakeModel();
  try {
    const modelEnv = {
      MODEL_BASE_URL: fake.baseUrl,
      MODEL_API_KEY: 'sk-bench',
      MODEL_DEFAULT: 'bench-model',
    };
    return await withRunner({ ...modelEnv, WARM_IDLE_TTL_MS: '600000', ...env }, (r) => fn(r, fake));
  } finally {
    await fake.close();
  }
}

async function direct(fake: FakeModel, n: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n + 5; i++) {
    const t0 = performance.now();
    const res = await fetch(`${fake.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: BODY,
    });
    await res.json();
    if (i >= 5) samples.push(performance.now() - t0);
  }
  return samples;
}

/** n timed calls from a js block in the sandbox, run by the LLM agent's run_code tool. */
async function inSandbox(r: RunnerProcess, fake: FakeModel, n: number): Promise<number[]> {
  const code = `(async () => {
const ms = [];
for (let i = 0; i < ${n + 5}; i++) {
  const t0 = performance.now();
  const res = await fetch(process.env.OPENAI_BASE_URL + '/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(BODY)} });
  await res.json();
  if (i >= 5) ms.push(performance.now() - t0);
}
console.log(ms.map((x) => x.toFixed(3)).join(','));
})();`;
  const userId = uniqueId('gw');
  fake.agentScript.push({ text: 'warm' });
  await postRun(r, { userId, message: 'warm up', tokenBudget: 1_000_000 });
  fake.agentScript.push(
    { toolCalls: [{ name: 'run_code', arguments: JSON.stringify({ language: 'js', code }) }] },
    { text: 'done' },
  );
  const res = await postRun(r, { userId, message: 'measure', tokenBudget: 1_000_000 });
  const out = outputBlocks(res.body.text)[0]?.output ?? '';
  const samples = out.split(',').map(Number);
  if (samples.length !== n || samples.some((x) => !Number.isFinite(x))) {
    throw new Error(`the sandbox's measurement failed: ${res.body.text.slice(-500)}`);
  }
  return samples;
}

/** Gateway overhead per call under one runtime. */
export async function gatewayBench(runtime: string, n: number): Promise<LatencyRow[]> {
  const env = { SANDBOX_RUNTIME: runtime, MODEL_CALLS_PER_RUN: String(n + 20) };
  return withModelRunner(env, async (r, fake) => {
    const d = summarize(await direct(fake, n));
    const g = summarize(await inSandbox(r, fake, n));
    const overhead = { ...g, p50: Math.round((g.p50 - d.p50) * 100) / 100 };
    return [
      { name: `model call, provider direct (from the host)`, summary: d },
      { name: `model call, through the gateway, ${runtime}`, summary: g },
      {
        name: `model call, gateway overhead (p50 difference), ${runtime}`,
        summary: { ...overhead, p95: overhead.p50, p99: overhead.p50, min: overhead.p50, max: overhead.p50 },
      },
    ];
  });
}

/** Time to the first text line of the runner's NDJSON stream (warm sandbox, LLM agent). */
export async function runnerTtftBench(n: number): Promise<LatencyRow[]> {
  return withModelRunner({}, async (r, fake) => {
    fake.answer = 'first token then the rest of the answer';
    const userId = uniqueId('ttft');
    await postRun(r, { userId, message: 'warm up' });
    const ttft: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const res = await fetch(`${r.url}/v1/runs`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${r.token}`,
          'content-type': 'application/json',
          accept: 'application/x-ndjson',
        },
        body: JSON.stringify({ userId, conversationId: 'c1', message: `message ${i}` }),
      });
      const reader = res.body!.getReader();
      let text = '';
      let first = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
        if (!first && text.includes('"type":"text"')) first = performance.now() - t0;
      }
      if (!first || !text.includes('"status":"ok"')) throw new Error(`the run failed: ${text.slice(-300)}`);
      ttft.push(first);
    }
    return [{ name: 'first token, runner NDJSON stream (LLM agent, warm)', summary: summarize(ttft) }];
  });
}

/**
 * Time to first token through the streaming callable, with a runner of its own on the port the
 * emulated functions call (RUNNER_BENCH_PORT), configured with the stand-in provider.
 */
export async function ttftBench(n: number): Promise<LatencyRow[]> {
  if (!process.env.BENCH_STACK || !process.env.RUNNER_BENCH_PORT) return [];
  const env = { PORT: process.env.RUNNER_BENCH_PORT, RUNNER_TOKEN: process.env.RUNNER_BENCH_TOKEN ?? '' };
  return withModelRunner(env, async (_runner, fake) => {
    fake.answer = 'first token then the rest of the answer';
    const { newUser } = await import('../../functions/test/helpers/stack.ts');
    const u = await newUser();
    try {
      const send = u.call<Record<string, unknown>, { conversationId: string; status: string }>('sendMessage');
      await u.call('warmSandbox')({});
      const first = await send({ message: 'hello' });
      const conversationId = first.data.conversationId;
      const ttft: number[] = [];
      const total: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const { stream, data } = await send.stream({ conversationId, message: `message ${i}` });
        let firstAt = 0;
        for await (const chunk of stream) {
          if (!firstAt && (chunk as { type?: string }).type === 'text') firstAt = performance.now();
        }
        const result = await data;
        if (result.status !== 'ok' || !firstAt) throw new Error('the streamed send failed');
        ttft.push(firstAt - t0);
        total.push(performance.now() - t0);
      }
      // The provider's own time to its first byte, from here (streaming).
      const own: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const res = await fetch(`${fake.baseUrl}/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'bench-model', stream: true, messages: [] }),
        });
        const reader = res.body!.getReader();
        await reader.read();
        own.push(performance.now() - t0);
        await reader.cancel();
      }
      return [
        {
          name: 'first token, streaming sendMessage via emulators (LLM agent, warm)',
          summary: summarize(ttft),
        },
        {
          name: 'whole reply, streaming sendMessage via emulators (LLM agent, warm)',
          summary: summarize(total),
        },
        { name: "first token, the stand-in provider's own (from the host)", summary: summarize(own) },
      ];
    } finally {
      await u.close();
    }
  });
}
