import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  docker,
  fence,
  postRun,
  sandboxIds,
  uniqueId,
  waitFor,
  type RunnerProcess,
  SANDBOX_TEST_RUNTIME,
  GVISOR,
} from './helpers/runner-process.ts';
import { assertForkBombEnded, FORK_BOMB, forkBombTimeoutMs } from './helpers/fork-bomb.ts';
import { suiteRunner, withRunner } from './helpers/with-runner.ts';
import { hostPidsLimit } from '../src/sandbox/sandbox-spec.ts';

const containersOf = (runner: RunnerProcess, userId: string) => sandboxIds(runner.runnerId, userId);
const allSandboxes = (runner: RunnerProcess) => sandboxIds(runner.runnerId);
const waitUntil = (what: string, probe: () => Promise<boolean>, ms = 10_000) => waitFor(what, probe, ms);

describe('warm sandboxes', () => {
  // Closing it asserts that stopping the runner removes its warm sandboxes.
  const runner = suiteRunner({
    WARM_IDLE_TTL_MS: '60000',
    WARM_MAX_SANDBOXES: '8',
    SANDBOX_MEMORY_BYTES: String(256 * 1024 * 1024),
    SANDBOX_PIDS_LIMIT: '64',
    MAX_QUEUED_PER_USER: '8',
  });

  test("the same user's next run reuses the sandbox; files and processes carry over", async () => {
    const userId = uniqueId('u');
    const first = await postRun(runner, { userId, message: fence('sh', 'echo hello > note.txt') });
    assert.equal(first.body.warm, false);
    const [id] = await containersOf(runner, userId);
    assert.ok(id);
    const second = await postRun(runner, { userId, message: fence('sh', 'cat note.txt; id -u') });
    assert.equal(second.body.warm, true);
    assert.equal(second.body.timings.createMs, 0);
    assert.match(second.body.text, /hello\n10001/);
    assert.deepEqual(await containersOf(runner, userId), [id], 'still the one container');
  });

  test("a background process flooding the agent's stdout or stderr between runs gets its sandbox killed", async () => {
    // Issue 12: output outside a request was scanned without a byte cap (and stderr not counted).
    for (const fd of [1, 2]) {
      const userId = uniqueId('u');
      const armed = await postRun(runner, {
        userId,
        message: fence('sh', `( sleep 1; yes flood > /proc/$PPID/fd/${fd} ) >/dev/null 2>&1 &\necho armed`),
      });
      assert.equal(armed.body.status, 'ok', armed.body.text);
      const [id] = await containersOf(runner, userId);
      assert.ok(id);
      await waitUntil(`the sandbox flooding fd ${fd} is killed`, async () => {
        const info = await docker.getContainer(id).inspect();
        return !info.State.Running;
      });
      const other = await postRun(runner, { userId: uniqueId('u'), message: 'still served' });
      assert.equal(other.body.status, 'ok');
      const next = await postRun(runner, { userId, message: 'after the flood' });
      assert.equal(next.body.status, 'ok', next.body.text);
      assert.equal(next.body.warm, false, 'the killed sandbox was replaced');
      assert.ok(!(await containersOf(runner, userId)).includes(id), 'the killed sandbox was removed');
    }
  });

  test('a warm sandbox keeps every hardening property of a cold one', async () => {
    const userId = uniqueId('u');
    await postRun(runner, { userId, message: 'warm up' });
    const [id] = await containersOf(runner, userId);
    const info = await docker.getContainer(id!).inspect();
    const hc = info.HostConfig;
    assert.equal(info.Config.User, '10001:10001');
    assert.equal(hc.ReadonlyRootfs, true);
    assert.deepEqual(hc.CapDrop, ['ALL']);
    assert.deepEqual(hc.SecurityOpt, ['no-new-privileges:true']);
    assert.equal(hc.NetworkMode, 'none');
    assert.equal(hc.Privileged, false);
    assert.equal(hc.Memory, 256 * 1024 * 1024);
    assert.equal(hc.MemorySwap, 256 * 1024 * 1024);
    assert.equal(hc.PidsLimit, hostPidsLimit(SANDBOX_TEST_RUNTIME, 64));
    const probe = await postRun(runner, {
      userId,
      message: fence(
        'sh',
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /etc/x 2>&1; cat /proc/net/dev | tail -n +3 | cut -d: -f1",
      ),
    });
    assert.equal(probe.body.warm, true);
    assert.match(probe.body.text, /CapEff:\s+0000000000000000/);
    if (GVISOR) {
      // gVisor reports no NoNewPrivs line and refuses the write with EACCES (hardening.test.ts).
      assert.match(probe.body.text, /touch: cannot touch '\/etc\/x': Permission denied/);
    } else {
      assert.match(probe.body.text, /NoNewPrivs:\s+1/);
      assert.match(probe.body.text, /Read-only file system/);
    }
    assert.match(probe.body.text, /^\s*lo\n```/m);
  });

  test('warm reuse never crosses users', async () => {
    const a = uniqueId('a');
    const b = uniqueId('b');
    await postRun(runner, {
      userId: a,
      message: fence('sh', 'echo secret-of-a > a.txt; (sleep 300 >/dev/null 2>&1 &) ; echo started'),
    });
    const [aId] = await containersOf(runner, a);
    const fromB = await postRun(runner, {
      userId: b,
      message: fence(
        'sh',
        "ls -A /workspace; cat /workspace/a.txt 2>&1; cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
      ),
    });
    assert.equal(fromB.body.warm, false, "b's first run is cold: a's warm sandbox is not handed to b");
    assert.ok(!fromB.body.text.includes('secret-of-a'));
    assert.ok(!fromB.body.text.includes('sleep 300'), "a's background process is not visible to b");
    const [bId] = await containersOf(runner, b);
    assert.notEqual(aId, bId);
    const againA = await postRun(runner, {
      userId: a,
      message: fence('sh', "cat a.txt; cat /proc/[0-9]*/cmdline | tr '\\0' ' '"),
    });
    assert.equal(againA.body.warm, true);
    assert.match(againA.body.text, /secret-of-a/);
    assert.match(againA.body.text, /sleep 300/, "a's own background process lives on in a's sandbox");
  });

  test('a fork bomb in a warm sandbox is contained and the sandbox replaced', async (t) => {
    const userId = uniqueId('u');
    await postRun(runner, { userId, message: 'warm up' });
    const [before] = await containersOf(runner, userId);
    const timeoutMs = forkBombTimeoutMs(3000);
    const bomb = await postRun(runner, { userId, message: FORK_BOMB, timeoutMs });
    assert.equal(bomb.body.warm, true);
    t.diagnostic(`the bomb's run ended after ${bomb.body.timings.agentMs} ms (${bomb.body.status})`);
    assertForkBombEnded(bomb.body, timeoutMs);
    assert.deepEqual(await containersOf(runner, userId), [], 'the bombed sandbox is gone');
    const next = await postRun(runner, { userId, message: 'still there?' });
    assert.equal(next.body.status, 'ok');
    assert.equal(next.body.warm, false, 'a fresh sandbox replaced it');
    const [after] = await containersOf(runner, userId);
    assert.notEqual(after, before);
  });

  test('a memory hog in a warm sandbox reports oom and the sandbox is replaced', async () => {
    const userId = uniqueId('u');
    await postRun(runner, { userId, message: 'warm up' });
    const hog = await postRun(runner, {
      userId,
      message: fence('python', 'x = []\nwhile True:\n    x.append(bytearray(10 * 1024 * 1024))'),
    });
    assert.equal(hog.body.warm, true);
    assert.equal(hog.body.status, 'oom', hog.body.text);
    const next = await postRun(runner, { userId, message: 'after the hog' });
    assert.equal(next.body.status, 'ok');
    assert.equal(next.body.warm, false);
  });

  test('many concurrent messages of one user are served one at a time, in arrival order', async () => {
    const userId = uniqueId('u');
    await postRun(runner, { userId, message: 'warm up' });
    const step = (n: number) =>
      fence('sh', `echo "start ${n}" >> order.log; sleep 0.1; echo "end ${n}" >> order.log`);
    const pending: Array<Promise<unknown>> = [];
    for (let n = 1; n <= 5; n++) {
      pending.push(postRun(runner, { userId, message: step(n) }));
      await sleep(30); // arrival order = n
    }
    const results = (await Promise.all(pending)) as Array<{ body: { status: string; warm: boolean } }>;
    assert.deepEqual(
      results.map((r) => r.body.status),
      ['ok', 'ok', 'ok', 'ok', 'ok'],
    );
    assert.ok(results.every((r) => r.body.warm));
    const log = await postRun(runner, { userId, message: fence('sh', 'cat order.log') });
    const events = [...log.body.text.matchAll(/^(start|end) (\d)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(
      events,
      [1, 2, 3, 4, 5].flatMap((n) => [`start ${n}`, `end ${n}`]),
    );
  });

  test('an idle warm sandbox uses no CPU', async () => {
    const userId = uniqueId('u');
    await postRun(runner, { userId, message: 'warm up' });
    const [id] = await containersOf(runner, userId);
    const c = docker.getContainer(id!);
    const usage = async () =>
      ((await c.stats({ stream: false })) as { cpu_stats: { cpu_usage: { total_usage: number } } }).cpu_stats
        .cpu_usage.total_usage;
    const u0 = await usage();
    await sleep(1000);
    const u1 = await usage();
    // Well under 1% of one CPU over a second (an agent polling anything would show up here).
    assert.ok(u1 - u0 < 10_000_000, `idle CPU ${(u1 - u0) / 1e6} ms in 1 s`);
  });

  test('background work of an idle sandbox is frozen until its next run (issue 12: warm sandboxes kept processes busy)', async () => {
    // Closing it asserts that stopping the runner removes frozen sandboxes too.
    await withRunner({ WARM_IDLE_TTL_MS: '60000', WARM_FREEZE_AFTER_MS: '300' }, async (other) => {
      const userId = uniqueId('u');
      const spin = await postRun(other, {
        userId,
        message: fence('sh', '( while :; do :; done ) >/dev/null 2>&1 &\necho spinning'),
      });
      assert.equal(spin.body.status, 'ok');
      const [id] = await containersOf(other, userId);
      const c = docker.getContainer(id!);
      await waitUntil('the idle sandbox is paused', async () => (await c.inspect()).State.Paused === true);
      const usage = async () =>
        ((await c.stats({ stream: false })) as { cpu_stats: { cpu_usage: { total_usage: number } } })
          .cpu_stats.cpu_usage.total_usage;
      const u0 = await usage();
      await sleep(1000);
      const u1 = await usage();
      // Unfrozen, the loop would take a whole CPU (1000 ms in 1 s).
      assert.ok(u1 - u0 < 10_000_000, `a frozen sandbox used ${(u1 - u0) / 1e6} ms of CPU in 1 s`);
      const next = await postRun(other, {
        userId,
        message: fence('sh', 'echo thawed'),
      });
      assert.equal(next.body.status, 'ok');
      assert.equal(next.body.warm, true, 'the frozen sandbox was thawed and reused');
      assert.match(next.body.text, /```output \(sh\)\nthawed\n```\n\(exit 0\)/);
      assert.equal((await c.inspect()).State.Paused, false);
    });
  });

  test('a restarted runner removes the frozen sandboxes its killed predecessor left', async () => {
    const runnerId = uniqueId('frozen');
    await withRunner({ RUNNER_ID: runnerId, WARM_FREEZE_AFTER_MS: '0' }, async (first) => {
      const userId = uniqueId('u');
      await postRun(first, { userId, message: 'warm' });
      const [id] = await containersOf(first, userId);
      await waitUntil('paused', async () => (await docker.getContainer(id!).inspect()).State.Paused === true);
      await first.stop('SIGKILL');
      await withRunner({ RUNNER_ID: runnerId }, async (second) => {
        assert.deepEqual(await allSandboxes(second), [], 'the startup reap unpaused and removed it');
      });
    });
  });

  test('while host memory is below HOST_MEMORY_RESERVE_BYTES, idle sandboxes are removed', async () => {
    // A reserve no host has (1 TiB): every idle sandbox goes, through the real MemAvailable check.
    const env = { WARM_IDLE_TTL_MS: '60000', HOST_MEMORY_RESERVE_BYTES: String(1024 ** 4) };
    await withRunner(env, async (other) => {
      const userId = uniqueId('u');
      const first = await postRun(other, { userId, message: 'hello' });
      assert.equal(first.body.status, 'ok');
      await waitUntil(
        'the idle sandbox is removed',
        async () => (await containersOf(other, userId)).length === 0,
      );
      assert.ok(other.logs.some((l) => l.includes('host memory below the reserve')));
      const second = await postRun(other, { userId, message: 'hello' });
      assert.equal(second.body.status, 'ok');
      assert.equal(second.body.warm, false);
    });
  });

  test('pre-warming a user makes their first message warm', async () => {
    const userId = uniqueId('u');
    const warm = await fetch(`${runner.url}/v1/users/${userId}/warm`, {
      method: 'POST',
      headers: { authorization: `Bearer ${runner.token}` },
    });
    assert.equal(warm.status, 200);
    assert.deepEqual(await warm.json(), { warm: true, created: true });
    const again = await fetch(`${runner.url}/v1/users/${userId}/warm`, {
      method: 'POST',
      headers: { authorization: `Bearer ${runner.token}` },
    });
    assert.deepEqual(await again.json(), { warm: true, created: false });
    const first = await postRun(runner, { userId, message: 'hi' });
    assert.equal(first.body.warm, true);
    const unauth = await fetch(`${runner.url}/v1/users/${userId}/warm`, { method: 'POST' });
    assert.equal(unauth.status, 401);
  });

  test('deleting the workspace removes the warm sandbox too', async () => {
    const userId = uniqueId('u');
    await postRun(runner, { userId, message: fence('sh', 'echo x > x.txt') });
    assert.equal((await containersOf(runner, userId)).length, 1);
    const del = await fetch(`${runner.url}/v1/users/${userId}/workspace`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${runner.token}` },
    });
    assert.deepEqual(await del.json(), { deleted: true });
    assert.deepEqual(await containersOf(runner, userId), []);
    const next = await postRun(runner, { userId, message: fence('sh', 'cat x.txt 2>&1') });
    assert.equal(next.body.warm, false);
    assert.match(next.body.text, /No such file/);
  });
});

describe('warm limits', () => {
  test('idle expiry removes the sandbox; its files survive in the workspace', async () => {
    await withRunner({ WARM_IDLE_TTL_MS: '1000' }, async (runner) => {
      const userId = uniqueId('u');
      await postRun(runner, { userId, message: fence('sh', 'echo kept > kept.txt') });
      assert.equal((await containersOf(runner, userId)).length, 1);
      await waitUntil('idle expiry', async () => (await containersOf(runner, userId)).length === 0, 5_000);
      const back = await postRun(runner, { userId, message: fence('sh', 'cat kept.txt') });
      assert.equal(back.body.warm, false);
      assert.match(back.body.text, /^kept$/m);
    });
  });

  test('beyond WARM_MAX_SANDBOXES the least recently used is evicted', async () => {
    await withRunner({ WARM_MAX_SANDBOXES: '2' }, async (runner) => {
      const [a, b, c] = [uniqueId('a'), uniqueId('b'), uniqueId('c')];
      await postRun(runner, { userId: a, message: 'a' });
      await postRun(runner, { userId: b, message: 'b' });
      await postRun(runner, { userId: a, message: 'a again' }); // b is now the least recently used
      await postRun(runner, { userId: c, message: 'c' });
      await waitUntil('eviction', async () => (await allSandboxes(runner)).length === 2);
      assert.equal((await containersOf(runner, b)).length, 0, 'b was evicted');
      assert.equal((await containersOf(runner, a)).length, 1);
      assert.equal((await containersOf(runner, c)).length, 1);
      assert.equal((await postRun(runner, { userId: a, message: 'a' })).body.warm, true);
      assert.equal((await postRun(runner, { userId: b, message: 'b' })).body.warm, false);
    });
  });

  test('after a crash the reaper removes warm sandboxes', async () => {
    const runnerId = uniqueId('crash');
    await withRunner({ RUNNER_ID: runnerId }, async (first) => {
      await postRun(first, { userId: uniqueId('u'), message: 'warm' });
      await postRun(first, { userId: uniqueId('u'), message: 'warm' });
      await first.stop('SIGKILL');
      assert.equal((await allSandboxes(first)).length, 2, 'the killed runner left its warm sandboxes');
      await withRunner({ RUNNER_ID: runnerId }, async (second) => {
        assert.deepEqual(await allSandboxes(second), []);
      });
    });
  });
});
