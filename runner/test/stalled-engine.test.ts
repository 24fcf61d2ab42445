/**
 * The Docker engine stalls (issue 9): a real proxy between the runner and the real engine holds
 * the runner's calls at one stage at a time (creating, running, saving) or all of them. Every
 * answer must come by the run's timeoutMs plus the budget's sandbox grace, a client that leaves
 * must free its run at once, /readyz must turn 503, and once the engine answers again the runner
 * recovers without a restart and removes what it could not.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TIMEOUT_MARGINS } from '@agent-platform/contract';
import { FreezableDockerProxy } from './helpers/docker-proxy.ts';
import { fence, sandboxIds, uniqueId, waitFor } from './helpers/runner-process.ts';
import { TestRunner } from './helpers/with-runner.ts';

const GRACE = TIMEOUT_MARGINS.sandboxGraceMs;
/** Scheduling and HTTP slack on a busy 2-core machine, on top of a stated bound. */
const SLACK_MS = 2_000;

let proxy: FreezableDockerProxy;
const runner = new TestRunner();

before(async () => {
  proxy = await FreezableDockerProxy.start();
  await runner.start({
    DOCKER_HOST: proxy.dockerHost,
    WARM_IDLE_TTL_MS: '60000',
    REAPER_INTERVAL_MS: '1000',
    REAPER_MIN_AGE_MS: '0',
  });
});

after(async () => {
  proxy?.thaw();
  try {
    await runner.close(); // nothing outlives the runner once the engine answers again
  } finally {
    await proxy?.close();
  }
});

/** POST /v1/runs; resolves with the status, the body and how long the answer took. */
async function timedRun(
  body: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<{ status: number; json: Record<string, unknown>; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${runner.url}/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${runner.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ conversationId: 'c', ...body }),
    ...(signal ? { signal } : {}),
  });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, json, ms: performance.now() - t0 };
}

async function metric(series: string): Promise<number> {
  const res = await fetch(`${runner.url}/metrics`, { headers: { authorization: `Bearer ${runner.token}` } });
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no ${series}`);
  return Number(line.slice(series.length + 1));
}

/** After a thaw: the runner serves a new user again, and nothing but warm sandboxes is left. */
async function recovered(): Promise<void> {
  await waitFor('ready again', async () => {
    const r = await fetch(`${runner.url}/readyz`);
    return r.status === 200;
  });
  const r = await timedRun({ userId: uniqueId('after'), message: 'hello again' });
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'ok');
}

describe('a stalled Docker engine', () => {
  test('turns /readyz to 503 within the readiness deadline and runs to 503; both recover without a restart', async () => {
    assert.equal((await fetch(`${runner.url}/readyz`)).status, 200);
    proxy.freezeAll();
    try {
      await sleep(1_100); // past the reuse of the last (ready) answer
      const t0 = performance.now();
      const res = await fetch(`${runner.url}/readyz`, {
        headers: { authorization: `Bearer ${runner.token}` },
      });
      const ms = performance.now() - t0;
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { reason: string }).reason, /does not answer/);
      assert.ok(ms < 2_000 + SLACK_MS, `/readyz took ${Math.round(ms)} ms`);
      const run = await timedRun({ userId: uniqueId('u'), message: 'hi' });
      assert.equal(run.status, 503);
      assert.equal((run.json.error as { code: string }).code, 'not_ready');
    } finally {
      proxy.thaw();
    }
    await recovered();
  });

  test('while a sandbox is being created: the run answers 503 by timeoutMs + grace; the late container is reaped', async () => {
    proxy.freezeRequests(/^POST \S*\/containers\/create/);
    const userId = uniqueId('u');
    let run;
    try {
      run = await timedRun({ userId, message: 'hi', timeoutMs: 1_000 });
    } finally {
      proxy.thaw();
    }
    assert.equal(run.status, 503);
    assert.ok(run.ms < 1_000 + GRACE + SLACK_MS, `answered after ${Math.round(run.ms)} ms`);
    // The held create reaches the engine now; the reaper removes the container no run owns.
    await waitFor(
      'the late sandbox is reaped',
      async () => (await sandboxIds(runner.runnerId, userId)).length === 0,
    );
    await recovered();
  });

  test('while the run is in its sandbox: it answers `timeout` by timeoutMs + grace; after the thaw nothing is left', async () => {
    const userId = uniqueId('u');
    const pending = timedRun({ userId, message: fence('sh', 'sleep 30'), timeoutMs: 2_000 });
    await sleep(800);
    proxy.freezeAll();
    let run;
    try {
      run = await pending;
    } finally {
      proxy.thaw();
    }
    assert.equal(run.status, 200);
    assert.equal(run.json.status, 'timeout');
    assert.ok(run.ms < 2_000 + GRACE + SLACK_MS, `answered after ${Math.round(run.ms)} ms`);
    await waitFor(
      'the killed sandbox is gone',
      async () => (await sandboxIds(runner.runnerId, userId)).length === 0,
    );
    await recovered();
  });

  test('while the workspace is saved: the run answers by timeoutMs + grace and its sandbox is not kept', async () => {
    proxy.freezeRequests(/^POST \S*\/containers\/[0-9a-f]+\/exec/); // the save is the runner's only exec
    const userId = uniqueId('u');
    let run;
    try {
      run = await timedRun({ userId, message: fence('sh', 'echo x > f.txt'), timeoutMs: 2_000 });
      assert.ok(proxy.stalledCount >= 1, 'the save was held');
    } finally {
      proxy.thaw();
    }
    assert.equal(run.status, 200);
    assert.ok(run.ms < 2_000 + GRACE + SLACK_MS, `answered after ${Math.round(run.ms)} ms`);
    await waitFor(
      'the sandbox whose save failed is gone',
      async () => (await sandboxIds(runner.runnerId, userId)).length === 0,
    );
    await recovered();
  });

  for (const stage of ['creating', 'running', 'saving'] as const) {
    test(`a client that leaves while the engine is stalled (${stage}) frees its run at once`, async () => {
      const userId = uniqueId('u');
      if (stage === 'creating') proxy.freezeRequests(/^POST \S*\/containers\/create/);
      if (stage === 'saving') proxy.freezeRequests(/^POST \S*\/containers\/[0-9a-f]+\/exec/);
      const client = new AbortController();
      const message = stage === 'running' ? fence('sh', 'sleep 30') : fence('sh', 'echo x > f.txt');
      const pending = timedRun({ userId, message, timeoutMs: 20_000 }, client.signal).catch(() => 'aborted');
      try {
        if (stage === 'running') {
          await sleep(800);
          proxy.freezeAll();
        } else {
          await waitFor('held', async () => proxy.stalledCount >= 1);
        }
        assert.equal(await metric('runner_runs_running'), 1);
        client.abort();
        assert.equal(await pending, 'aborted');
        await waitFor('the run is freed', async () => (await metric('runner_runs_running')) === 0, 1_000);
      } finally {
        proxy.thaw();
      }
      await waitFor('nothing of the run is left', async () => {
        const ids = await sandboxIds(runner.runnerId, userId);
        // Aborted while creating, the sandbox arrives healthy and is kept warm for the user.
        return stage === 'creating' ? ids.length <= 1 : ids.length === 0;
      });
      await recovered();
    });
  }
});
