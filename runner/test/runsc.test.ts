import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { docker, fence, postRun, sandboxIds, uniqueId } from './helpers/runner-process.ts';
import { suiteRunner } from './helpers/with-runner.ts';
import { hostPidsLimit } from '../src/sandbox/sandbox-spec.ts';

/**
 * SANDBOX_RUNTIME=runsc: sandboxes under gVisor where the engine has it (.ci/run registers it),
 * and a clear 503 where it does not. Either way the behaviour asserted is the engine's real one.
 */
const info = (await docker.info()) as { Runtimes?: Record<string, unknown> };
const hasRunsc = 'runsc' in (info.Runtimes ?? {});

describe(
  hasRunsc ? 'gVisor sandboxes (runsc registered on this engine)' : 'runsc not registered on this engine',
  () => {
    const runner = suiteRunner({
      SANDBOX_RUNTIME: 'runsc',
      SANDBOX_MEMORY_BYTES: String(256 * 1024 * 1024),
      WARM_IDLE_TTL_MS: '60000',
    });

    if (!hasRunsc) {
      test('readiness and runs answer 503 naming the missing runtime', async () => {
        const ready = await fetch(`${runner.url}/readyz`, {
          headers: { authorization: `Bearer ${runner.token}` },
        });
        assert.equal(ready.status, 503);
        assert.match(((await ready.json()) as { reason: string }).reason, /no runtime "runsc"/);
        const run = await postRun(runner, { userId: uniqueId('u'), message: 'hi' });
        assert.equal(run.status, 503);
      });
      return;
    }

    test('a run executes inside gVisor with the same hardening, and its workspace persists', async () => {
      const userId = uniqueId('u');
      const first = await postRun(runner, {
        userId,
        message: fence(
          'sh',
          'dmesg | head -1; id -u; grep CapEff /proc/self/status; echo kept > k.txt; grep " / " /proc/mounts',
        ),
      });
      assert.equal(first.body.status, 'ok', first.body.text);
      assert.match(first.body.text, /Starting gVisor/);
      assert.match(first.body.text, /^10001$/m);
      assert.match(first.body.text, /CapEff:\s+0000000000000000/);
      assert.match(first.body.text, /^\S+ \/ \S+ ro[, ]/m, 'the root filesystem is mounted read-only');
      const [id] = await sandboxIds(runner.runnerId, userId);
      const c = await docker.getContainer(id!).inspect();
      assert.equal(c.HostConfig.Runtime, 'runsc');
      assert.equal(c.HostConfig.NetworkMode, 'none');
      assert.equal(c.HostConfig.ReadonlyRootfs, true);
      const del = await postRun(runner, { userId, message: fence('sh', 'cat k.txt') });
      assert.match(del.body.text, /^kept$/m);
    });

    test('a warm sandbox under gVisor serves many code runs in a row, each saving the workspace', async () => {
      // Issue 9: the third such run used to fail ("exit code 2") or hang. The sentry's own host
      // threads counted against a pids limit of 128, its clone failed and it panicked.
      const userId = uniqueId('u');
      const runs = 8;
      for (let i = 1; i <= runs; i++) {
        const r = await postRun(runner, {
          userId,
          message: fence('sh', `echo run${i} > f${i}.txt; ls | wc -l`),
        });
        assert.equal(r.status, 200);
        assert.equal(r.body.status, 'ok', `run ${i}: ${r.body.text}`);
        assert.equal(r.body.warm, i > 1, `run ${i} warm`);
        assert.match(r.body.text, new RegExp(`^${i}$`, 'm'), `run ${i} sees the files of the runs before it`);
      }
      const [id] = await sandboxIds(runner.runnerId, userId);
      const c = await docker.getContainer(id!).inspect();
      assert.equal(
        c.HostConfig.PidsLimit,
        hostPidsLimit('runsc', 128),
        'the pids limit leaves gVisor its threads',
      );
    });

    test('a memory hog under gVisor is stopped by the wall-clock timeout', async () => {
      // Measured here (../shared/ENVIRONMENT.md): runsc stalls at the memory limit instead of
      // OOM-killing, so only the host-side timeout ends it; it is reported as a timeout.
      const r = await postRun(runner, {
        userId: uniqueId('u'),
        message: fence('python', 'x = []\nwhile True:\n    x.append(bytearray(10 * 1024 * 1024))'),
        timeoutMs: 4000,
      });
      assert.ok(r.body.status === 'timeout' || r.body.status === 'oom', `${r.body.status}: ${r.body.text}`);
      const after = await postRun(runner, { userId: uniqueId('u'), message: 'still serving' });
      assert.equal(after.body.status, 'ok');
    });
  },
);
