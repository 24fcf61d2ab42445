import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AGENT_IMAGE,
  docker,
  fence,
  outputBlocks,
  postRun,
  sandboxIds,
  uniqueId,
  waitFor,
} from './helpers/runner-process.ts';
import { suiteRunner, withRunner } from './helpers/with-runner.ts';

const sandboxes = (runnerId: string) => sandboxIds(runnerId);

describe('concurrency limits', () => {
  const runner = suiteRunner({
    MAX_CONCURRENT_RUNS: '2',
    MAX_QUEUED_RUNS: '2',
    MAX_QUEUED_PER_USER: '1',
    WARM_IDLE_TTL_MS: '0', // count only running sandboxes
  });

  test("one user's runs execute one at a time, in order", async () => {
    const userId = uniqueId('u');
    const step = (n: number) =>
      fence(
        'sh',
        `echo "start ${n} $(date +%s%N)" >> order.log; sleep 0.4; echo "end ${n} $(date +%s%N)" >> order.log`,
      );
    const first = postRun(runner, { userId, message: `one\n${step(1)}` });
    await waitFor('first sandbox', async () => (await sandboxes(runner.runnerId)).length === 1);
    const second = postRun(runner, { userId, message: `two\n${step(2)}` });
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    const read = await postRun(runner, { userId, message: `log\n${fence('sh', 'cat order.log')}` });
    const lines = [...read.body.text.matchAll(/^(start|end) (\d) (\d+)$/gm)];
    const events = lines.map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(events, ['start 1', 'end 1', 'start 2', 'end 2']);
    // The second run started only after the first had ended (the sandbox's own clock).
    const at = (i: number) => BigInt(lines[i]![3]!);
    assert.ok(at(2) >= at(1), 'the second run started after the first ended');
  });

  test("a user's queue beyond its bound gets 429 with Retry-After", async () => {
    const userId = uniqueId('u');
    const slow = `slow\n${fence('sh', 'sleep 1.5')}`;
    const running = postRun(runner, { userId, message: slow });
    await waitFor('sandbox', async () => (await sandboxes(runner.runnerId)).length === 1);
    const queued = postRun(runner, { userId, message: 'queued' });
    await sleep(100);
    const rejected = await postRun(runner, { userId, message: 'too many' });
    assert.equal(rejected.status, 429);
    assert.ok(Number(rejected.headers.get('retry-after')) >= 1);
    assert.equal((rejected.body as unknown as { error: { code: string } }).error.code, 'overloaded');
    assert.equal((await running).status, 200);
    assert.equal((await queued).status, 200);
  });

  test('the global cap bounds running sandboxes; beyond the queue, 429', async () => {
    const slow = `slow\n${fence('sh', 'sleep 2')}`;
    let maxSeen = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        maxSeen = Math.max(maxSeen, (await sandboxes(runner.runnerId)).length);
        await sleep(30);
      }
    })();
    const first = [0, 1, 2, 3].map(() => postRun(runner, { userId: uniqueId('u'), message: slow }));
    await waitFor('two sandboxes', async () => (await sandboxes(runner.runnerId)).length === 2);
    await sleep(200);
    const fifth = await postRun(runner, { userId: uniqueId('u'), message: 'one too many' });
    const results = await Promise.all(first);
    polling = false;
    await poller;
    assert.equal(fifth.status, 429);
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.equal(maxSeen, 2, 'never more than MAX_CONCURRENT_RUNS sandboxes at once');
  });
});

describe('cleanup', () => {
  const runner = suiteRunner({
    REAPER_INTERVAL_MS: '1000',
    REAPER_MIN_AGE_MS: '1000',
    WARM_IDLE_TTL_MS: '0',
  });

  test('a client that disconnects mid-run ends the run and frees the sandbox', async () => {
    const ac = new AbortController();
    const pending = fetch(`${runner.url}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${runner.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ userId: uniqueId('u'), conversationId: 'c', message: fence('sh', 'sleep 30') }),
      signal: ac.signal,
    }).catch((err: unknown) => err);
    await waitFor('sandbox', async () => (await sandboxes(runner.runnerId)).length === 1);
    ac.abort();
    assert.ok((await pending) instanceof Error);
    await waitFor('sandbox removal', async () => (await sandboxes(runner.runnerId)).length === 0, 5_000);
    const after = await postRun(runner, { userId: uniqueId('u'), message: 'still there?' });
    assert.equal(after.body.status, 'ok');
  });

  test('the periodic reaper removes an orphaned sandbox', async () => {
    const orphan = await docker.createContainer({
      Image: AGENT_IMAGE,
      Cmd: ['sleep', '300'],
      Labels: {
        'dev.agent-platform.managed-by': 'agent-platform-runner',
        'dev.agent-platform.runner-id': runner.runnerId,
        'dev.agent-platform.kind': 'sandbox',
        'dev.agent-platform.owner': 'nobody',
        'dev.agent-platform.run-id': 'orphan',
      },
      HostConfig: { NetworkMode: 'none' },
    });
    await orphan.start();
    await waitFor('reaper', async () => !(await sandboxes(runner.runnerId)).includes(orphan.id), 10_000);
  });

  test('the workspace is saved only when a run changed it, deletions included', async () => {
    const userId = uniqueId('u');
    const wrote = await postRun(runner, { userId, message: fence('sh', 'echo a > a.txt; echo b > b.txt') });
    assert.equal(wrote.body.status, 'ok', wrote.body.text);
    assert.ok(wrote.body.timings.saveMs! > 0, 'a run that wrote files saves the workspace');
    const plain = await postRun(runner, { userId, message: 'just talk' });
    assert.equal(plain.body.timings.saveMs, 0, 'a run that changed nothing skips the save');
    const removed = await postRun(runner, { userId, message: fence('sh', 'rm a.txt') });
    assert.equal(removed.body.status, 'ok', removed.body.text);
    assert.ok(removed.body.timings.saveMs! > 0, 'a deletion is a change');
    const list = await postRun(runner, { userId, message: fence('sh', 'ls') });
    assert.match(list.body.text, /```output \(sh\)\nb\.txt\n```\n\(exit 0\)/);
  });

  test('deleting a workspace removes its files and its volume', async () => {
    const userId = uniqueId('u');
    await postRun(runner, { userId, message: fence('sh', 'echo keep > kept.txt') });
    const before = await postRun(runner, { userId, message: fence('sh', 'cat kept.txt') });
    assert.match(before.body.text, /^keep$/m);
    const del = await fetch(`${runner.url}/v1/users/${userId}/workspace`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${runner.token}` },
    });
    assert.equal(del.status, 200);
    assert.deepEqual(await del.json(), { deleted: true });
    const vols = await docker.listVolumes({ filters: { label: [`dev.agent-platform.owner=${userId}`] } });
    assert.equal((vols.Volumes ?? []).length, 0);
    const again = await fetch(`${runner.url}/v1/users/${userId}/workspace`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${runner.token}` },
    });
    assert.deepEqual(await again.json(), { deleted: false });
    const afterDel = await postRun(runner, { userId, message: fence('sh', 'cat kept.txt') });
    assert.match(afterDel.body.text, /No such file/);
  });
});

describe('the workspaces disk budget', () => {
  test('a new user is refused with 507 once the runner holds its budget of workspaces, and fits again after a deletion', async () => {
    // Snapshots of at most 1 MiB + 64 inodes x 1 KiB + 1 MiB: a 5 MiB budget holds two.
    const env = {
      WORKSPACE_BYTES: String(1024 * 1024),
      WORKSPACE_INODES: '64',
      WORKSPACES_DISK_BYTES: String(5 * 1024 * 1024),
      WARM_IDLE_TTL_MS: '0',
    };
    await withRunner(env, async (runner) => {
      const [a, b, c] = [uniqueId('a'), uniqueId('b'), uniqueId('c')];
      assert.equal((await postRun(runner, { userId: a, message: 'one' })).body.status, 'ok');
      assert.equal((await postRun(runner, { userId: b, message: 'two' })).body.status, 'ok');
      const full = await postRun(runner, { userId: c, message: 'three' });
      assert.equal(full.status, 507);
      const error = (full.body as unknown as { error: { code: string; message: string } }).error;
      assert.equal(error.code, 'workspaces_full');
      assert.match(error.message, /maximum of 2 workspaces \(WORKSPACES_DISK_BYTES\)/);
      assert.equal((await postRun(runner, { userId: a, message: 'still mine' })).body.status, 'ok');
      const del = await fetch(`${runner.url}/v1/users/${a}/workspace`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${runner.token}` },
      });
      assert.deepEqual(await del.json(), { deleted: true });
      assert.equal((await postRun(runner, { userId: c, message: 'now there is room' })).body.status, 'ok');
    });
  });
});

describe('crash recovery', () => {
  test('a runner killed mid-run leaves nothing behind once restarted', async () => {
    const runnerId = uniqueId('crash');
    await withRunner({ RUNNER_ID: runnerId }, async (first) => {
      void postRun(first, { userId: uniqueId('u'), message: fence('sh', 'sleep 60') }).catch(() => undefined);
      const [orphan] = await waitFor('sandbox', async () => {
        const ids = await sandboxes(runnerId);
        return ids.length === 1 ? ids : null;
      });
      await first.stop('SIGKILL');
      assert.deepEqual(await sandboxes(runnerId), [orphan], 'the killed runner left its sandbox');
      await withRunner({ RUNNER_ID: runnerId }, async (second) => {
        assert.deepEqual(await sandboxes(runnerId), [], 'the start-up reaper removed it');
        const res = await postRun(second, { userId: uniqueId('u'), message: 'hello again' });
        assert.equal(res.body.status, 'ok');
      });
      assert.deepEqual(await sandboxes(runnerId), []);
    });
  });

  test('SIGTERM drains: /readyz and new runs 503 at once, the run in flight finishes, then no sandbox is left', async () => {
    await withRunner({}, async (runner) => {
      const running = postRun(runner, {
        userId: uniqueId('u'),
        message: fence('sh', 'sleep 2; echo finished'),
      });
      await waitFor('sandbox', async () => (await sandboxes(runner.runnerId)).length === 1);
      const exited = runner.stop('SIGTERM');
      await waitFor('draining', async () => (await fetch(`${runner.url}/readyz`)).status === 503);
      const refused = await postRun(runner, { userId: uniqueId('u'), message: 'too late' });
      assert.equal(refused.status, 503);
      const done = await running;
      assert.equal(done.status, 200);
      assert.equal(outputBlocks(done.body.text)[0]?.output, 'finished', 'the run in flight completed');
      await exited;
      assert.deepEqual(await sandboxes(runner.runnerId), []);
    });
  });

  test('a second SIGTERM stops at once: the run in flight is cut off and its sandbox removed', async () => {
    await withRunner({}, async (runner) => {
      void postRun(runner, { userId: uniqueId('u'), message: fence('sh', 'sleep 60') }).catch(
        () => undefined,
      );
      await waitFor('sandbox', async () => (await sandboxes(runner.runnerId)).length === 1);
      runner.child.kill('SIGTERM');
      await waitFor('draining', async () => (await fetch(`${runner.url}/readyz`)).status === 503);
      await runner.stop('SIGTERM');
      assert.deepEqual(await sandboxes(runner.runnerId), []);
    });
  });
});

describe('timings', () => {
  test('each result says where the time went', async () => {
    await withRunner({}, async (runner) => {
      const res = await postRun(runner, { userId: uniqueId('u'), message: 'hello' });
      const t = res.body.timings;
      for (const key of ['queueMs', 'createMs', 'agentMs', 'saveMs'] as const) {
        assert.equal(typeof t[key], 'number', key);
        assert.ok(t[key]! >= 0, key);
      }
      assert.ok(res.body.durationMs >= t.createMs! + t.agentMs!);
    });
  });
});
