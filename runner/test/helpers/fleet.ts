import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUNNER_USER_HEADER } from '@agent-platform/contract';
import { startFakeGcs, type FakeGcs } from './fake-gcs.ts';
import { uniqueId } from './runner-process.ts';
import { TestRunner } from './with-runner.ts';

/**
 * A fleet of runners on one machine, with real parts: N runner processes (each its own RUNNER_ID
 * and port, all on the one local Docker engine, workspaces in the Cloud Storage stand-in), and
 * HAProxy from Debian in front of them hashing consistently on the user header, as Google's load
 * balancer does for the deployed fleet (a consistent-hash backend service on that header), with
 * a health check on /readyz (the managed instance group's autohealing check) so a dead runner's
 * users move to the others.
 */
export interface Fleet {
  /** HAProxy's address: what the functions call. */
  url: string;
  token: string;
  gcs: FakeGcs;
  runners: TestRunner[];
  /** Starts one more runner and reloads HAProxy with it. */
  addRunner(): Promise<TestRunner>;
  /**
   * Stops everything; each runner is closed as TestRunner.close does (nothing left behind, what
   * a runner the test killed left is removed), and the first failure is thrown at the end.
   */
  stop(): Promise<void>;
}

export const BUCKET = 'agent-fleet-workspaces';

/** The runner a user's requests reach through the balancer (GET /healthz names it); null: none. */
export async function servedBy(url: string, userId: string): Promise<string | null> {
  try {
    const res = await fetch(`${url}/healthz`, { headers: { [RUNNER_USER_HEADER]: userId } });
    if (!res.ok) return null;
    return ((await res.json()) as { runnerId?: string }).runnerId ?? null;
  } catch {
    return null;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** HAProxy's configuration: `balance hdr(...)` with `hash-type consistent`, /readyz checks. */
export function haproxyConfig(port: number, servers: Array<{ name: string; port: number }>): string {
  return [
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 120s',
    '  timeout server 120s',
    '  retries 2',
    '  option redispatch',
    'frontend runners',
    `  bind 127.0.0.1:${port}`,
    '  default_backend fleet',
    'backend fleet',
    `  balance hdr(${RUNNER_USER_HEADER})`,
    '  hash-type consistent',
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    ...servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check inter 300 fall 2 rise 1`),
    '',
  ].join('\n');
}

export async function startFleet(
  count: number,
  env: Record<string, string> = {},
  haproxyBin = process.env.HAPROXY ?? 'haproxy',
): Promise<Fleet> {
  const gcs = await startFakeGcs();
  const token = env.RUNNER_TOKEN ?? uniqueId('fleet-token-0123456789');
  const dir = mkdtempSync(join(tmpdir(), 'agent-fleet-'));
  const runners: TestRunner[] = [];
  const start = () =>
    TestRunner.start({
      RUNNER_TOKEN: token,
      WORKSPACE_STORE: 'gcs',
      WORKSPACE_BUCKET: BUCKET,
      WORKSPACE_STORE_ENDPOINT: gcs.endpoint,
      ...env,
      RUNNER_ID: uniqueId('fleet'),
    });
  const port = await freePort();
  let haproxy: ChildProcess | null = null;
  let generation = 0;
  const launch = async () => {
    const servers = runners.map((r, i) => ({ name: `runner${i + 1}`, port: Number(new URL(r.url).port) }));
    const cfg = join(dir, `haproxy-${++generation}.cfg`);
    writeFileSync(cfg, haproxyConfig(port, servers));
    const old = haproxy;
    // -sf: the new process takes the listener and the old one finishes what it serves.
    const args = ['-db', '-f', cfg, ...(old?.pid ? ['-sf', String(old.pid)] : [])];
    const child = spawn(haproxyBin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const errors: string[] = [];
    child.stderr!.on('data', (c: Buffer) => errors.push(c.toString()));
    haproxy = child;
    // Ready when every runner is reached through the new process (its checks passed).
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`haproxy exited: ${errors.join('')}`);
      const seen = new Set(
        await Promise.all(
          Array.from({ length: 16 * runners.length }, (_, i) =>
            servedBy(`http://127.0.0.1:${port}`, `probe-${i}`),
          ),
        ),
      );
      if (runners.every((r) => seen.has(r.runnerId))) break;
      if (Date.now() > deadline) throw new Error(`haproxy did not come up: ${errors.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    if (old && old.exitCode === null)
      await Promise.race([once(old, 'exit'), new Promise((r) => setTimeout(r, 3_000))]);
  };
  const fleet: Fleet = {
    url: `http://127.0.0.1:${port}`,
    token,
    gcs,
    runners,
    async addRunner() {
      const r = await start();
      runners.push(r);
      await launch();
      return r;
    },
    async stop() {
      const h = haproxy as ChildProcess | null;
      if (h && h.exitCode === null) {
        const exited = once(h, 'exit');
        h.kill('SIGTERM');
        await exited;
      }
      const failures: unknown[] = [];
      for (const r of runners) await r.close().catch((err: unknown) => failures.push(err));
      await gcs.close();
      rmSync(dir, { recursive: true, force: true });
      if (failures.length > 0) throw failures[0];
    },
  };
  try {
    for (let i = 0; i < count; i++) runners.push(await start());
    await launch();
  } catch (err) {
    // What did start is stopped and removed; the start's failure is the one to report.
    await fleet.stop().catch(() => undefined);
    throw err;
  }
  return fleet;
}
