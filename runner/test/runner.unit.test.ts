import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RunGate } from '../src/concurrency/run-gate.ts';
import { ConfigError, loadConfig, redactedConfig } from '../src/config.ts';
import { ClientGoneError, OverloadedError } from '../src/errors.ts';
import { parseAgentLine, runRequestSchema } from '@agent-platform/contract';
import { AgentSession } from '../src/sandbox/agent-session.ts';
import { DockerDemuxer } from '../src/sandbox/docker-demux.ts';
import { resolveRuntime } from '../src/sandbox/docker-backend.ts';

const TOKEN = 'a-long-enough-development-secret';

describe('config', () => {
  test('WORKSPACE_STORE=gcs needs a bucket; volume stays the default', () => {
    assert.equal(loadConfig({ RUNNER_TOKEN: TOKEN }).workspaceStore, null);
    const c = loadConfig({
      RUNNER_TOKEN: TOKEN,
      WORKSPACE_STORE: 'gcs',
      WORKSPACE_BUCKET: 'my-workspaces',
      WORKSPACE_STORE_ENDPOINT: 'http://127.0.0.1:4443',
    });
    assert.deepEqual(c.workspaceStore, { bucket: 'my-workspaces', endpoint: 'http://127.0.0.1:4443' });
    assert.throws(
      () => loadConfig({ RUNNER_TOKEN: TOKEN, WORKSPACE_STORE: 'gcs' }),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('WORKSPACE_BUCKET')),
    );
    assert.throws(
      () => loadConfig({ RUNNER_TOKEN: TOKEN, WORKSPACE_STORE: 'gcs', WORKSPACE_BUCKET: 'Bad_Bucket!' }),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('WORKSPACE_BUCKET')),
    );
  });

  test("MODEL_PROVIDER=vertex: no key, a project, and Vertex AI's OpenAI-compatible endpoint", () => {
    const c = loadConfig({ RUNNER_TOKEN: TOKEN, MODEL_PROVIDER: 'vertex', VERTEX_PROJECT: 'my-proj-1' });
    assert.equal(
      c.models.baseUrl,
      'https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj-1/locations/us-central1/endpoints/openapi',
    );
    const global = loadConfig({
      RUNNER_TOKEN: TOKEN,
      MODEL_PROVIDER: 'vertex',
      VERTEX_PROJECT: 'my-proj-1',
      VERTEX_LOCATION: 'global',
    });
    assert.match(
      global.models.baseUrl ?? '',
      /^https:\/\/aiplatform\.googleapis\.com\/v1\/projects\/my-proj-1\/locations\/global\//,
    );
    assert.throws(
      () => loadConfig({ RUNNER_TOKEN: TOKEN, MODEL_PROVIDER: 'vertex' }),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('VERTEX_PROJECT')),
    );
    assert.throws(
      () =>
        loadConfig({
          RUNNER_TOKEN: TOKEN,
          MODEL_PROVIDER: 'vertex',
          VERTEX_PROJECT: 'my-proj-1',
          MODEL_API_KEY: 'k',
        }),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('MODEL_API_KEY')),
    );
    assert.equal(loadConfig({ RUNNER_TOKEN: TOKEN }).models.tokensPerRun, 100_000);
  });

  test('defaults', () => {
    const c = loadConfig({ RUNNER_TOKEN: TOKEN });
    assert.equal(c.port, 8081);
    assert.equal(c.sandbox.memoryBytes, 512 * 1024 * 1024);
    assert.equal(c.sandbox.nanoCpus, 1e9);
    assert.equal(c.sandbox.runtime, 'auto');
    assert.deepEqual(c.allowedInvokers, []);
  });

  test('concurrency, warm cap and memory reserve follow the host; the running sandboxes must fit in its memory', () => {
    const GiB = 1024 ** 3;
    const vm = loadConfig({ RUNNER_TOKEN: TOKEN }, { totalMemoryBytes: 8 * GiB, cpus: 2 });
    assert.equal(vm.maxConcurrentRuns, 4, '2 per core');
    assert.equal(vm.warmMaxSandboxes, 32, 'a quarter of 8 GiB at 64 MiB each');
    assert.equal(vm.hostMemoryReserveBytes, 4 * 512 * 1024 ** 2 + 512 * 1024 ** 2);
    assert.equal(vm.warmFreezeAfterMs, 2000);
    const big = loadConfig({ RUNNER_TOKEN: TOKEN }, { totalMemoryBytes: 24 * GiB, cpus: 2 });
    assert.equal(big.warmMaxSandboxes, 96);
    const manyCores = loadConfig({ RUNNER_TOKEN: TOKEN }, { totalMemoryBytes: 4 * GiB, cpus: 64 });
    assert.equal(manyCores.maxConcurrentRuns, 6, 'three quarters of 4 GiB at 512 MiB a run');
    assert.throws(
      () =>
        loadConfig(
          { RUNNER_TOKEN: TOKEN, MAX_CONCURRENT_RUNS: '16' },
          { totalMemoryBytes: 4 * GiB, cpus: 2 },
        ),
      (err: unknown) =>
        err instanceof ConfigError && /MAX_CONCURRENT_RUNS=16 x SANDBOX_MEMORY_BYTES/.test(err.message),
    );
    assert.throws(
      () => loadConfig({ RUNNER_TOKEN: TOKEN, SANDBOX_CPUS: '4' }, { totalMemoryBytes: 8 * GiB, cpus: 2 }),
      (err: unknown) =>
        err instanceof ConfigError && /SANDBOX_CPUS=4: more than the host's 2 CPUs/.test(err.message),
    );
  });

  test('parses lists and numbers; empty values mean default', () => {
    const c = loadConfig({
      RUNNER_AUDIENCE: 'https://runner',
      RUNNER_ALLOWED_INVOKERS: ' a@x.com , b@y.com ,',
      SANDBOX_CPUS: '0.5',
      PORT: '',
    });
    assert.deepEqual(c.allowedInvokers, ['a@x.com', 'b@y.com']);
    assert.equal(c.sandbox.nanoCpus, 5e8);
    assert.equal(c.port, 8081);
    assert.equal(c.runnerToken, undefined);
  });

  test('the workspaces disk budget must hold a snapshot; it sets how many workspaces fit', () => {
    const c = loadConfig({ RUNNER_TOKEN: TOKEN });
    assert.equal(c.maxWorkspaces, Math.floor((20 * 1024 ** 3) / (64 * 1024 ** 2 + 8192 * 1024 + 1024 ** 2)));
    assert.throws(
      () => loadConfig({ RUNNER_TOKEN: TOKEN, WORKSPACES_DISK_BYTES: String(32 * 1024 * 1024) }),
      /WORKSPACES_DISK_BYTES=33554432: must hold at least one workspace snapshot/,
    );
  });

  test('reports every bad variable at once', () => {
    assert.throws(
      () =>
        loadConfig({
          RUNNER_TOKEN: TOKEN,
          PORT: '99999',
          MAX_CONCURRENT_RUNS: '0',
          SANDBOX_RUNTIME: 'Bad Runtime',
        }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.problems.length, 3);
        assert.match(err.message, /PORT="99999": must be at most 65535/);
        assert.match(err.message, /MAX_CONCURRENT_RUNS="0": must be at least 1/);
        assert.match(err.message, /SANDBOX_RUNTIME/);
        return true;
      },
    );
  });

  test('memory must leave room above both tmpfs', () => {
    assert.throws(
      () =>
        loadConfig({
          RUNNER_TOKEN: TOKEN,
          SANDBOX_MEMORY_BYTES: String(128 * 1024 * 1024),
          WORKSPACE_BYTES: String(100 * 1024 * 1024),
        }),
      /SANDBOX_MEMORY_BYTES=.*at least WORKSPACE_BYTES \+ SANDBOX_TMP_BYTES/,
    );
  });

  test('the redacted copy hides the secret', () => {
    const text = JSON.stringify(redactedConfig(loadConfig({ RUNNER_TOKEN: TOKEN })));
    assert.ok(!text.includes(TOKEN));
    assert.match(text, /\(set\)/);
  });
});

describe('sandbox runtime', () => {
  test('auto is runsc when the engine has it, else runc; a named runtime is kept', () => {
    assert.equal(resolveRuntime('auto', ['runc', 'runsc', 'io.containerd.runc.v2']), 'runsc');
    assert.equal(resolveRuntime('auto', ['runc', 'io.containerd.runc.v2']), 'runc');
    assert.equal(resolveRuntime('runc', ['runc', 'runsc']), 'runc');
    assert.equal(resolveRuntime('kata', ['runc']), 'kata');
  });
});

describe('run request schema', () => {
  const schema = runRequestSchema({ maxMessageChars: 10, runTimeoutMs: 5000 });
  test('accepts a minimal request and defaults history', () => {
    const r = schema.parse({ userId: 'u_1-A', conversationId: 'c', message: 'hi' });
    assert.deepEqual(r.history, []);
  });
  test('a request may only lower the timeout', () => {
    assert.equal(
      schema.safeParse({ userId: 'u', conversationId: 'c', message: 'hi', timeoutMs: 5000 }).success,
      true,
    );
    assert.equal(
      schema.safeParse({ userId: 'u', conversationId: 'c', message: 'hi', timeoutMs: 5001 }).success,
      false,
    );
  });
  test('ids reject separators and overlong values', () => {
    for (const userId of ['a/b', 'a.b', '', 'x'.repeat(129), 'ü']) {
      assert.equal(schema.safeParse({ userId, conversationId: 'c', message: 'hi' }).success, false, userId);
    }
  });
});

describe('agent protocol', () => {
  test('parses text and result events', () => {
    assert.deepEqual(parseAgentLine('{"type":"text","delta":"a"}'), { event: { type: 'text', delta: 'a' } });
    const r = parseAgentLine(
      '{"type":"result","text":"t","component":{"type":"card","title":"x"},"agent":null}',
    );
    assert.ok('event' in r && r.event.type === 'result' && r.event.component?.type === 'card');
    // The old end-of-process event is not part of the protocol any more.
    assert.ok('error' in parseAgentLine('{"type":"agent-exit","code":3}'));
  });
  test('rejects non-JSON, unknown types and bad fields with a message', () => {
    assert.match((parseAgentLine('hello') as { error: string }).error, /not JSON/);
    assert.match((parseAgentLine('{"type":"shell","cmd":"rm"}') as { error: string }).error, /invalid event/);
    assert.match(
      (parseAgentLine('{"type":"result","text":"t","agent":{"name":""}}') as { error: string }).error,
      /agent/,
    );
  });
  test('rejects an oversized component', () => {
    const big = JSON.stringify({
      type: 'result',
      text: 't',
      component: { type: 'card', body: 'x'.repeat(70_000) },
    });
    assert.match((parseAgentLine(big) as { error: string }).error, /component/);
  });
});

describe('run gate', () => {
  const limits = {
    maxConcurrent: 2,
    maxQueued: 2,
    maxQueuedPerUser: 1,
    retryAfterSeconds: 3,
    queueTimeoutMs: 10_000,
  };

  test('serializes one user and lets another through', async () => {
    const gate = new RunGate(limits);
    const order: string[] = [];
    const a1 = await gate.acquire('a');
    const a2 = gate.acquire('a').then((r) => {
      order.push('a2');
      return r;
    });
    const b1 = await gate.acquire('b');
    order.push('b1');
    await sleep(10);
    assert.deepEqual(order, ['b1']);
    a1();
    (await a2)();
    b1();
    assert.deepEqual(order, ['b1', 'a2']);
    assert.equal(gate.running, 0);
  });

  test('rejects beyond the per-user queue with Retry-After', async () => {
    const gate = new RunGate(limits);
    const a1 = await gate.acquire('a');
    const a2 = gate.acquire('a');
    await assert.rejects(
      gate.acquire('a'),
      (e: unknown) => e instanceof OverloadedError && e.retryAfterSeconds === 3,
    );
    a1();
    (await a2)();
  });

  test('never exceeds the global cap and hands slots over in order', async () => {
    const gate = new RunGate(limits);
    const r1 = await gate.acquire('u1');
    const r2 = await gate.acquire('u2');
    const got: string[] = [];
    const w3 = gate.acquire('u3').then((r) => (got.push('u3'), r));
    const w4 = gate.acquire('u4').then((r) => (got.push('u4'), r));
    await assert.rejects(gate.acquire('u5'), OverloadedError);
    assert.equal(gate.running, 2);
    r1();
    const r3 = await w3;
    assert.equal(gate.running, 2);
    r2();
    const r4 = await w4;
    assert.deepEqual(got, ['u3', 'u4']);
    r3();
    r4();
    assert.equal(gate.running, 0);
    assert.equal(gate.waiting, 0);
  });

  test('a waiter whose client leaves is dropped from the queue', async () => {
    const gate = new RunGate(limits);
    const r1 = await gate.acquire('a');
    const ac = new AbortController();
    const w = gate.acquire('a', ac.signal);
    ac.abort();
    await assert.rejects(w, ClientGoneError);
    assert.equal(gate.waiting, 0);
    r1();
    const again = await gate.acquire('a');
    again();
    assert.equal(gate.running, 0);
  });
});

describe('Docker stream demultiplexer', () => {
  const frame = (type: number, payload: Buffer) => {
    const header = Buffer.alloc(8);
    header[0] = type;
    header.writeUInt32BE(payload.length, 4);
    return Buffer.concat([header, payload]);
  };

  test('routes stdout and stderr frames, split across chunks at every byte', () => {
    const stream = Buffer.concat([
      frame(1, Buffer.from('out-1 ')),
      frame(2, Buffer.from('err-1')),
      frame(1, Buffer.from('out-2')),
      frame(1, Buffer.alloc(0)),
    ]);
    for (let cut = 0; cut <= stream.length; cut++) {
      let out = '';
      let err = '';
      const d = new DockerDemuxer(
        (p) => (out += p.toString()),
        (p) => (err += p.toString()),
      );
      d.push(stream.subarray(0, cut));
      d.push(stream.subarray(cut));
      assert.equal(out, 'out-1 out-2', `cut at ${cut}`);
      assert.equal(err, 'err-1', `cut at ${cut}`);
    }
  });

  test('a chunk of 300,000 one-byte frames is split in one pass (docker-modem recursed per frame)', () => {
    const one = frame(1, Buffer.from('x'));
    const chunk = Buffer.concat(Array.from({ length: 300_000 }, () => one));
    let n = 0;
    new DockerDemuxer(
      (p) => (n += p.length),
      () => assert.fail('no stderr'),
    ).push(chunk);
    assert.equal(n, 300_000);
  });
});

describe('agent session: output outside a request', () => {
  const session = () => {
    const io = { written: [] as string[], kills: 0 };
    const s = new AgentSession(1024, {
      write: (line) => io.written.push(line),
      kill: () => io.kills++,
    });
    return { s, io };
  };

  test('stdout while idle kills the sandbox at once and is not read further', () => {
    const { s, io } = session();
    s.data('\n');
    assert.equal(s.isHealthy(), true, 'a blank line is harmless');
    s.data('flood\n');
    assert.equal(s.isHealthy(), false);
    assert.equal(s.unhealthyReason(), 'output outside a request');
    assert.equal(io.kills, 1);
    s.data('more flood\n'.repeat(1000));
    assert.equal(io.kills, 1, 'killed once, the rest ignored');
  });

  test('stderr while idle is allowed up to a small amount, then kills', () => {
    const { s, io } = session();
    s.stderr(100);
    assert.equal(s.isHealthy(), true);
    s.stderr(5000);
    assert.equal(s.isHealthy(), false);
    assert.equal(io.kills, 1);
  });

  test("stderr during a run counts against the run's output limit", async () => {
    const { s, io } = session();
    const request = {
      protocol: 1 as const,
      runId: 'r',
      userId: 'u',
      conversationId: 'c',
      message: 'm',
      history: [],
      model: null,
      agent: null,
    };
    const pending = s.exchange(request, { timeoutMs: 5000, signal: new AbortController().signal });
    assert.equal(io.written.length, 1);
    s.stderr(600);
    s.stderr(600);
    const x = await pending;
    assert.equal(x.ending, 'output_limit');
    assert.equal(io.kills, 1);
  });
});
