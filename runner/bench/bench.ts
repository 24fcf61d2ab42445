/**
 * npm run bench: cold-run latency through the runner API versus the old system's approach
 * (`docker run --rm` per request, the same agent image and request), measured in one run.
 * Options: --runs N (default 30), --quick (10 runs). Writes bench-results/runner-cold.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import {
  AGENT_IMAGE,
  postRun,
  removeLeftovers,
  startRunner,
  uniqueId,
} from '../test/helpers/runner-process.ts';

const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : args.includes('--quick') ? 10 : 30;
const WARMUP = 2;

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: round(percentile(s, 50)),
    p95: round(percentile(s, 95)),
    min: round(s[0]!),
    max: round(s[s.length - 1]!),
  };
}
const round = (x: number) => Math.round(x * 10) / 10;

/** The old system: one `docker run --rm` per request, request on stdin, reply on stdout. */
function dockerRunOnce(message: string): Promise<number> {
  const request = JSON.stringify({
    protocol: 1,
    runId: uniqueId('r'),
    userId: 'bench-old',
    conversationId: 'c',
    message,
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
      const ms = performance.now() - t0;
      if (code !== 0 || !out.includes('"type":"result"'))
        reject(new Error(`docker run failed (${code}): ${out}`));
      else resolve(ms);
    });
    child.stdin.end(request + '\n');
  });
}

async function main(): Promise<void> {
  const message = 'hello from the benchmark';
  const runner = await startRunner();
  const users: string[] = [];
  try {
    // Cold: every request from a new user (a fresh sandbox and workspace).
    const cold: number[] = [];
    const breakdown: Record<string, number[]> = {};
    for (let i = 0; i < WARMUP + RUNS; i++) {
      const userId = uniqueId('bench');
      users.push(userId);
      const t0 = performance.now();
      const res = await postRun(runner, { userId, message });
      const ms = performance.now() - t0;
      if (res.status !== 200 || res.body.status !== 'ok')
        throw new Error(`run failed: ${JSON.stringify(res.body)}`);
      if (i < WARMUP) continue;
      cold.push(ms);
      for (const [k, v] of Object.entries(res.body.timings)) (breakdown[k] ??= []).push(v);
    }
    // Old approach, same image and request.
    const old: number[] = [];
    for (let i = 0; i < WARMUP + RUNS; i++) {
      const ms = await dockerRunOnce(message);
      if (i >= WARMUP) old.push(ms);
    }
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
      image: AGENT_IMAGE,
      runs: RUNS,
      runnerCold: summary(cold),
      runnerColdBreakdownP50: Object.fromEntries(
        Object.entries(breakdown).map(([k, v]) => [k, summary(v).p50]),
      ),
      oldDockerRunRm: summary(old),
      ratioP50: 0,
    };
    result.ratioP50 = round(result.oldDockerRunRm.p50 / result.runnerCold.p50);
    mkdirSync('bench-results', { recursive: true });
    writeFileSync('bench-results/runner-cold.json', JSON.stringify(result, null, 2) + '\n');
    const row = (name: string, s: ReturnType<typeof summary>) =>
      `| ${name} | ${s.p50} | ${s.p95} | ${s.min} | ${s.max} |`;
    console.log(`\nRunner benchmark, ${RUNS} runs each, ${result.machine.cpus} cores, ${result.date}\n`);
    console.log('| scenario (ms) | p50 | p95 | min | max |');
    console.log('| --- | --- | --- | --- | --- |');
    console.log(row('runner API, cold (new user, fresh sandbox)', result.runnerCold));
    console.log(row('old: docker run --rm per request', result.oldDockerRunRm));
    console.log(`\ncold p50 breakdown (ms): ${JSON.stringify(result.runnerColdBreakdownP50)}`);
    console.log(`old p50 / runner cold p50 = ${result.ratioP50}x`);
  } finally {
    await runner.stop();
    await removeLeftovers(runner.runnerId);
  }
}

await main();
