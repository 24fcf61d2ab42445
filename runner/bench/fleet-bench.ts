/**
 * Issue 11's numbers: a cold start that restores a workspace from the Cloud Storage stand-in vs
 * from a Docker volume, the save's cost by workspace size for both, and one runner vs three
 * behind HAProxy (on this 2-core machine three runners share the same cores: the point is the
 * balancer's cost and that nothing breaks, not a speed-up).
 */
import { RUNNER_USER_HEADER } from '@agent-platform/contract';
import { startFakeGcs } from '../test/helpers/fake-gcs.ts';
import { startFleet } from '../test/helpers/fleet.ts';
import { fence, postRun, uniqueId, type RunnerProcess } from '../test/helpers/runner-process.ts';
import { withRunner } from '../test/helpers/with-runner.ts';
import { summarize, type LatencyRow, type ThroughputRow } from './stats.ts';

const MiB = 1024 * 1024;

async function withStore<T>(store: 'volume' | 'gcs', fn: (r: RunnerProcess) => Promise<T>): Promise<T> {
  const gcs = store === 'gcs' ? await startFakeGcs() : null;
  try {
    const env = {
      WARM_IDLE_TTL_MS: '0', // every run a cold start, so every run restores
      ...(gcs
        ? { WORKSPACE_STORE: 'gcs', WORKSPACE_BUCKET: 'bench', WORKSPACE_STORE_ENDPOINT: gcs.endpoint }
        : {}),
    };
    return await withRunner(env, fn);
  } finally {
    await gcs?.close();
  }
}

/** Cold runs of a user whose workspace holds `mib` MiB, and the save of that much. */
export async function storeBench(n: number): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const store of ['volume', 'gcs'] as const) {
    await withStore(store, async (r) => {
      for (const mib of [1, 8, 32]) {
        const userId = uniqueId('store');
        const save: number[] = [];
        for (let i = 0; i < Math.ceil(n / 4); i++) {
          const res = await postRun(r, {
            userId,
            message: fence('sh', `head -c ${mib * MiB} /dev/urandom > blob.bin; echo ${i} > n.txt`),
          });
          if (res.body.status !== 'ok') throw new Error(`save run failed: ${res.body.text}`);
          save.push(res.body.timings.saveMs);
        }
        const cold: number[] = [];
        for (let i = 0; i < Math.ceil(n / 2); i++) {
          const t0 = performance.now();
          const res = await postRun(r, { userId, message: 'hello' });
          if (res.body.status !== 'ok' || res.body.warm) throw new Error('expected a cold run');
          cold.push(performance.now() - t0);
        }
        rows.push({ name: `cold start restoring ${mib} MiB, ${store}`, summary: summarize(cold) });
        rows.push({ name: `save of ${mib} MiB, ${store}`, summary: summarize(save) });
      }
    });
  }
  return rows;
}

/** 50 warm users at concurrency 16 through HAProxy: one runner, then three. */
export async function fleetBench(requests: number): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  for (const count of [1, 3]) {
    const fleet = await startFleet(count);
    try {
      const users = Array.from({ length: 50 }, () => uniqueId('fleet'));
      const call = async (userId: string) => {
        const res = await fetch(`${fleet.url}/v1/runs`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${fleet.token}`,
            'content-type': 'application/json',
            [RUNNER_USER_HEADER]: userId,
          },
          body: JSON.stringify({ userId, conversationId: 'c1', message: 'hello from the benchmark' }),
        });
        const body = (await res.json()) as { status?: string };
        return res.status === 200 && body.status === 'ok';
      };
      for (let i = 0; i < users.length; i += 4) await Promise.all(users.slice(i, i + 4).map(call));
      let next = 0;
      let errors = 0;
      const lat: number[] = [];
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (;;) {
            const i = next++;
            if (i >= requests) return;
            const t = performance.now();
            if (await call(users[i % users.length]!)) lat.push(performance.now() - t);
            else errors++;
          }
        }),
      );
      const s = summarize(lat);
      rows.push({
        setup: `${count} runner${count === 1 ? '' : 's'} behind HAProxy, workspaces in the store`,
        concurrency: 16,
        users: users.length,
        requests,
        runsPerSecond: Math.round((requests - errors) / ((performance.now() - t0) / 1000)),
        p50: s.p50,
        p95: s.p95,
        errors,
      });
    } finally {
      await fleet.stop();
    }
  }
  return rows;
}
