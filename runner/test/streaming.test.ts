import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fence, sandboxIds, uniqueId, waitFor, type RunResultBody } from './helpers/runner-process.ts';
import { suiteRunner } from './helpers/with-runner.ts';

const runner = suiteRunner({ OUTPUT_LIMIT_BYTES: String(256 * 1024) });

type Line = { type: 'text'; delta: string } | { type: 'result'; result: RunResultBody } | { type: 'error' };

/** POST /v1/runs with Accept: application/x-ndjson (the runner's streaming mode). */
function stream(body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
  return fetch(`${runner.url}/v1/runs`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${runner.token}`,
      'content-type': 'application/json',
      accept: 'application/x-ndjson',
    },
    body: JSON.stringify({ conversationId: 'c1', ...body }),
    ...(signal ? { signal } : {}),
  });
}

/** Reads NDJSON lines as they arrive. */
async function* lines(res: Response): AsyncGenerator<Line> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.trim()) yield JSON.parse(line) as Line;
    }
  }
}

test('deltas arrive while the run is still going, then the result; the deltas make up its text', async () => {
  const userId = uniqueId('u');
  const message = `stream please\n${fence('sh', 'sleep 1; echo first')}\n${fence('sh', 'echo second')}`;
  const res = await stream({ userId, message });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
  const seen: Line[] = [];
  let sandboxesAtFirstDelta: string[] | null = null;
  for await (const line of lines(res)) {
    if (seen.length === 0) {
      assert.equal(line.type, 'text');
      // The first delta (the test reply line) comes before the code block has finished.
      sandboxesAtFirstDelta = await sandboxIds(runner.runnerId, userId);
    }
    seen.push(line);
  }
  assert.equal(sandboxesAtFirstDelta?.length, 1, 'the sandbox was still running at the first delta');
  const deltas = seen
    .filter((l): l is { type: 'text'; delta: string } => l.type === 'text')
    .map((l) => l.delta);
  const last = seen[seen.length - 1]!;
  assert.equal(last.type, 'result');
  const result = (last as { result: RunResultBody }).result;
  assert.equal(result.status, 'ok');
  assert.ok(deltas.length >= 3, `one delta per piece: ${JSON.stringify(deltas)}`);
  assert.equal(deltas[0], `Test response: ${message}`);
  assert.equal(deltas.join(''), result.text);
  assert.match(result.text, /first[\s\S]*second/);
});

test("a code block's output streams line by line while it runs, then how it ended", async () => {
  const userId = uniqueId('u');
  const code = 'import time\nprint("first")\ntime.sleep(1.5)\nprint("second")\nraise SystemExit(3)';
  const res = await stream({ userId, message: fence('python', code) });
  assert.equal(res.status, 200);
  const arrivals: Array<{ at: number; delta: string }> = [];
  let result: RunResultBody | null = null;
  for await (const line of lines(res)) {
    if (line.type === 'text') arrivals.push({ at: performance.now(), delta: line.delta });
    if (line.type === 'result') result = line.result;
  }
  // After the echo of the message (which holds the code), the output block's own deltas.
  const outputs = arrivals.slice(arrivals.findIndex((a) => a.delta.includes('```output (python)')));
  const first = outputs.find((a) => a.delta.includes('first'));
  const second = outputs.find((a) => a.delta.includes('second'));
  assert.ok(first && second, JSON.stringify(arrivals));
  assert.ok(!first.delta.includes('second'), 'the first line came on its own');
  assert.ok(second.at - first.at >= 1_000, `the second line came ${second.at - first.at} ms after the first`);
  assert.match(result!.text, /```output \(python\)\nfirst\nsecond\n```\n\(exit 3\)$/);
});

test('limits behave as without streaming: a timeout ends the stream with a timeout result', async () => {
  const userId = uniqueId('u');
  const res = await stream({ userId, message: fence('python', 'while True: pass'), timeoutMs: 1500 });
  const all: Line[] = [];
  for await (const line of lines(res)) all.push(line);
  const last = all[all.length - 1] as { type: string; result: RunResultBody };
  assert.equal(last.type, 'result');
  assert.equal(last.result.status, 'timeout');
  await waitFor('sandbox removal', async () => (await sandboxIds(runner.runnerId, userId)).length === 0);
});

test('the output limit applies to a streamed run', async () => {
  const userId = uniqueId('u');
  const event = JSON.stringify({ type: 'text', delta: 'flood' });
  const res = await stream({ userId, message: fence('sh', `yes '${event}' > /proc/$PPID/fd/1`) });
  const all: Line[] = [];
  for await (const line of lines(res)) all.push(line);
  const last = all[all.length - 1] as { type: string; result: RunResultBody };
  assert.equal(last.result.status, 'output_limit');
});

test('a client that disconnects mid-stream ends the run and frees the sandbox', async () => {
  const userId = uniqueId('u');
  const ac = new AbortController();
  const res = await stream({ userId, message: `bye\n${fence('sh', 'sleep 30')}` }, ac.signal);
  const it = lines(res);
  const first = await it.next();
  assert.equal((first.value as Line).type, 'text');
  assert.equal((await sandboxIds(runner.runnerId, userId)).length, 1);
  ac.abort();
  await it.return(undefined).catch(() => undefined);
  await waitFor(
    'sandbox removal',
    async () => (await sandboxIds(runner.runnerId, userId)).length === 0,
    10_000,
  );
  const after = await stream({ userId: uniqueId('u'), message: 'still serving?' });
  const got: Line[] = [];
  for await (const line of lines(after)) got.push(line);
  assert.equal((got[got.length - 1] as { result: RunResultBody }).result.status, 'ok');
});

test('errors before the first line are ordinary JSON answers', async () => {
  const bad = await stream({ userId: 'u', message: '' });
  assert.equal(bad.status, 400);
  assert.match(bad.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(((await bad.json()) as { error: { field: string } }).error.field, 'message');
  const unauth = await fetch(`${runner.url}/v1/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
    body: '{}',
  });
  assert.equal(unauth.status, 401);
});
