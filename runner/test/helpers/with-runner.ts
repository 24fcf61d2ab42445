import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import type Docker from 'dockerode';
import {
  docker as hostDocker,
  leftovers,
  removeLeftovers,
  startRunner,
  type RunnerProcess,
} from './runner-process.ts';

/** Options of a test runner on top of runner-process.ts's common ones (loopback, free port...). */
export type RunnerEnv = Record<string, string>;

/** Workspace volumes are user data a runner keeps on purpose when it stops (volume store only). */
const WORKSPACE_LABEL = 'dev.agent-platform.kind=workspace';

/**
 * A real runner process owned by a test, with one way out: close() stops it, asserts that it
 * left nothing but its users' workspaces, removes those too, and asserts that nothing is left.
 * It goes wherever a RunnerProcess goes (postRun and the like).
 */
export class TestRunner implements RunnerProcess {
  #process: RunnerProcess | null = null;
  #env: RunnerEnv = {};
  #engine: Docker = hostDocker;

  /** Starts a runner with `env`; `engine` is the Docker engine its DOCKER_HOST points at. */
  static async start(env: RunnerEnv = {}, engine: Docker = hostDocker): Promise<TestRunner> {
    const runner = new TestRunner();
    await runner.start(env, engine);
    return runner;
  }

  /** Starts the process (once; restart() starts it again). */
  async start(env: RunnerEnv = {}, engine: Docker = hostDocker): Promise<void> {
    assert.equal(this.#process, null, 'this test runner is started already');
    this.#engine = engine;
    this.#process = await startRunner(env);
    // With the id and token it got, so that a restart is the same runner to the test.
    this.#env = { ...env, RUNNER_ID: this.#process.runnerId, RUNNER_TOKEN: this.#process.token };
  }

  get #current(): RunnerProcess {
    assert.ok(this.#process, 'the test runner is not started (used outside its suite?)');
    return this.#process;
  }
  get url(): string {
    return this.#current.url;
  }
  get token(): string {
    return this.#current.token;
  }
  get runnerId(): string {
    return this.#current.runnerId;
  }
  get child(): RunnerProcess['child'] {
    return this.#current.child;
  }
  get logs(): string[] {
    return this.#current.logs;
  }

  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return this.#current.stop(signal);
  }

  /** Stops the runner (a drain, checked like close()) and starts it again as the same runner. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#assertLeftNothing();
    this.#process = null;
    await this.start(this.#env, this.#engine);
  }

  /**
   * Stops the runner unless it has exited and asserts that it left no container and no volume
   * but workspace volumes of the volume store (unless the test SIGKILLed it: then what it left is
   * the test's to assert); then removes everything of its id, workspaces included, and asserts
   * that nothing is left. The removal happens whatever a check found.
   */
  async close(): Promise<void> {
    if (!this.#process) return; // its start failed: it created nothing
    const failures: unknown[] = [];
    await this.stop().catch((err: unknown) => failures.push(err));
    await this.#assertLeftNothing().catch((err: unknown) => failures.push(err));
    await removeAllOf(this.runnerId, this.#engine).catch((err: unknown) => failures.push(err));
    if (failures.length > 0) throw failures[0];
  }

  async #assertLeftNothing(): Promise<void> {
    const { child, runnerId, logs } = this.#current;
    if (child.signalCode === 'SIGKILL') return;
    await assertLeftNothing(runnerId, {
      engine: this.#engine,
      keepsWorkspaces: this.#env.WORKSPACE_STORE !== 'gcs',
      context: `it ended with ${child.signalCode ? `signal ${child.signalCode}` : `exit code ${child.exitCode}`}; its last lines:\n${logs.slice(-20).join('\n')}`,
    });
  }
}

/**
 * Asserts that a runner that has stopped by itself left no container and no volume on `engine`,
 * but its users' workspace volumes when `keepsWorkspaces` (the volume store keeps them on
 * purpose; with the Cloud Storage store there is none to keep).
 */
export async function assertLeftNothing(
  runnerId: string,
  { engine = hostDocker, keepsWorkspaces = true, context = '' } = {},
): Promise<void> {
  const all = await leftovers(runnerId, engine);
  const kept = new Set(keepsWorkspaces ? (await leftovers(runnerId, engine, [WORKSPACE_LABEL])).volumes : []);
  assert.deepEqual(
    { containers: all.containers, volumes: all.volumes.filter((v) => !kept.has(v)) },
    { containers: [], volumes: [] },
    `runner ${runnerId} left containers or volumes behind. ${context}`,
  );
}

/** Removes every container and volume of the runner id, and asserts that none is left. */
export async function removeAllOf(runnerId: string, engine: Docker = hostDocker): Promise<void> {
  await removeLeftovers(runnerId, engine);
  const left = await leftovers(runnerId, engine);
  assert.deepEqual(
    left,
    { containers: [], volumes: [] },
    `runner ${runnerId}'s leftovers could not be removed`,
  );
}

/**
 * Runs `fn` with a runner of its own, and closes that runner (TestRunner.close) whatever `fn`
 * does. When `fn` fails, its failure is the one reported and a cleanup failure is logged.
 */
export async function withRunner<T>(env: RunnerEnv, fn: (runner: TestRunner) => Promise<T>): Promise<T> {
  const runner = await TestRunner.start(env);
  let result: T;
  try {
    result = await fn(runner);
  } catch (err) {
    await runner
      .close()
      .catch((cleanup: unknown) => console.error('the runner cleanup failed too:', cleanup));
    throw err;
  }
  await runner.close();
  return result;
}

/**
 * The runner of the enclosing suite (or file): started in a `before` hook with `env` (a function
 * when the options exist only once earlier hooks ran), closed in an `after` hook. At a file's
 * top level node:test starts every `before` hook at once (inside a describe, one after the
 * other): a hook there that needs the runner starts a TestRunner itself.
 */
export function suiteRunner(env: RunnerEnv | (() => RunnerEnv) = {}): TestRunner {
  const runner = new TestRunner();
  before(() => runner.start(typeof env === 'function' ? env() : env));
  after(() => runner.close());
  return runner;
}
