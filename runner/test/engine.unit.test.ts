/**
 * The sandbox engine, the run service and the gate against the in-memory backend: no Docker,
 * fast and deterministic (small TTLs; waits are polls bounded well under a second; behaviour, not
 * timing).
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import { AGENT_PROTOCOL_VERSION, NO_MODEL_USAGE, type AgentTool } from '@agent-platform/contract';
import { RunGate, type GateLimits } from '../src/concurrency/run-gate.ts';
import { loadConfig } from '../src/config.ts';
import { ClientGoneError, DeadlineError, OverloadedError, WorkspaceBusyError } from '../src/errors.ts';
import { Logger } from '../src/logs.ts';
import { ModelGateway } from '../src/models/model-gateway.ts';
import { RunService, WORKSPACE_CONFLICT_NOTE } from '../src/runs/run-service.ts';
import { SandboxEngine, type EngineOptions } from '../src/sandbox/engine.ts';
import type { SandboxRunInput } from '../src/sandbox/sandbox-run.ts';
import { OomWatch } from '../src/sandbox/oom-watch.ts';
import { InMemoryBackend, type InMemorySandbox } from './helpers/in-memory-backend.ts';

const OUTPUT_LIMIT = 4096;
const MEMORY = 256 * 1024 * 1024;

function setup(options: Partial<EngineOptions> = {}) {
  const backend = new InMemoryBackend(OUTPUT_LIMIT);
  const logs: string[] = [];
  const engine = new SandboxEngine(
    backend,
    {
      idleTtlMs: 60_000,
      maxWarm: 16,
      maxLifetimeMs: 3_600_000,
      reaperMinAgeMs: 0,
      freezeAfterMs: 60_000,
      memoryReserveBytes: 0,
      availableMemory: () => 64 * 1024 ** 3,
      outputLimitBytes: OUTPUT_LIMIT,
      memoryBytes: MEMORY,
      ...options,
    },
    new Logger({ write: (line) => logs.push(line) }),
  );
  let n = 0;
  const run = (userId: string, message: string, extra: Partial<SandboxRunInput> = {}) =>
    engine.run({
      request: {
        protocol: AGENT_PROTOCOL_VERSION,
        runId: `r${++n}`,
        userId,
        conversationId: 'c',
        message,
        history: [],
        model: null,
        agent: null,
      },
      timeoutMs: 5_000,
      signal: new AbortController().signal,
      ...extra,
    });
  return { backend, engine, run, logs };
}

/** Polls `check` every 5 ms for at most 500 ms. */
async function eventually(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (check()) return;
    await sleep(5);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('engine: classification', () => {
  test('ok: the result and its streamed text; the sandbox stays warm', async () => {
    const { run, backend } = setup();
    const deltas: string[] = [];
    const r = await run('u', 'hi', { onText: (d) => deltas.push(d) });
    assert.equal(r.status, 'ok');
    assert.equal(r.text, 'echo: hi');
    assert.equal(r.exitCode, 0);
    assert.equal(r.warm, false);
    assert.deepEqual(deltas, ['echo: ']);
    assert.equal(backend.live().length, 1);
  });

  test('an error result is status error, and the sandbox stays warm', async () => {
    const { run, backend } = setup();
    const r = await run('u', 'error-result');
    assert.equal(r.status, 'error');
    assert.equal(r.text, 'echo: error-result');
    assert.equal(backend.live().length, 1);
  });

  test('timeout: killed (137) and removed', async () => {
    const { run, backend } = setup();
    const r = await run('u', 'silent', { timeoutMs: 30 });
    assert.equal(r.status, 'timeout');
    assert.equal(r.text, 'The run took longer than 30 ms and was stopped.');
    assert.equal(r.exitCode, 137);
    assert.equal(backend.live().length, 0);
  });

  test('output limit: a flood of events, and one endless line', async () => {
    for (const message of ['flood', 'long-line']) {
      const { run, backend } = setup();
      const r = await run('u', message);
      assert.equal(r.status, 'output_limit', message);
      assert.equal(r.text, `The agent's output exceeded ${OUTPUT_LIMIT} bytes; the run was stopped.`);
      assert.equal(backend.live().length, 0, message);
    }
  });

  test('oom: the agent was OOM-killed', async () => {
    const { run, backend } = setup();
    const r = await run('u', 'oom');
    assert.equal(r.status, 'oom');
    assert.equal(r.text, 'The sandbox ran out of memory (limit 256 MiB) and was stopped.');
    assert.equal(backend.live().length, 0);
  });

  test('protocol error: malformed output is an error naming the problem', async () => {
    const { run, backend, logs } = setup();
    const r = await run('u', 'garbage');
    assert.equal(r.status, 'error');
    assert.match(r.text, /^The agent's output was malformed: agent wrote a line that is not JSON\.$/);
    assert.equal(backend.live().length, 0);
    assert.ok(logs.some((l) => l.includes('agent output invalid')));
  });

  test('stream closed: the agent exited without a result, with its exit code', async () => {
    const { run, backend } = setup();
    const r = await run('u', 'exit:3');
    assert.equal(r.status, 'error');
    assert.equal(r.text, 'The agent ended without a result (exit code 3).');
    assert.equal(r.exitCode, 3);
    assert.equal(backend.live().length, 0);
  });

  test('a client that goes away: ClientGoneError, sandbox removed', async () => {
    const { run, backend } = setup();
    const ac = new AbortController();
    const p = run('u', 'silent', { signal: ac.signal });
    await eventually('the sandbox', () => backend.live().length === 1);
    ac.abort();
    await assert.rejects(p, ClientGoneError);
    assert.equal(backend.live().length, 0);
  });

  test('the workspace is saved only when the agent says it changed', async () => {
    const { run, backend, logs } = setup();
    await run('u', 'hi');
    await run('u', 'write');
    const s = backend.sandboxes[0]!;
    assert.equal(s.saves, 1);
    assert.ok(logs.some((l) => l.includes('workspace saved')));
  });
});

describe('engine: pool', () => {
  test('warm reuse: the second run of a user uses the same sandbox', async () => {
    const { run, backend } = setup();
    const a = await run('u', 'one');
    const b = await run('u', 'two');
    assert.equal(b.warm, true);
    assert.equal(b.containerId, a.containerId);
    assert.equal(b.timings.createMs, 0);
    assert.deepEqual(
      backend.sandboxes[0]!.requests.map((r) => r.message),
      ['one', 'two'],
    );
  });

  test('warm reuse off (TTL 0): every run gets a new sandbox, removed after', async () => {
    const { run, backend } = setup({ idleTtlMs: 0 });
    const a = await run('u', 'one');
    const b = await run('u', 'two');
    assert.equal(b.warm, false);
    assert.notEqual(a.containerId, b.containerId);
    assert.equal(backend.live().length, 0);
  });

  test('idle expiry removes a warm sandbox', async () => {
    const { run, backend, engine } = setup({ idleTtlMs: 20 });
    await run('u', 'hi');
    await eventually('idle expiry', () => backend.live().length === 0);
    assert.equal(engine.hasSandbox('u'), false);
    assert.equal((await run('u', 'again')).warm, false);
  });

  test('beyond the cap the least recently used warm sandbox is evicted', async () => {
    const { run, backend, engine } = setup({ maxWarm: 2 });
    const a = await run('a', 'hi');
    await run('b', 'hi');
    await run('a', 'hi'); // a is now more recent than b
    await run('c', 'hi');
    await eventually('eviction', () => backend.live().length === 2);
    assert.equal(engine.hasSandbox('b'), false);
    const again = await run('a', 'hi');
    assert.equal(again.warm, true);
    assert.equal(again.containerId, a.containerId);
  });

  test('a sandbox past its lifetime is not kept warm, however active its user', async () => {
    const { backend, run, logs } = setup({ maxLifetimeMs: 150 });
    const first = await run('u', 'hi');
    assert.equal(first.warm, false);
    const second = await run('u', 'again');
    assert.equal(second.warm, true, 'young: kept warm');
    await sleep(200);
    const third = await run('u', 'past its lifetime');
    assert.equal(third.warm, true, 'the run in progress keeps its sandbox');
    assert.equal(backend.live().length, 0, 'then it is removed instead of kept warm');
    assert.ok(logs.some((l) => l.includes('lifetime reached')));
    const fourth = await run('u', 'fresh');
    assert.equal(fourth.warm, false);
  });

  test('an unhealthy sandbox is removed and the next run gets a new one', async () => {
    const { run, backend } = setup();
    const a = await run('u', 'silent', { timeoutMs: 20 });
    const b = await run('u', 'hi');
    assert.equal(b.warm, false);
    assert.notEqual(a.containerId, b.containerId);
    assert.equal(backend.sandboxes[0]!.destroyed, true);
  });

  test('an OOM event after a run replaces the sandbox before the next run', async () => {
    const { run, backend } = setup();
    const a = await run('u', 'oom-after');
    assert.equal(a.status, 'ok');
    await eventually('the late oom event', () => backend.sandboxes[0]!.oomEvents() === 1);
    const b = await run('u', 'hi');
    assert.equal(b.warm, false);
    assert.notEqual(b.containerId, a.containerId);
    assert.equal(backend.sandboxes[0]!.destroyed, true);
  });

  test('deleting a workspace removes the warm sandbox and the workspace', async () => {
    const { run, backend, engine } = setup();
    await run('u', 'hi');
    assert.equal(await engine.deleteWorkspace('u'), true);
    assert.equal(backend.live().length, 0);
    assert.equal(backend.workspaces.has('u'), false);
    assert.equal(await engine.deleteWorkspace('u'), false);
  });

  test('drain removes every warm sandbox', async () => {
    const { run, backend, engine } = setup();
    await Promise.all([run('a', 'hi'), run('b', 'hi'), run('c', 'hi')]);
    assert.equal(engine.warmCount, 3);
    await engine.drain();
    assert.equal(backend.live().length, 0);
    assert.equal(engine.warmCount, 0);
  });

  test('drain saves every warm sandbox once more, frozen or not, then removes it', async () => {
    // Before, only a frozen one was saved: the thaw of one not frozen failed (`docker unpause` of
    // a running container) and its save was skipped.
    const { run, backend, engine } = setup({ freezeAfterMs: 60_000 });
    await run('a', 'ok');
    const frozen = setup({ freezeAfterMs: 0 });
    await frozen.run('b', 'ok');
    await eventually('frozen', () => frozen.backend.live().every((s) => s.frozen));
    await Promise.all([engine.drain(), frozen.engine.drain()]);
    for (const s of [...backend.sandboxes, ...frozen.backend.sandboxes]) {
      assert.equal(s.saves, 1, `${s.userId} saved at the drain`);
      assert.equal(s.destroyed, true);
    }
  });

  test('a sandbox whose create its client abandoned, arriving after the next run took a new one, is removed, not leaked', async () => {
    const { run, backend, engine } = setup();
    backend.createDelayMs = 100;
    const client = new AbortController();
    const abandoned = run('u', 'ok', { signal: client.signal });
    await sleep(10);
    client.abort();
    await assert.rejects(abandoned, ClientGoneError);
    const r = await run('u', 'ok'); // its own create; the abandoned one arrives meanwhile
    assert.equal(r.status, 'ok');
    await eventually('one sandbox left', () => backend.live().length === 1);
    assert.equal(backend.live()[0]?.id, r.containerId, 'the newer one stays warm');
    assert.equal(engine.warmCount, 1);
  });

  test('a save that lost to another runner is reported (saveLost), and the stale sandbox is not reused', async () => {
    const { run, backend } = setup();
    const r = await run('u', 'write-conflict');
    assert.equal(r.status, 'ok');
    assert.equal(r.saveLost, true);
    assert.equal(r.text, 'echo: write-conflict', 'the engine adds no text of its own');
    assert.equal(backend.live().length, 0);
    assert.equal((await run('u', 'write')).saveLost, false);
  });

  test('prewarm creates once; the next run is warm', async () => {
    const { run, engine } = setup();
    const signal = new AbortController().signal;
    assert.deepEqual(await engine.prewarm('u', 'p1', signal), { warm: true, created: true });
    assert.deepEqual(await engine.prewarm('u', 'p2', signal), { warm: true, created: false });
    assert.equal((await run('u', 'hi')).warm, true);
    const off = setup({ idleTtlMs: 0 });
    assert.deepEqual(await off.engine.prewarm('u', 'p', signal), { warm: false, created: false });
  });

  test('a failing create leaves nothing in the pool; a slow one still serves the run', async () => {
    const { run, backend, engine } = setup();
    backend.createError = new Error('create failed');
    await assert.rejects(run('u', 'hi'), /create failed/);
    assert.equal(engine.hasSandbox('u'), false);
    backend.createError = null;
    backend.createDelayMs = 20;
    const r = await run('u', 'hi');
    assert.equal(r.status, 'ok');
    assert.ok(r.timings.createMs > 0);
  });
});

describe('engine: idle sandboxes are frozen, and removed when host memory is low', () => {
  test('an idle sandbox is frozen after freezeAfterMs; the next run thaws and reuses it', async () => {
    const { run, backend, engine } = setup({ freezeAfterMs: 10 });
    await run('u', 'ok');
    const [s] = backend.live();
    assert.ok(s);
    await eventually('frozen', () => s.frozen);
    assert.deepEqual(engine.sandboxCounts(), { busy: 0, idle: 1, frozen: 1 });
    const r = await run('u', 'ok');
    assert.equal(r.status, 'ok');
    assert.equal(r.warm, true);
    assert.equal(s.frozen, false, 'the run found it thawed (an exchange with a frozen one throws)');
    assert.equal(backend.live().length, 1);
  });

  test('freezeAfterMs 0: frozen at once; a run that takes it while the freeze is in flight waits and thaws', async () => {
    const { run, backend } = setup({ freezeAfterMs: 0 });
    await run('u', 'ok');
    const r = await run('u', 'ok'); // the freeze has not settled yet (it takes a tick)
    assert.equal(r.status, 'ok');
    assert.equal(r.warm, true);
    const [s] = backend.live();
    assert.ok(s && s.freezes >= 1);
  });

  test('a sandbox that does not freeze is removed; the next run gets a new one', async () => {
    const { run, backend, logs } = setup({ freezeAfterMs: 0 });
    await run('u', 'ok');
    const [first] = backend.live();
    assert.ok(first);
    first.freezeError = new Error('pause timed out'); // the freeze in flight fails
    await eventually('removed and logged', () => logs.some((l) => l.includes('did not freeze')));
    assert.equal(first.destroyed, true);
    const r = await run('u', 'ok');
    assert.equal(r.warm, false);
    assert.equal(r.status, 'ok');
  });

  test('a frozen sandbox that does not thaw is removed, and the run goes on in a new one', async () => {
    const { run, backend } = setup({ freezeAfterMs: 0 });
    await run('u', 'ok');
    const [first] = backend.live();
    assert.ok(first);
    await eventually('frozen', () => first.frozen);
    first.thawError = new Error('unpause timed out');
    const r = await run('u', 'ok');
    assert.equal(r.status, 'ok');
    assert.equal(r.warm, false);
    assert.equal(first.destroyed, true);
  });

  test('drain removes frozen sandboxes too', async () => {
    const { run, backend, engine } = setup({ freezeAfterMs: 0 });
    await run('a', 'ok');
    await run('b', 'ok');
    await eventually('frozen', () => backend.live().every((s) => s.frozen));
    await engine.drain();
    assert.deepEqual(backend.live(), []);
  });

  test('below the memory reserve, idle sandboxes are removed least recently used first, about as many as the shortfall needs', async () => {
    let available = 64 * 1024 ** 3;
    const MiB = 1024 * 1024;
    const { run, backend, engine, logs } = setup({
      memoryReserveBytes: 1024 * MiB,
      availableMemory: () => available,
    });
    for (const u of ['a', 'b', 'c', 'd']) await run(u, 'ok');
    await engine.relieveMemory();
    assert.equal(engine.warmCount, 4, 'nothing removed while memory is plentiful');
    available = 1024 * MiB - 100 * MiB; // 100 MiB short: two sandboxes at the 64 MiB estimate
    await engine.relieveMemory();
    assert.deepEqual(
      backend.live().map((s) => s.userId),
      ['c', 'd'],
      'a and b (least recently used) went',
    );
    assert.ok(logs.some((l) => l.includes('host memory below the reserve')));
    available = 64 * 1024 ** 3;
    const r = await run('a', 'ok');
    assert.equal(r.warm, false, 'a starts cold again');
  });
});

describe('engine: a run is bounded however slow the platform, and ends at once when its client goes away', () => {
  test('a client that goes away while its sandbox is being created frees the run at once; the sandbox is kept warm when it arrives', async () => {
    const { run, backend, engine } = setup();
    backend.createDelayMs = 300;
    const client = new AbortController();
    const t0 = performance.now();
    const running = run('u', 'ok', { signal: client.signal });
    await sleep(20);
    client.abort();
    await assert.rejects(running, ClientGoneError);
    assert.ok(performance.now() - t0 < 200, 'the run ended before the create did');
    await eventually('the late sandbox is kept warm', () => engine.warmCount === 1);
    const r = await run('u', 'ok');
    assert.equal(r.warm, true);
  });

  test('a create slower than timeoutMs + the grace ends the run with a 503 (DeadlineError), and the sandbox is not lost', async () => {
    const { run, backend, engine } = setup({ graceMs: 300 });
    backend.createDelayMs = 1_000;
    const t0 = performance.now();
    await assert.rejects(run('u', 'ok', { timeoutMs: 100 }), (err: unknown) => {
      assert.ok(err instanceof DeadlineError);
      assert.equal(err.httpStatus, 503);
      return true;
    });
    const ms = performance.now() - t0;
    assert.ok(ms >= 400 && ms < 1_000, `answered after ${ms} ms, by timeoutMs + grace (400 ms)`);
    await engine.drain();
  });

  test('a client that goes away while the run is in its sandbox frees the run at once; the sandbox is removed', async () => {
    const { run, backend } = setup();
    const client = new AbortController();
    const running = run('u', 'silent', { signal: client.signal });
    await sleep(20);
    client.abort();
    await assert.rejects(running, ClientGoneError);
    await eventually('removed', () => backend.live().length === 0);
  });
});

describe('run service: the request line, the models, the answer, the files lease', () => {
  const TOKEN = 'a-long-enough-development-secret';
  const LIMITS: GateLimits = {
    maxConcurrent: 4,
    maxQueued: 8,
    maxQueuedPerUser: 4,
    retryAfterSeconds: 2,
    queueTimeoutMs: 10_000,
  };

  function service(models: ModelGateway | null = null) {
    const { backend, engine, logs } = setup();
    const config = loadConfig({ RUNNER_TOKEN: TOKEN });
    const log = new Logger({ write: (line) => logs.push(line) });
    const runs = new RunService({ config, gate: new RunGate(LIMITS), engine, models, log });
    const signal = new AbortController().signal;
    const request = (message: string) => ({ userId: 'u', conversationId: 'c', message, history: [] });
    return { backend, engine, runs, signal, request };
  }

  test('a run speaks the agent protocol; without a gateway its model is null and it used nothing', async () => {
    const { runs, backend, signal, request } = service();
    const r = await runs.run(request('hi'), signal);
    assert.equal(r.status, 'ok');
    assert.deepEqual(r.usage, NO_MODEL_USAGE);
    const sent = backend.sandboxes[0]!.requests[0]!;
    assert.equal(sent.protocol, AGENT_PROTOCOL_VERSION);
    assert.equal(sent.runId, r.runId);
    assert.equal(sent.model, null);
    assert.equal(sent.agent, null);
  });

  test("with a gateway the run's model (or the default) goes to the agent", async () => {
    const gateway = new ModelGateway(
      {
        ...loadConfig({ RUNNER_TOKEN: TOKEN }).models,
        baseUrl: 'http://127.0.0.1:9/v1',
        defaultModel: 'default-model',
      },
      async () => null,
      new Logger({ write: () => undefined }),
    );
    const { runs, backend, signal, request } = service(gateway);
    await runs.run(request('hi'), signal);
    await runs.run({ ...request('hi'), model: 'chosen' }, signal);
    assert.deepEqual(
      backend.sandboxes[0]!.requests.map((q) => q.model),
      ['default-model', 'chosen'],
    );
  });

  test("what a result may carry is decided by its agent's tool list, outside the sandbox", async () => {
    const { runs, signal, request } = service();
    const tools = async (list: AgentTool[] | null) =>
      runs.run(
        { ...request('extras'), ...(list ? { agent: { name: 'A', instructions: '', tools: list } } : {}) },
        signal,
      );
    const all = await tools(null); // the platform's default agent: every tool
    assert.equal(all.agent?.name, 'Made');
    assert.equal(all.component?.type, 'card');
    const none = await tools(['run_code']);
    assert.equal(none.agent, null);
    assert.equal(none.component, null);
    assert.equal(none.text, 'echo: extras', 'the rest of the answer stays');
    const some = await tools(['create_agent']);
    assert.equal(some.agent?.name, 'Made');
    assert.equal(some.component, null);
  });

  test('a run waits for the share of its client: a second run of one address waits for the first', async () => {
    const { engine, logs } = setup();
    const gate = new RunGate({ ...LIMITS, maxRunningPerAddress: 1 });
    const runs = new RunService({
      config: loadConfig({ RUNNER_TOKEN: TOKEN }),
      gate,
      engine,
      models: null,
      log: new Logger({ write: (line) => logs.push(line) }),
    });
    const signal = new AbortController().signal;
    const client = { addressKey: 'abcdef0123456789', anonymous: false };
    const order: string[] = [];
    // The first holds its slot until its run times out (its agent never answers).
    const first = runs
      .run(
        { userId: 'a', conversationId: 'c', message: 'silent', history: [], client, timeoutMs: 300 },
        signal,
      )
      .then(() => order.push('a'));
    const second = runs
      .run({ userId: 'b', conversationId: 'c', message: 'hi', history: [], client }, signal)
      .then(() => order.push('b'));
    await sleep(100);
    assert.equal(gate.running, 1, 'one slot for the address, though three are free');
    assert.equal(gate.waiting, 1);
    await Promise.all([first, second]);
    assert.deepEqual(order, ['a', 'b']);
  });

  test('a run whose save lost to another runner says so at the end of its answer', async () => {
    const { runs, signal, request } = service();
    const r = await runs.run(request('write-conflict'), signal);
    assert.equal(r.status, 'ok');
    assert.equal(r.text, `echo: write-conflict${WORKSPACE_CONFLICT_NOTE}`);
  });

  test('files: the operation runs in the warm sandbox, a change is saved, the sandbox stays warm', async () => {
    const { runs, backend, engine, signal, request } = service();
    await runs.run(request('hi'), signal);
    const [s] = backend.live();
    assert.ok(s);
    const value = await runs.files('u', signal, async (sandbox) => {
      assert.equal(sandbox, s);
      return { value: 42, changed: true };
    });
    assert.equal(value, 42);
    assert.equal(s.saves, 1);
    assert.equal(engine.warmCount, 1);
    await runs.files('u', signal, async () => ({ value: null, changed: false }));
    assert.equal(s.saves, 1, 'nothing changed: no save');
  });

  test('files: a save that lost is WorkspaceBusyError (503), and the stale sandbox is removed', async () => {
    const { runs, backend, engine, signal } = service();
    await assert.rejects(
      runs.files('u', signal, async (sandbox) => {
        (sandbox as InMemorySandbox).saveConflict = true;
        return { value: null, changed: true };
      }),
      WorkspaceBusyError,
    );
    assert.equal(backend.live().length, 0);
    assert.equal(engine.hasSandbox('u'), false);
  });

  test('files: an operation its client abandons ends at once; the sandbox is not reused', async () => {
    const { runs, backend, signal, request } = service();
    await runs.run(request('hi'), signal);
    const client = new AbortController();
    const op = runs.files('u', client.signal, async (_s, opSignal) => {
      client.abort();
      assert.equal(opSignal.aborted, true, "the operation's signal follows its client");
      throw new DeadlineError('the command in the sandbox did not finish in time');
    });
    await assert.rejects(op, DeadlineError);
    await eventually('removed', () => backend.live().length === 0);
  });

  test('files: a failure of the operation itself keeps the sandbox warm', async () => {
    const { runs, backend, engine, signal, request } = service();
    await runs.run(request('hi'), signal);
    await assert.rejects(
      runs.files('u', signal, async () => {
        throw new Error('no such file');
      }),
      /no such file/,
    );
    assert.equal(backend.live().length, 1);
    assert.equal(engine.warmCount, 1);
  });

  test('files: an OOM kill during the operation means the sandbox is not reused', async () => {
    const { runs, backend, signal, request } = service();
    await runs.run(request('hi'), signal);
    await runs.files('u', signal, async (sandbox) => {
      (sandbox as InMemorySandbox).oomKillChild();
      return { value: null, changed: false };
    });
    assert.equal(backend.live().length, 0);
    assert.equal((await runs.run(request('hi'), signal)).warm, false);
  });

  test('prewarm through the service: created once, in the user turn', async () => {
    const { runs, signal } = service();
    assert.deepEqual(await runs.prewarm('u', signal), { warm: true, created: true });
    assert.deepEqual(await runs.prewarm('u', signal), { warm: true, created: false });
  });
});

describe('engine: readiness and reaping', () => {
  test('ready() is the backend readiness', async () => {
    const { engine, backend } = setup();
    assert.equal((await engine.ready()).ready, true);
    backend.readiness = { ready: false, reason: 'no engine' };
    assert.deepEqual(await engine.ready(), { ready: false, reason: 'no engine' });
  });

  test('a periodic reap removes orphans old enough, never a pooled sandbox', async () => {
    const { engine, backend, run } = setup({ reaperMinAgeMs: 60_000 });
    await run('u', 'hi');
    backend.orphans.set('old', Date.now() - 120_000);
    backend.orphans.set('young', Date.now());
    assert.deepEqual(await engine.reap('periodic'), ['old']);
    assert.equal(backend.live().length, 1);
    assert.deepEqual((await engine.reap('shutdown')).sort(), ['mem-1', 'young']);
  });

  test('a periodic reap spares a sandbox still being created (not in the pool yet)', async () => {
    // Under gVisor a start took over a second, and a pass with a short minimum age removed it.
    const { engine, backend, run } = setup({ reaperMinAgeMs: 0 });
    backend.createDelayMs = 80;
    const pending = run('u', 'hi');
    await eventually('the sandbox is listed', () => backend.sandboxes.length === 1);
    assert.deepEqual(await engine.reap('periodic'), [], 'the starting sandbox is spared');
    const out = await pending;
    assert.equal(out.status, 'ok');
    backend.orphans.set('old-orphan', Date.now() - 1000);
    assert.deepEqual(await engine.reap('periodic'), ['old-orphan'], 'an orphan is still removed');
  });

  test('start and stop start and stop the backend watchers', () => {
    const { engine, backend } = setup();
    engine.start(60_000);
    assert.equal(backend.started, true);
    engine.stop();
    assert.equal(backend.started, false);
  });
});

describe('oom watch', () => {
  test('counts oom events per container and forgets a removed one', async () => {
    const events = new PassThrough();
    const fake = { getEvents: async () => events } as unknown as Docker;
    const watch = new OomWatch(fake, 'r', new Logger({ write: () => undefined }));
    await watch.start();
    // Split across chunks, with a line of another kind in between.
    events.write('{"status":"oom","id":"c1"}\n{"status":"oom","i');
    events.write('d":"c1"}\nnot json\n{"Action":"oom","id":"c2"}\n');
    await eventually('events', () => watch.count('c2') === 1);
    assert.equal(watch.count('c1'), 2);
    watch.forget('c1');
    assert.equal(watch.count('c1'), 0);
    watch.stop();
  });
});

describe('run gate', () => {
  const limits: GateLimits = {
    maxConcurrent: 1,
    maxQueued: 2,
    maxQueuedPerUser: 1,
    retryAfterSeconds: 2,
    queueTimeoutMs: 10_000,
  };

  test("one user's requests run in arrival order", async () => {
    const gate = new RunGate({ ...limits, maxConcurrent: 4, maxQueuedPerUser: 3, maxQueued: 4 });
    const order: number[] = [];
    const first = await gate.acquire('u');
    const rest = [1, 2, 3].map((i) =>
      gate.acquire('u').then((release) => {
        order.push(i);
        release();
      }),
    );
    first();
    await Promise.all(rest);
    assert.deepEqual(order, [1, 2, 3]);
  });

  test('the global cap holds a second user until a slot frees', async () => {
    const gate = new RunGate(limits);
    const a = await gate.acquire('a');
    let bIn = false;
    const b = gate.acquire('b').then((r) => ((bIn = true), r));
    await sleep(5);
    assert.equal(bIn, false);
    assert.equal(gate.running, 1);
    a();
    (await b)();
    assert.equal(gate.running, 0);
  });

  test('queue limits: per user, then overall, are 429', async () => {
    const gate = new RunGate(limits);
    const a = await gate.acquire('a');
    const a2 = gate.acquire('a');
    await assert.rejects(gate.acquire('a'), OverloadedError);
    const b = gate.acquire('b');
    await assert.rejects(gate.acquire('c'), /at capacity/);
    a(); // the slot goes to b (first in the slot queue), the lane to a2
    (await b)();
    (await a2)();
  });

  test('a request aborted while queued leaves the queue', async () => {
    const gate = new RunGate(limits);
    const a = await gate.acquire('a');
    const ac = new AbortController();
    const w = gate.acquire('b', ac.signal);
    ac.abort();
    await assert.rejects(w, ClientGoneError);
    assert.equal(gate.waiting, 0);
    a();
    (await gate.acquire('b'))();
  });

  test('a request that waits past the queue deadline gets OverloadedError with Retry-After', async () => {
    const gate = new RunGate({ ...limits, queueTimeoutMs: 20 });
    const a = await gate.acquire('a');
    await assert.rejects(
      gate.acquire('a'),
      (e: unknown) =>
        e instanceof OverloadedError && e.retryAfterSeconds === 2 && /waited longer/.test(e.message),
    );
    await assert.rejects(gate.acquire('b'), OverloadedError); // waiting for a slot
    assert.equal(gate.waiting, 0);
    a();
    // Nobody is left holding the lane or a slot.
    (await gate.acquire('a'))();
    (await gate.acquire('b'))();
    assert.equal(gate.running, 0);
  });
});
