import assert from 'node:assert/strict';
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
/** Under gVisor (runsc) some things are seen or contained differently; each test says how. */
export const GVISOR = SANDBOX_TEST_RUNTIME.startsWith('runsc');

export interface RunnerProcess {
  url: string;
  token: string;
  runnerId: string;
  child: ChildProcess;
  logs: string[];
  /**
   * SIGTERM (or the given signal), then waits for the exit; a process that has not exited
   * within STOP_TIMEOUT_MS is killed and the stop throws.
   */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * How long a stopped runner may take to exit. Its drain with no run in flight saves and removes
 * its warm sandboxes (a few seconds under gVisor on a busy machine); a run in flight ends within
 * its own timeout, which no test sets above 30 s.
 */
export const STOP_TIMEOUT_MS = 60_000;

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
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // not left running behind a failed start
      reject(new Error(`runner did not start:\n${logs.join('\n')}`));
    }, 20_000);
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
      const late = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(late);
      if (signal !== 'SIGKILL' && child.signalCode === 'SIGKILL') {
        throw new Error(`the runner did not exit within ${STOP_TIMEOUT_MS} ms of ${signal} and was killed`);
      }
    },
  };
}

/**
 * Containers and volumes on `engine` carrying this runner id (what a test must leave at zero),
 * optionally only those that also carry every label in `labels` ("key=value").
 */
export async function leftovers(
  runnerId: string,
  engine: Docker = docker,
  labels: string[] = [],
): Promise<{ containers: string[]; volumes: string[] }> {
  const label = [`dev.agent-platform.runner-id=${runnerId}`, ...labels];
  const containers = await engine.listContainers({ all: true, filters: { label } });
  const volumes = await engine.listVolumes({ filters: { label } });
  return { containers: containers.map((c) => c.Id), volumes: (volumes.Volumes ?? []).map((v) => v.Name) };
}

/**
 * Removes everything a test runner created on `engine` (containers first, then volumes). Errors
 * are ignored: TestRunner.close lists again afterwards and fails on what is left.
 */
export async function removeLeftovers(runnerId: string, engine: Docker = docker): Promise<void> {
  const left = await leftovers(runnerId, engine);
  await Promise.all(
    left.containers.map((id) =>
      engine
        .getContainer(id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
  await Promise.all(
    left.volumes.map((name) =>
      engine
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

/** A run that must be answered with 200 (whatever its status); its result. */
export async function mustAnswer(
  r: RunnerProcess,
  userId: string,
  message: string,
  timeoutMs = 15_000,
): Promise<RunResultBody> {
  const res = await postRun(r, { userId, message, timeoutMs });
  assert.equal(res.status, 200, `POST /v1/runs answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * Runs one sh block that must complete (status ok), stderr merged into stdout so that the order
 * is kept; the result and the block.
 */
export async function sh(
  r: RunnerProcess,
  userId: string,
  script: string,
): Promise<{ body: RunResultBody; block: OutputBlock }> {
  const body = await mustAnswer(r, userId, fence('sh', `exec 2>&1\n${script}`));
  assert.equal(body.status, 'ok', body.text);
  const blocks = outputBlocks(body.text);
  assert.equal(blocks.length, 1, body.text);
  return { body, block: blocks[0]! };
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
