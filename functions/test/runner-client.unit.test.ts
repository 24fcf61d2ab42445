import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import {
  DomainError,
  InternalError,
  RateLimitedError,
  RunnerTimeoutError,
  RunnerUnavailableError,
} from '../src/errors.ts';
import { RunnerClient, type RunRequest, type RunResult } from '../src/runner/runner-client.ts';
import { resolveRunner } from '../src/runner/runner-url.ts';

/**
 * The runner client against real HTTP servers on 127.0.0.1 that each test controls, and where
 * the runner is found. No emulator, no runner.
 */

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface TestServer {
  url: string;
  port: number;
  seen: Seen[];
  connections: number;
  close(): Promise<void>;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

/** A real HTTP server on 127.0.0.1 that records each request and answers with `handler`. */
async function serve(handler: Handler, port = 0): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  const out: TestServer = {
    url: '',
    port: 0,
    seen,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => {
    out.connections++;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  out.port = (server.address() as AddressInfo).port;
  out.url = `http://127.0.0.1:${out.port}`;
  return out;
}

async function servedFor(t: TestContext, handler: Handler): Promise<TestServer> {
  const s = await serve(handler);
  t.after(() => s.close());
  return s;
}

/** A port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const s = await serve(() => undefined);
  await s.close();
  return s.port;
}

const json = (status: number, value: unknown): Handler => {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
};

const DEV_TOKEN = 'dev-secret-token';
const RUN_REQUEST: RunRequest = {
  userId: 'user-1',
  conversationId: 'conv-1',
  message: 'Hello agent',
  history: [
    { role: 'user', text: 'earlier' },
    { role: 'agent', text: 'Test response: earlier' },
  ],
};
const RESULT: RunResult = {
  runId: 'run-123',
  status: 'ok',
  text: 'Test response: Hello agent',
  component: { type: 'card', title: 'x' },
  agent: { name: 'helper', description: 'helps', instructions: 'be helpful' },
  exitCode: 0,
  durationMs: 12.5,
  warm: true,
  timings: { queueMs: 0.1, createMs: 0, agentMs: 3, saveMs: 0 },
  usage: { model: null, calls: 0, inputTokens: 0, outputTokens: 0, exhausted: null },
  runnerId: 'runner-a',
};

function client(url: string, extra: { timeoutMs?: number; fetchImpl?: typeof fetch } = {}): RunnerClient {
  return new RunnerClient({
    location: async () => ({ url, audience: 'x' }),
    timeoutMs: extra.timeoutMs ?? 5000,
    devToken: DEV_TOKEN,
    ...(extra.fetchImpl ? { fetchImpl: extra.fetchImpl } : {}),
  });
}

async function rejectsDomain<E extends DomainError>(
  p: Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${type.name}`);
}

describe('RunnerClient against a local HTTP server', () => {
  test('200 with a valid result: parsed; the request carries the token and the JSON body', async (t) => {
    const s = await servedFor(t, json(200, RESULT));
    const result = await client(s.url).run(RUN_REQUEST);
    assert.deepEqual(result, RESULT);
    assert.equal(s.seen.length, 1);
    const [seen] = s.seen;
    assert.equal(seen!.method, 'POST');
    assert.equal(seen!.url, '/v1/runs');
    assert.equal(seen!.headers.authorization, `Bearer ${DEV_TOKEN}`);
    assert.equal(seen!.headers['content-type'], 'application/json');
    assert.equal(seen!.headers['x-agent-user'], RUN_REQUEST.userId, "the fleet's routing header");
    assert.deepEqual(JSON.parse(seen!.body), RUN_REQUEST);
  });

  test('unknown fields of a result are dropped, nulls are kept', async (t) => {
    const minimal = {
      runId: 'r',
      status: 'timeout',
      text: '',
      component: null,
      agent: null,
      exitCode: null,
      durationMs: 0,
      warm: false,
      timings: { queueMs: 0, createMs: 0, agentMs: 0, saveMs: 0 },
      usage: { model: null, calls: 0, inputTokens: 0, outputTokens: 0, exhausted: null },
      runnerId: 'runner-a',
    };
    const s = await servedFor(t, json(200, { ...minimal, secretField: 'x' }));
    assert.deepEqual(await client(s.url).run(RUN_REQUEST), minimal);
  });

  test('200 with an invalid result is an InternalError', async (t) => {
    const s = await servedFor(t, json(200, { ...RESULT, status: 'weird' }));
    const err = await rejectsDomain(client(s.url).run(RUN_REQUEST), InternalError);
    assert.equal(err.message, 'internal error');
    assert.match(err.detail, /invalid result/);
  });

  test('200 with a body that is not JSON is an InternalError', async (t) => {
    const s = await servedFor(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('all good!');
    });
    const err = await rejectsDomain(client(s.url).run(RUN_REQUEST), InternalError);
    assert.match(err.detail, /runner answered 200 without JSON/);
  });

  test('429 is RunnerUnavailableError (busy)', async (t) => {
    const s = await servedFor(t, json(429, { error: { code: 'overloaded', message: 'busy' } }));
    const err = await rejectsDomain(client(s.url).run(RUN_REQUEST), RunnerUnavailableError);
    assert.equal(err.code, 'unavailable');
    assert.match(err.message, /busy/);
    assert.equal(s.seen.length, 1, 'a 429 is not retried');
  });

  test("429 share_full is RateLimitedError (resource-exhausted): this client's share, not the runner, is full", async (t) => {
    for (const [field, text] of [
      ['address', /messages from your network are using their share/],
      ['anonymous', /anonymous accounts are using their share/],
    ] as const) {
      const s = await servedFor(t, (_req, res) => {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
        res.end(JSON.stringify({ error: { code: 'share_full', message: 'waited', field } }));
      });
      const err = await rejectsDomain(client(s.url).run(RUN_REQUEST), RateLimitedError);
      assert.equal(err.code, 'resource-exhausted');
      assert.equal(err.retryAfterSeconds, 7);
      assert.match(err.message, text);
    }
  });

  test('503, 502 and 504 are RunnerUnavailableError', async (t) => {
    for (const status of [503, 502, 504]) {
      const s = await servedFor(t, json(status, { status: 'unavailable', reason: 'no docker' }));
      const err = await rejectsDomain(client(s.url).run(RUN_REQUEST), RunnerUnavailableError);
      assert.equal(err.message, 'the agent runner is unavailable; try again shortly', String(status));
      assert.equal(s.seen.length, 1);
    }
  });

  test('streaming: deltas reach onText in order and the result is parsed; Accept asks for NDJSON', async (t) => {
    const s = await servedFor(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(JSON.stringify({ type: 'text', delta: 'Test response: ' }) + '\n');
      res.write(JSON.stringify({ type: 'text', delta: 'Hello agent' }) + '\n');
      res.end(JSON.stringify({ type: 'result', result: RESULT }) + '\n');
    });
    const deltas: string[] = [];
    const result = await client(s.url).run(RUN_REQUEST, (d) => deltas.push(d));
    assert.deepEqual(deltas, ['Test response: ', 'Hello agent']);
    assert.deepEqual(result, RESULT);
    assert.equal(s.seen[0]!.headers.accept, 'application/x-ndjson');
  });

  test('streaming: a runner that answers plain JSON still works', async (t) => {
    const s = await servedFor(t, json(200, RESULT));
    const deltas: string[] = [];
    assert.deepEqual(await client(s.url).run(RUN_REQUEST, (d) => deltas.push(d)), RESULT);
    assert.deepEqual(deltas, []);
  });

  test('streaming: a stream that ends without a result is RunnerUnavailableError', async (t) => {
    const s = await servedFor(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end(JSON.stringify({ type: 'text', delta: 'partial' }) + '\n');
    });
    await rejectsDomain(
      client(s.url).run(RUN_REQUEST, () => undefined),
      RunnerUnavailableError,
    );
  });

  test('streaming: an error line or a garbage line is an InternalError', async (t) => {
    for (const line of [JSON.stringify({ type: 'error', error: { code: 'internal' } }), 'not json']) {
      const s = await servedFor(t, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.end(line + '\n');
      });
      await rejectsDomain(
        client(s.url).run(RUN_REQUEST, () => undefined),
        InternalError,
      );
    }
  });

  test('an HTML 503 or 429 from a proxy is still RunnerUnavailableError', async (t) => {
    for (const status of [503, 429, 502]) {
      const s = await servedFor(t, (_req, res) => {
        res.writeHead(status, { 'content-type': 'text/html' });
        res.end('<html><body>Service Unavailable</body></html>');
      });
      await rejectsDomain(client(s.url).run(RUN_REQUEST), RunnerUnavailableError);
    }
  });

  test('500 (and other statuses) are InternalError with the status in the detail', async (t) => {
    const s = await servedFor(t, json(500, { error: 'boom' }));
    const err = await rejectsDomain(client(s.url).run(RUN_REQUEST), InternalError);
    assert.equal(err.message, 'internal error');
    assert.match(err.detail, /runner answered 500 to a run: \{"error":"boom"\}/);
    const s401 = await servedFor(t, json(401, { error: 'bad token' }));
    const err401 = await rejectsDomain(client(s401.url).run(RUN_REQUEST), InternalError);
    assert.match(err401.detail, /runner answered 401/);
  });

  test('no answer within timeoutMs is RunnerTimeoutError', async (t) => {
    const s = await servedFor(t, () => undefined);
    await rejectsDomain(client(s.url, { timeoutMs: 300 }).run(RUN_REQUEST), RunnerTimeoutError);
    assert.equal(s.seen.length, 1, 'a timed-out run is not retried');
  });

  test('a body that stalls past timeoutMs is RunnerTimeoutError', async (t) => {
    const s = await servedFor(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"runId":');
    });
    await rejectsDomain(client(s.url, { timeoutMs: 300 }).run(RUN_REQUEST), RunnerTimeoutError);
  });

  test('a refused connection is retried exactly once, then RunnerUnavailableError', async () => {
    const port = await closedPort();
    let attempts = 0;
    const counting: typeof fetch = (input, init) => {
      attempts++;
      return fetch(input, init);
    };
    await rejectsDomain(
      client(`http://127.0.0.1:${port}`, { fetchImpl: counting }).run(RUN_REQUEST),
      RunnerUnavailableError,
    );
    assert.equal(attempts, 2);
  });

  test('a refused first connection is retried and the retry answers', async (t) => {
    const port = await closedPort();
    let attempts = 0;
    const startingLate: typeof fetch = async (input, init) => {
      attempts++;
      try {
        return await fetch(input, init);
      } catch (err) {
        // The runner comes up between the first attempt and the retry.
        if (attempts === 1) {
          const s = await serve(json(200, RESULT), port);
          t.after(() => s.close());
        }
        throw err;
      }
    };
    const result = await client(`http://127.0.0.1:${port}`, { fetchImpl: startingLate }).run(RUN_REQUEST);
    assert.deepEqual(result, RESULT);
    assert.equal(attempts, 2);
  });

  test('a connection dropped after the request was sent is not retried', async (t) => {
    const s = await servedFor(t, (req) => {
      req.socket.destroy();
    });
    await rejectsDomain(client(s.url).run(RUN_REQUEST), RunnerUnavailableError);
    assert.equal(s.seen.length, 1, 'the run must not be sent twice');
    assert.equal(s.connections, 1);
  });

  test('deleteWorkspace: DELETE /v1/users/<id>/workspace with the token, no body', async (t) => {
    const s = await servedFor(t, json(200, { deleted: true }));
    assert.equal(await client(s.url).deleteWorkspace('user-1'), true);
    assert.equal(s.seen.length, 1);
    assert.equal(s.seen[0]!.method, 'DELETE');
    assert.equal(s.seen[0]!.url, '/v1/users/user-1/workspace');
    assert.equal(s.seen[0]!.headers.authorization, `Bearer ${DEV_TOKEN}`);
    assert.equal(s.seen[0]!.body, '');
  });

  test('deleteWorkspace: the user id is URL-encoded and false is passed through', async (t) => {
    const s = await servedFor(t, json(200, { deleted: false }));
    assert.equal(await client(s.url).deleteWorkspace('a/b c?'), false);
    assert.equal(s.seen[0]!.url, '/v1/users/a%2Fb%20c%3F/workspace');
  });

  test('deleteWorkspace: an invalid 200 body is an InternalError', async (t) => {
    const s = await servedFor(t, json(200, { deleted: 'yes' }));
    const err = await rejectsDomain(client(s.url).deleteWorkspace('u'), InternalError);
    assert.match(err.detail, /invalid workspace deletion/);
  });

  test('deleteWorkspace: runner errors are translated like runs', async (t) => {
    const busy = await servedFor(t, json(503, { status: 'unavailable' }));
    await rejectsDomain(client(busy.url).deleteWorkspace('u'), RunnerUnavailableError);
    const broken = await servedFor(t, json(500, { error: 'x' }));
    const err = await rejectsDomain(client(broken.url).deleteWorkspace('u'), InternalError);
    assert.match(err.detail, /^runner answered 500: /);
  });

  test('the location is asked on every call', async (t) => {
    const s = await servedFor(t, json(200, { deleted: true }));
    let asked = 0;
    const c = new RunnerClient({
      location: async () => {
        asked++;
        return { url: s.url, audience: 'x' };
      },
      timeoutMs: 5000,
      devToken: DEV_TOKEN,
    });
    await c.deleteWorkspace('a');
    await c.deleteWorkspace('b');
    assert.equal(asked, 2);
    assert.deepEqual(
      s.seen.map((r) => r.url),
      ['/v1/users/a/workspace', '/v1/users/b/workspace'],
    );
  });
});

describe('resolveRunner', () => {
  /** A stand-in for the Cloud Run admin client that records the names it is asked for. */
  function services(uri: string | null | undefined) {
    const asked: string[] = [];
    const client = {
      asked,
      getService: async (req: { name?: string | null }) => {
        asked.push(req.name ?? '');
        return [{ uri }, undefined, undefined];
      },
    };
    return client;
  }
  type Services = NonNullable<Parameters<typeof resolveRunner>[0]['services']>;
  const asServices = (s: ReturnType<typeof services>) => s as unknown as Services;

  test('RUNNER_URL wins, trailing slashes trimmed, audience defaults to the URL', async () => {
    const stub = services('https://from-cloud-run.a.run.app');
    const loc = await resolveRunner({
      url: '  http://127.0.0.1:18081/// ',
      service: 'projects/p/locations/r/services/s',
      audience: '',
      services: asServices(stub),
    });
    assert.deepEqual(loc, { url: 'http://127.0.0.1:18081', audience: 'http://127.0.0.1:18081' });
    assert.deepEqual(stub.asked, [], 'Cloud Run is not asked when RUNNER_URL is set');
  });

  test('an explicit audience is used', async () => {
    const loc = await resolveRunner({
      url: 'https://runner.example.com/',
      service: '',
      audience: ' https://audience.example ',
    });
    assert.deepEqual(loc, { url: 'https://runner.example.com', audience: 'https://audience.example' });
  });

  test('only a service name: asks Cloud Run once and uses its uri', async () => {
    const stub = services('https://runner-abc-uc.a.run.app/');
    const loc = await resolveRunner({
      url: '',
      service: ' projects/p/locations/us-central1/services/runner ',
      audience: '',
      services: asServices(stub),
    });
    assert.deepEqual(stub.asked, ['projects/p/locations/us-central1/services/runner']);
    assert.deepEqual(loc, {
      url: 'https://runner-abc-uc.a.run.app',
      audience: 'https://runner-abc-uc.a.run.app',
    });
  });

  test('a service without a uri is an InternalError', async () => {
    for (const uri of [null, undefined, '']) {
      const err = await rejectsDomain(
        resolveRunner({
          url: '',
          service: 'projects/p/locations/r/services/s',
          audience: '',
          services: asServices(services(uri)),
        }),
        InternalError,
      );
      assert.match(err.detail, /has no URL/);
    }
  });

  test('neither set is an InternalError', async () => {
    const err = await rejectsDomain(resolveRunner({ url: ' ', service: '  ', audience: 'x' }), InternalError);
    assert.equal(err.message, 'internal error');
    assert.match(err.detail, /neither RUNNER_URL nor RUNNER_SERVICE is set/);
  });

  test('a non-http(s) or malformed URL is an InternalError', async () => {
    for (const url of ['ftp://runner.example.com', 'file:///etc/passwd', 'javascript:alert(1)']) {
      const err = await rejectsDomain(resolveRunner({ url, service: '', audience: '' }), InternalError);
      assert.match(err.detail, /must be http\(s\)/, url);
    }
    const err = await rejectsDomain(
      resolveRunner({ url: 'not a url', service: '', audience: '' }),
      InternalError,
    );
    assert.match(err.detail, /is not a URL/);
  });
});

describe('RunnerClient: a full runner', () => {
  test("507 workspaces_full is resource-exhausted with the runner's Retry-After", async (t) => {
    const s = await servedFor(t, (_req, res) => {
      res.writeHead(507, { 'content-type': 'application/json', 'retry-after': '120' });
      res.end(JSON.stringify({ error: { code: 'workspaces_full', message: 'full' } }));
    });
    const err = await rejectsDomain(client(s.url).run(RUN_REQUEST), RateLimitedError);
    assert.equal(err.code, 'resource-exhausted');
    assert.equal(err.retryAfterSeconds, 120);
    assert.match(err.message, /no room for a new workspace/);
  });
});
