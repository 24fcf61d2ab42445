import type { RunRequestInput, RunResult } from '@agent-platform/contract';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';

export const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
export const AGENT_IMAGE = process.env.AGENT_IMAGE ?? 'agent-platform/agent-default:latest';
export const docker = new Docker();
/**
 * The runtime every sandbox test runs under: scripts/test.sh runs the sandbox suites once with
 * runc and once with runsc (gVisor). Tests read it; none sets it.
 */
export const SANDBOX_TEST_RUNTIME = process.env.SANDBOX_TEST_RUNTIME ?? 'runc';

export interface RunnerProcess {
  url: string;
  token: string;
  runnerId: string;
  child: ChildProcess;
  logs: string[];
  /** SIGTERM (or the given signal), then wait for exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** Starts the real runner (node runner/src/main.ts) on a free loopback port. */
export async function startRunner(env: Record<string, string> = {}): Promise<RunnerProcess> {
  const token = env.RUNNER_TOKEN ?? randomBytes(24).toString('hex');
  const runnerId = env.RUNNER_ID ?? uniqueId('test');
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
      HOST: '127.0.0.1',
      PORT: '0',
      RUNNER_TOKEN: token,
      RUNNER_ID: runnerId,
      AGENT_IMAGE,
      SANDBOX_RUNTIME: SANDBOX_TEST_RUNTIME,
      LOG_REQUESTS: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let buffered = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`runner did not start:\n${logs.join('\n')}`)), 20_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        logs.push(line);
        try {
          const parsed = JSON.parse(line) as { message?: string; port?: number };
          if (parsed.message?.startsWith('runner listening') && typeof parsed.port === 'number') {
            clearTimeout(timer);
            resolve(parsed.port);
          }
        } catch {
          // not JSON: keep it in logs
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`runner exited with ${code}:\n${logs.join('\n')}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    runnerId,
    child,
    logs,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}

/** Containers and volumes carrying this runner id (what a test must leave at zero). */
export async function leftovers(runnerId: string): Promise<{ containers: string[]; volumes: string[] }> {
  const label = `dev.agent-platform.runner-id=${runnerId}`;
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
  const volumes = await docker.listVolumes({ filters: { label: [label] } });
  return { containers: containers.map((c) => c.Id), volumes: (volumes.Volumes ?? []).map((v) => v.Name) };
}

/** Removes everything a test runner created (containers first, then volumes). */
export async function removeLeftovers(runnerId: string): Promise<void> {
  const left = await leftovers(runnerId);
  await Promise.all(
    left.containers.map((id) =>
      docker
        .getContainer(id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
  await Promise.all(
    left.volumes.map((name) =>
      docker
        .getVolume(name)
        .remove()
        .catch(() => undefined),
    ),
  );
}

/** A run request (the contract's), its conversationId optional: the helper fills one in. */
export type RunBody = Omit<RunRequestInput, 'conversationId'> & { conversationId?: string };

/** The body of a 200 from POST /v1/runs (the contract's RunResult). */
export type RunResultBody = RunResult;

/** POST /v1/runs with the shared secret; returns status and parsed JSON. */
export async function postRun(
  r: RunnerProcess,
  body: RunBody,
): Promise<{ status: number; body: RunResultBody; headers: Headers }> {
  const res = await fetch(`${r.url}/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${r.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ conversationId: 'conv-1', ...body }),
  });
  return { status: res.status, body: (await res.json()) as RunResultBody, headers: res.headers };
}

/** Fenced code block helper for messages. */
export function fence(lang: string, code: string): string {
  return '```' + lang + '\n' + code + '\n```';
}

export interface OutputBlock {
  lang: string;
  /** `exit <code>` or `signal <name>`, as the agent reports it. */
  status: string;
  output: string;
}

/** The ```output blocks the default agent appends to its reply, in order. */
export function outputBlocks(text: string): OutputBlock[] {
  const blocks: OutputBlock[] = [];
  // The agent streams a block as ```output (<lang>)\n<output lines>```\n(<status>).
  const re = /```output \(([^)]+)\)\n([\s\S]*?)```\n\(([^)\n]+)\)/g;
  for (const m of text.matchAll(re)) {
    blocks.push({ lang: m[1] ?? '', status: m[3] ?? '', output: (m[2] ?? '').replace(/\n$/, '') });
  }
  return blocks;
}

/** Ids of a runner's sandbox containers (running or not), optionally of one user only. */
export async function sandboxIds(runnerId: string, owner?: string): Promise<string[]> {
  const label = [`dev.agent-platform.runner-id=${runnerId}`, 'dev.agent-platform.kind=sandbox'];
  if (owner) label.push(`dev.agent-platform.owner=${owner}`);
  const list = await docker.listContainers({ all: true, filters: { label } });
  return list.map((c) => c.Id);
}

/** Polls `probe` every 50 ms until it returns something truthy; throws after `ms`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
