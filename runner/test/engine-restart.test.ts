/**
 * The Docker engine dies and comes back mid-run (issue 9): a real second dockerd of the test's
 * own (helpers/private-engine.ts) is restarted while a run is in its sandbox. The run must end
 * with a clear status, and the runner must recover without a restart of its own: ready again,
 * its warm pool rebuilt, its OOM watch reconnected, nothing left behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PrivateEngine } from './helpers/private-engine.ts';
import { fence, GVISOR, postRun, uniqueId, waitFor } from './helpers/runner-process.ts';
import { TestRunner } from './helpers/with-runner.ts';

let engine: PrivateEngine;
const runner = new TestRunner();

before(async () => {
  engine = await PrivateEngine.start();
  await runner.start(
    {
      DOCKER_HOST: engine.dockerHost,
      WARM_IDLE_TTL_MS: '60000',
      REAPER_INTERVAL_MS: '1000',
      REAPER_MIN_AGE_MS: '0',
      SANDBOX_MEMORY_BYTES: String(256 * 1024 * 1024),
    },
    engine.docker,
  );
});

after(async () => {
  try {
    await runner.close();
    // Not only what carries the runner's id: nothing at all is left on the test's own engine.
    const left = engine ? await engine.docker.listContainers({ all: true }) : [];
    assert.deepEqual(
      left.map((c) => c.Names),
      [],
      'the runner removed every sandbox before it exited',
    );
  } finally {
    await engine?.stop();
  }
});

const sandboxesOf = async (userId: string) =>
  engine.docker.listContainers({ all: true, filters: { label: [`dev.agent-platform.owner=${userId}`] } });

describe('the Docker engine restarted mid-run', () => {
  test('the run ends with a clear status; the runner recovers without a restart and rebuilds its warm pool', async () => {
    const warmUser = uniqueId('warm');
    const first = await postRun(runner, { userId: warmUser, message: fence('sh', 'echo kept > kept.txt') });
    assert.equal(first.body.status, 'ok');
    const busyUser = uniqueId('busy');
    const t0 = performance.now();
    const running = postRun(runner, {
      userId: busyUser,
      message: fence('sh', 'sleep 20; echo never'),
      timeoutMs: 25_000,
    });
    await sleep(1_000);
    await engine.restart();
    const cut = await running;
    const ms = performance.now() - t0;
    assert.equal(cut.status, 200);
    assert.equal(
      cut.body.status,
      'error',
      `a run whose engine died is an error: ${JSON.stringify(cut.body)}`,
    );
    assert.match(cut.body.text, /ended without a result|did not answer/);
    assert.ok(ms < 20_000, `it ended when the engine died, not at its timeout (${Math.round(ms)} ms)`);

    // Ready again without a restart of the runner.
    await waitFor('ready again', async () => (await fetch(`${runner.url}/readyz`)).status === 200, 20_000);
    // The warm user's sandbox died with the engine: the next run is a fresh (cold) one with the
    // saved workspace, the one after it is warm again.
    const again = await postRun(runner, { userId: warmUser, message: fence('sh', 'cat kept.txt') });
    assert.equal(again.body.status, 'ok');
    assert.equal(again.body.warm, false);
    assert.match(again.body.text, /kept/);
    const warmAgain = await postRun(runner, { userId: warmUser, message: 'and again' });
    assert.equal(warmAgain.body.warm, true, 'the warm pool is rebuilt');
    // The busy user's dead sandbox is removed (by the run's cleanup or the reaper).
    await waitFor(
      'the dead sandbox is removed',
      async () => (await sandboxesOf(busyUser)).length === 0,
      10_000,
    );
    const busyAgain = await postRun(runner, { userId: busyUser, message: 'hello' });
    assert.equal(busyAgain.body.status, 'ok');
  });

  test('after the restart the OOM watch is reconnected: a memory hog reports oom', async () => {
    const userId = uniqueId('oom');
    const hog = await postRun(runner, {
      userId,
      message: fence('python', 'x = []\nwhile True: x.append(bytearray(16 * 1024 * 1024))'),
      timeoutMs: 15_000,
    });
    // gVisor sometimes stalls a memory hog at its limit instead (see hostile.test.ts): then the
    // wall clock ends it.
    const allowed = GVISOR ? ['oom', 'timeout'] : ['oom'];
    assert.ok(allowed.includes(hog.body.status), `status ${hog.body.status}: ${hog.body.text}`);
  });
});
