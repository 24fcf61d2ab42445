/**
 * npm run bench [-- --quick | --long]: latency and throughput of the runner API (cold, warm, and
 * the old system's `docker run --rm` per request on the same image, in the same run), a
 * concurrency sweep over warm sandboxes, the memory of an idle warm sandbox, and, when the
 * emulator stack is up (scripts/bench.sh starts it), sendMessage end to end; the model gateway's
 * overhead per call and the time to first token (model-bench.ts).
 * Writes bench-results/results.json and results.md, and runner/bench/benchmark.svg.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import {
  AGENT_IMAGE,
  docker,
  postRun,
  uniqueId,
  type RunnerProcess,
} from '../test/helpers/runner-process.ts';
import { withRunner } from '../test/helpers/with-runner.ts';
import { fleetBench, storeBench } from './fleet-bench.ts';
import { gatewayBench, runnerTtftBench, ttftBench } from './model-bench.ts';
import { renderMarkdown, renderSvg, summarize, type LatencyRow, type ThroughputRow } from './stats.ts';

const args = new Set(process.argv.slice(2));
const MODE = args.has('--quick') ? 'quick' : args.has('--long') ? 'long' : 'default';
const N = { quick: 15, default: 40, long: 150 }[MODE];
const SWEEP_REQUESTS = { quick: 100, default: 300, long: 1000 }[MODE];
const USERS = 50;
const CONCURRENCY = [1, 4, 16, 64];
const USER_SWEEP = [4, 16, 50];
const MESSAGE = 'hello from the benchmark';

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const v = await fn();
  return [performance.now() - t0, v];
}

async function mustRun(
  r: RunnerProcess,
  userId: string,
): Promise<{ warm: boolean; timings: Record<string, number> }> {
  const res = await postRun(r, { userId, message: MESSAGE });
  if (res.status !== 200 || res.body.status !== 'ok')
    throw new Error(`run failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** `n` runs of new users (each a cold start): latencies and the sandboxes' create times. */
async function coldRuns(r: RunnerProcess, n: number): Promise<{ ms: number[]; createMs: number[] }> {
  const ms: number[] = [];
  const createMs: number[] = [];
  for (let i = 0; i < n; i++) {
    const [t, body] = await timed(() => mustRun(r, uniqueId('cold')));
    ms.push(t);
    createMs.push(body.timings.createMs ?? 0);
  }
  return { ms, createMs };
}

/** One user's first run, then `n` more in its warm sandbox: their latencies, and the user. */
async function warmRuns(r: RunnerProcess, n: number): Promise<{ ms: number[]; userId: string }> {
  const userId = uniqueId('warm');
  await mustRun(r, userId);
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const [t, body] = await timed(() => mustRun(r, userId));
    if (!body.warm) throw new Error('expected a warm run');
    ms.push(t);
  }
  return { ms, userId };
}

/** The old system: one `docker run --rm` per request, request on stdin, reply on stdout. */
function dockerRunOnce(): Promise<number> {
  const request = JSON.stringify({
    protocol: 1,
    runId: uniqueId('r'),
    userId: 'bench-old',
    conversationId: 'c',
    message: MESSAGE,
    history: [],
  });
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('docker', ['run', '--rm', '-i', '--network', 'none', AGENT_IMAGE], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0 || !out.includes('"type":"result"'))
        reject(new Error(`docker run failed (${code}): ${out}`));
      else resolve(performance.now() - t0);
    });
    child.stdin.end(request + '\n');
  });
}

async function sweep(
  r: RunnerProcess,
  users: string[],
  concurrency: number,
  requests: number,
): Promise<ThroughputRow> {
  let next = 0;
  let errors = 0;
  const lat: number[] = [];
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= requests) return;
      const userId = users[i % users.length]!;
      const [ms, res] = await timed(() => postRun(r, { userId, message: MESSAGE }));
      if (res.status !== 200 || res.body.status !== 'ok') errors++;
      else lat.push(ms);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const s = summarize(lat);
  return {
    concurrency,
    users: users.length,
    requests,
    runsPerSecond: Math.round((requests - errors) / seconds),
    p50: s.p50,
    p95: s.p95,
    errors,
  };
}

async function idleMemoryMiB(r: RunnerProcess, userId: string): Promise<number> {
  const [c] = await docker.listContainers({
    filters: { label: [`dev.agent-platform.runner-id=${r.runnerId}`, `dev.agent-platform.owner=${userId}`] },
  });
  if (!c) return NaN;
  const stats = (await docker.getContainer(c.Id).stats({ stream: false })) as {
    memory_stats: { usage?: number; stats?: { cache?: number; total_inactive_file?: number } };
  };
  const m = stats.memory_stats;
  const cache = m.stats?.total_inactive_file ?? m.stats?.cache ?? 0;
  return Math.round((((m.usage ?? 0) - cache) / 2 ** 20) * 10) / 10;
}

/** sendMessage through the Functions emulator (Auth token, Firestore writes), if it is up. */
async function stackBench(): Promise<LatencyRow[]> {
  if (!process.env.BENCH_STACK) return [];
  const { newUser } = await import('../../functions/test/helpers/stack.ts');
  const u = await newUser();
  try {
    const send = u.call<Record<string, unknown>, { conversationId: string; status: string }>('sendMessage');
    const warm = u.call('warmSandbox');
    await warm({});
    const first = await send({ message: MESSAGE });
    const conversationId = first.data.conversationId;
    const samples: number[] = [];
    for (let i = 0; i < N; i++) {
      const [ms, r] = await timed(() => send({ conversationId, message: MESSAGE }));
      if (r.data.status !== 'ok') throw new Error('sendMessage failed');
      samples.push(ms);
    }
    return [{ name: 'sendMessage, warm, via emulators', summary: summarize(samples) }];
  } finally {
    await u.close();
  }
}

/** Cold and warm latency and idle memory under another runtime (its own runner). */
async function runtimeBench(runtime: string): Promise<{ latency: LatencyRow[]; idleMiB: number }> {
  return withRunner({ SANDBOX_RUNTIME: runtime, WARM_IDLE_TTL_MS: '600000' }, async (r) => {
    await mustRun(r, uniqueId('warmup'));
    const cold = await coldRuns(r, Math.ceil(N / 2));
    const warm = await warmRuns(r, N);
    const idleMiB = await idleMemoryMiB(r, warm.userId);
    return {
      latency: [
        { name: `runner API, warm, same user, ${runtime}`, summary: summarize(warm.ms) },
        { name: `runner API, cold, new user, ${runtime}`, summary: summarize(cold.ms) },
      ],
      idleMiB,
    };
  });
}

/**
 * Issue 9's target: 50 active users at concurrency 16 on the runner's defaults (host-sized
 * concurrency and warm cap; SANDBOX_RUNTIME=auto, so runsc where the engine has it).
 */
async function defaultsRow(runtime: string): Promise<ThroughputRow> {
  return withRunner({ SANDBOX_RUNTIME: runtime }, async (r) => {
    const users = Array.from({ length: USERS }, () => uniqueId('dflt'));
    for (let i = 0; i < users.length; i += 4)
      await Promise.all(users.slice(i, i + 4).map((u) => mustRun(r, u)));
    const row = await sweep(r, users, 16, SWEEP_REQUESTS);
    return { ...row, setup: `defaults, SANDBOX_RUNTIME=${runtime}` };
  });
}

async function main(): Promise<void> {
  // The model gateway first: its time-to-first-token runner takes RUNNER_BENCH_PORT, then the
  // main runner below does.
  const engineInfo = (await docker.info()) as { Runtimes?: Record<string, unknown> };
  const runscPresent = 'runsc' in (engineInfo.Runtimes ?? {});
  console.log('[bench] model gateway: overhead per call, time to first token');
  const modelRows: LatencyRow[] = [
    ...(await gatewayBench('runc', N)),
    ...(runscPresent ? (await gatewayBench('runsc', N)).slice(1) : []),
    ...(await runnerTtftBench(N)),
    ...(await ttftBench(N)),
  ];
  console.log(
    '[bench] workspaces: restore and save, volume vs the Cloud Storage stand-in; a fleet behind HAProxy',
  );
  const storeRows = await storeBench(N);
  const fleetRows = await fleetBench(SWEEP_REQUESTS);
  const env = {
    ...(process.env.RUNNER_BENCH_PORT
      ? { PORT: process.env.RUNNER_BENCH_PORT, RUNNER_TOKEN: process.env.RUNNER_BENCH_TOKEN ?? '' }
      : {}),
    MAX_CONCURRENT_RUNS: '16',
    MAX_QUEUED_RUNS: '256',
    MAX_QUEUED_PER_USER: '8',
    WARM_MAX_SANDBOXES: '64',
    WARM_IDLE_TTL_MS: '600000',
  };
  await withRunner(env, async (runner) => {
    console.log(`[bench] mode ${MODE}: ${N} samples per scenario, ${SWEEP_REQUESTS} requests per sweep step`);
    // Warm-up (image cache, first volume).
    await mustRun(runner, uniqueId('warmup'));
    const { ms: cold, createMs: coldCreate } = await coldRuns(runner, N);
    const { ms: warm, userId: warmUser } = await warmRuns(runner, N);
    const memoryMiB = await idleMemoryMiB(runner, warmUser);
    console.log('[bench] old approach: docker run --rm per request');
    await dockerRunOnce();
    const old: number[] = [];
    for (let i = 0; i < N; i++) old.push(await dockerRunOnce());

    console.log(`[bench] concurrency sweep over ${USERS} warm users`);
    const users = Array.from({ length: USERS }, () => uniqueId('sweep'));
    for (let i = 0; i < users.length; i += 8)
      await Promise.all(users.slice(i, i + 8).map((u) => mustRun(runner, u)));
    const throughput: ThroughputRow[] = [];
    for (const c of CONCURRENCY) throughput.push(await sweep(runner, users, c, SWEEP_REQUESTS));
    // Users at a fixed concurrency: fewer users means more requests wait for their user's turn.
    const byUsers: ThroughputRow[] = [];
    for (const n of USER_SWEEP) byUsers.push(await sweep(runner, users.slice(0, n), 16, SWEEP_REQUESTS));

    const stack = await stackBench();
    const info = (await docker.info()) as { Runtimes?: Record<string, unknown> };
    const hasRunsc = 'runsc' in (info.Runtimes ?? {});
    console.log(
      `[bench] the defaults: 50 users at concurrency 16 (auto${hasRunsc ? ', runsc' : ''}; then runc)`,
    );
    const defaults = [await defaultsRow('auto'), ...(hasRunsc ? [await defaultsRow('runc')] : [])];
    const gvisor = hasRunsc ? await runtimeBench('runsc') : null;
    const latency: LatencyRow[] = [
      { name: 'runner API, warm, same user', summary: summarize(warm) },
      ...stack,
      { name: 'runner API, cold, new user', summary: summarize(cold) },
      ...(gvisor?.latency ?? []),
      { name: 'old system, docker run --rm', summary: summarize(old) },
    ];
    const result = {
      date: new Date().toISOString(),
      mode: MODE,
      machine: { cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
      image: AGENT_IMAGE,
      latency,
      coldCreateMsP50: summarize(coldCreate).p50,
      throughput,
      throughputByUsersAtConcurrency16: byUsers,
      throughputOnDefaults: defaults,
      idleWarmSandboxMemoryMiB: memoryMiB,
      idleWarmSandboxMemoryMiBRunsc: gvisor?.idleMiB ?? null,
      modelGateway: modelRows,
      workspaceStore: storeRows,
      fleet: fleetRows,
      ratios: {
        oldP50OverWarmP50: Math.round((summarize(old).p50 / summarize(warm).p50) * 10) / 10,
        oldP50OverColdP50: Math.round((summarize(old).p50 / summarize(cold).p50) * 10) / 10,
      },
    };
    mkdirSync('bench-results', { recursive: true });
    writeFileSync('bench-results/results.json', JSON.stringify(result, null, 2) + '\n');
    const md = renderMarkdown(
      [...latency, ...modelRows, ...storeRows],
      [...throughput, ...byUsers, ...defaults, ...fleetRows],
    );
    writeFileSync('bench-results/results.md', md);
    const title = `Agent platform benchmark, ${result.date.slice(0, 10)}, ${result.machine.cpus} cores / ${result.machine.memoryGiB} GiB`;
    writeFileSync('runner/bench/benchmark.svg', renderSvg(title, latency, throughput));
    console.log(`\n${title}\n\n${md}`);
    console.log(
      `idle warm sandbox memory: ${memoryMiB} MiB (runsc: ${gvisor?.idleMiB ?? 'n/a'}); cold create p50 ${result.coldCreateMsP50} ms`,
    );
    console.log(
      `old p50 / warm p50 = ${result.ratios.oldP50OverWarmP50}x; old p50 / cold p50 = ${result.ratios.oldP50OverColdP50}x`,
    );
  });
  // withRunner failed the bench had the runner left a sandbox behind.
  console.log('[bench] cleaned up: no container left after the runner stopped, workspaces removed');
}

await main();
