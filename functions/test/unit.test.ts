import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test, type TestContext } from 'node:test';
import functionsTest from 'firebase-functions-test';
import { HttpsError, type CallableRequest } from 'firebase-functions/v2/https';
import { getApps } from 'firebase-admin/app';
import type { DecodedIdToken } from 'firebase-admin/auth';
import {
  ConversationNotFoundError,
  DomainError,
  InternalError,
  InvalidInputError,
  NotSignedInError,
  RateLimitedError,
  RequestInProgressError,
  RunnerTimeoutError,
  RunnerUnavailableError,
} from '../src/errors.ts';
import {
  HISTORY_MAX_JSON_BYTES,
  STORED_TEXT_MAX_BYTES,
  conversationDocSchema,
  getConversationInputSchema as getConversationSchema,
  listConversationsInputSchema as listConversationsSchema,
  sendMessageInputSchema as sendMessageSchema,
} from '@agent-platform/contract';
import { parseInput } from '../src/http/parse-input.ts';
import { toHttpError, toHttpsError } from '../src/http/translate.ts';
import { sendMessage } from '../src/http/callables.ts';
import { createCallables } from '../src/http/create-callables.ts';
import { createApi } from '../src/http/api.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { instanceConfig } from '../src/instance-config.ts';
import { Logger, userHash, type Severity } from '../src/logs.ts';
import { takeOne } from '../src/admission/rate-window.ts';
import { readDoc } from '../src/firestore/read-doc.ts';
import { boundedHistory, cutUtf8, storableReply } from '../src/send/storable.ts';
import { RunnerClient, type RunRequest, type RunResult } from '../src/runner/runner-client.ts';
import { resolveRunner } from '../src/runner/runner-url.ts';

/**
 * Pure unit tests: no emulator is needed (and a running one is not touched). The runner client
 * talks to real HTTP servers on 127.0.0.1 that each test controls.
 */

/** Runs `fn` and returns what it threw, asserting that it threw an InvalidInputError. */
function invalid(fn: () => unknown): InvalidInputError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidInputError, `expected an InvalidInputError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected an InvalidInputError');
}

/** Asserts the error names `field` and that its message is `<field>: <reason>` with a matching reason. */
function assertFieldError(fn: () => unknown, field: string, reason: RegExp): void {
  const err = invalid(fn);
  assert.equal(err.field, field);
  assert.ok(err.message.startsWith(`${field}: `), err.message);
  assert.match(err.message.slice(field.length + 2), reason);
  assert.equal(err.code, 'invalid-argument');
}

describe('input schemas', () => {
  const send = (data: unknown) => parseInput(sendMessageSchema(10), data);

  test('sendMessage: a valid message parses, unknown keys are dropped', () => {
    assert.deepEqual(send({ message: 'hello', extra: true }), { message: 'hello' });
    assert.deepEqual(send({ message: 'x'.repeat(10), conversationId: 'c_1-A', requestId: 'abcdefgh' }), {
      message: 'x'.repeat(10),
      conversationId: 'c_1-A',
      requestId: 'abcdefgh',
    });
  });

  test('sendMessage: empty, blank, too long, missing or non-string message', () => {
    assertFieldError(() => send({ message: '' }), 'message', /must not be empty/);
    assertFieldError(() => send({ message: ' \n\t ' }), 'message', /must not be empty/);
    assertFieldError(() => send({ message: 'x'.repeat(11) }), 'message', /must be at most 10 characters/);
    assertFieldError(() => send({}), 'message', /must be a string/);
    assertFieldError(() => send({ message: 42 }), 'message', /must be a string/);
    // The limit is the one passed in.
    assert.deepEqual(parseInput(sendMessageSchema(11), { message: 'x'.repeat(11) }), {
      message: 'x'.repeat(11),
    });
  });

  test('sendMessage: bad conversation ids', () => {
    for (const conversationId of ['', 'has space', '../etc', 'a/b', 'é', 'x'.repeat(129)]) {
      assertFieldError(
        () => send({ message: 'hi', conversationId }),
        'conversationId',
        /must be 1-128 of \[A-Za-z0-9_-\]/,
      );
    }
    assertFieldError(() => send({ message: 'hi', conversationId: 7 }), 'conversationId', /must be a string/);
    assert.equal(send({ message: 'hi', conversationId: 'x'.repeat(128) }).conversationId, 'x'.repeat(128));
  });

  test('sendMessage: bad request ids', () => {
    for (const requestId of ['', 'short12', 'has space!', 'x'.repeat(129)]) {
      assertFieldError(() => send({ message: 'hi', requestId }), 'requestId', /must be 8-128 of/);
    }
    assertFieldError(() => send({ message: 'hi', requestId: 12345678 }), 'requestId', /must be a string/);
  });

  test('listConversations: defaults, bounds and types', () => {
    assert.deepEqual(parseInput(listConversationsSchema, {}), { limit: 20 });
    assert.deepEqual(parseInput(listConversationsSchema, undefined), { limit: 20 });
    assert.deepEqual(parseInput(listConversationsSchema, null), { limit: 20 });
    assert.deepEqual(parseInput(listConversationsSchema, { limit: 1, cursor: 'abc' }), {
      limit: 1,
      cursor: 'abc',
    });
    assert.deepEqual(parseInput(listConversationsSchema, { limit: 100 }), { limit: 100 });
    assertFieldError(() => parseInput(listConversationsSchema, { limit: 0 }), 'limit', /must be at least 1/);
    assertFieldError(() => parseInput(listConversationsSchema, { limit: -5 }), 'limit', /must be at least 1/);
    assertFieldError(
      () => parseInput(listConversationsSchema, { limit: 101 }),
      'limit',
      /must be at most 100/,
    );
    assertFieldError(
      () => parseInput(listConversationsSchema, { limit: 2.5 }),
      'limit',
      /must be a whole number/,
    );
    assertFieldError(() => parseInput(listConversationsSchema, { limit: '10' }), 'limit', /must be a number/);
    assertFieldError(
      () => parseInput(listConversationsSchema, { cursor: 'c'.repeat(201) }),
      'cursor',
      /is too long/,
    );
    assertFieldError(() => parseInput(listConversationsSchema, { cursor: 5 }), 'cursor', /must be a string/);
  });

  test('getConversation: required id, defaults, bounds', () => {
    assert.deepEqual(parseInput(getConversationSchema, { conversationId: 'abc' }), {
      conversationId: 'abc',
      limit: 50,
    });
    assertFieldError(() => parseInput(getConversationSchema, {}), 'conversationId', /must be a string/);
    assertFieldError(
      () => parseInput(getConversationSchema, { conversationId: 'no/slashes' }),
      'conversationId',
      /must be 1-128/,
    );
    assertFieldError(
      () => parseInput(getConversationSchema, { conversationId: 'abc', limit: 0 }),
      'limit',
      /must be at least 1/,
    );
    assertFieldError(
      () => parseInput(getConversationSchema, { conversationId: 'abc', limit: 101 }),
      'limit',
      /must be at most 100/,
    );
    assertFieldError(
      () => parseInput(getConversationSchema, { conversationId: 'abc', limit: 1.5 }),
      'limit',
      /must be a whole number/,
    );
  });

  test('non-object input names no field', () => {
    for (const data of ['hello', 42, true, ['message']]) {
      const err = invalid(() => parseInput(listConversationsSchema, data));
      assert.equal(err.field, undefined);
      assert.match(err.message, /^the request must be an object: /);
      const err2 = invalid(() => send(data));
      assert.equal(err2.field, undefined);
      assert.match(err2.message, /^the request must be an object: /);
    }
  });
});

/** Captures process.stderr (the functions' logger writes errors there) until restore(). */
function interceptStderr(): { logged: () => string; restore: () => void } {
  const chunks: string[] = [];
  const original = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  }) as typeof process.stderr.write;
  return { logged: () => chunks.join(''), restore: () => (process.stderr.write = original) };
}

/** Runs `fn` with process.stderr captured. */
function captureStderr<T>(fn: () => T): { result: T; logged: string } {
  const capture = interceptStderr();
  try {
    return { result: fn(), logged: capture.logged() };
  } finally {
    capture.restore();
  }
}

/** captureStderr for an async `fn`. */
async function captureStderrAsync<T>(fn: () => Promise<T>): Promise<{ result: T; logged: string }> {
  const capture = interceptStderr();
  try {
    return { result: await fn(), logged: capture.logged() };
  } finally {
    capture.restore();
  }
}

describe('error translation', () => {
  const cases: Array<{ err: DomainError; code: string; status: number; message: string }> = [
    {
      err: new InvalidInputError('message: must not be empty', 'message'),
      code: 'invalid-argument',
      status: 400,
      message: 'message: must not be empty',
    },
    { err: new NotSignedInError(), code: 'unauthenticated', status: 401, message: 'sign in first' },
    { err: new ConversationNotFoundError(), code: 'not-found', status: 404, message: 'no such conversation' },
    {
      err: new RateLimitedError('at most 5 messages per minute; try again in 42 s', 42),
      code: 'resource-exhausted',
      status: 429,
      message: 'at most 5 messages per minute; try again in 42 s',
    },
    {
      err: new RequestInProgressError(),
      code: 'aborted',
      status: 409,
      message: 'this request is still being processed; retry shortly',
    },
    {
      err: new RunnerUnavailableError(),
      code: 'unavailable',
      status: 503,
      message: 'the agent runner is unavailable; try again shortly',
    },
    {
      err: new RunnerTimeoutError(),
      code: 'deadline-exceeded',
      status: 504,
      message: 'the agent did not answer in time',
    },
    {
      err: new InternalError('runner answered 500'),
      code: 'internal',
      status: 500,
      message: 'internal error',
    },
  ];

  test('toHttpsError: every domain error keeps its code and client-safe message', () => {
    for (const c of cases) {
      const { result: e } = captureStderr(() => toHttpsError(c.err, 'unit'));
      assert.ok(e instanceof HttpsError);
      assert.equal(e.code, c.code, c.err.name);
      assert.equal(e.message, c.message, c.err.name);
      assert.equal(e.httpErrorCode.status, c.status, c.err.name);
    }
  });

  test('toHttpsError: details carry the field and the retry delay only', () => {
    const field = toHttpsError(new InvalidInputError('limit: must be at least 1', 'limit'), 'unit');
    assert.deepEqual(field.details, { field: 'limit' });
    assert.deepEqual(field.toJSON(), {
      status: 'INVALID_ARGUMENT',
      message: 'limit: must be at least 1',
      details: { field: 'limit' },
    });
    const noField = toHttpsError(new InvalidInputError('the request must be an object: x'), 'unit');
    assert.equal(noField.details, undefined);
    const rate = toHttpsError(new RateLimitedError('slow down', 7), 'unit');
    assert.deepEqual(rate.details, { retryAfterSeconds: 7 });
    assert.equal(toHttpsError(new ConversationNotFoundError(), 'unit').details, undefined);
  });

  test('toHttpsError: an unknown error becomes a bare internal error; its text goes only to the logs', () => {
    const secret = 'db password is hunter2';
    const { result: e, logged } = captureStderr(() => toHttpsError(new Error(secret), 'sendMessage'));
    assert.ok(e instanceof HttpsError);
    assert.equal(e.code, 'internal');
    assert.equal(e.message, 'internal error');
    assert.equal(e.details, undefined);
    assert.equal(e.httpErrorCode.status, 500);
    const visible = JSON.stringify({
      json: e.toJSON(),
      message: e.message,
      details: e.details,
      stack: e.stack,
    });
    assert.ok(!visible.includes('hunter2'), visible);
    assert.match(logged, /sendMessage: unexpected error/);
    assert.match(logged, /hunter2/);
  });

  test("toHttpsError: an InternalError's detail is logged, never sent", () => {
    const { result: e, logged } = captureStderr(() =>
      toHttpsError(new InternalError('runner answered 500: token=s3cr3t'), 'getConversation'),
    );
    assert.equal(e.code, 'internal');
    assert.equal(e.message, 'internal error');
    assert.ok(!JSON.stringify(e.toJSON()).includes('s3cr3t'));
    assert.match(logged, /getConversation: runner answered 500: token=s3cr3t/);
  });

  test('toHttpsError: a thrown non-Error is internal too', () => {
    const { result: e } = captureStderr(() => toHttpsError('password=hunter2', 'unit'));
    assert.equal(e.code, 'internal');
    assert.equal(e.message, 'internal error');
    assert.ok(!JSON.stringify(e.toJSON()).includes('hunter2'));
  });

  test('toHttpError: statuses, headers and bodies', () => {
    for (const c of cases) {
      const { result: out } = captureStderr(() => toHttpError(c.err, 'unit'));
      assert.equal(out.status, c.status, c.err.name);
      assert.deepEqual(
        out.body,
        {
          error: {
            code: c.code,
            message: c.message,
            ...(c.err instanceof InvalidInputError ? { field: 'message' } : {}),
          },
        },
        c.err.name,
      );
      assert.deepEqual(
        out.headers,
        c.err instanceof RateLimitedError ? { 'retry-after': '42' } : {},
        c.err.name,
      );
    }
    const noField = toHttpError(new InvalidInputError('the request body is not valid JSON'), 'api');
    assert.deepEqual(noField.body, {
      error: { code: 'invalid-argument', message: 'the request body is not valid JSON' },
    });
  });

  test('toHttpError: an unknown error is a 500 without the secret', () => {
    const { result: out } = captureStderr(() => toHttpError(new Error('db password is hunter2'), 'api'));
    assert.equal(out.status, 500);
    assert.deepEqual(out.headers, {});
    assert.deepEqual(out.body, { error: { code: 'internal', message: 'internal error' } });
    assert.ok(!JSON.stringify(out).includes('hunter2'));
  });
});

describe('callables (firebase-functions-test, offline)', () => {
  const fft = functionsTest();
  after(() => fft.cleanup());
  // The callables read a validated configuration; these get one of their own (defaults), so no
  // test touches the process's environment.
  const callables = createCallables(() => loadConfig({}));

  function request(data: unknown, uid?: string): CallableRequest {
    const token: DecodedIdToken = {
      aud: 'demo-agent-platform',
      auth_time: 1_700_000_000,
      exp: 1_700_003_600,
      iat: 1_700_000_000,
      iss: 'https://securetoken.google.com/demo-agent-platform',
      sub: uid ?? '',
      uid: uid ?? '',
      firebase: { identities: {}, sign_in_provider: 'password' },
    };
    return {
      data,
      ...(uid !== undefined ? { auth: { uid, token, rawToken: 'unused' } } : {}),
      rawRequest: {} as CallableRequest['rawRequest'],
      acceptsStreaming: false,
    };
  }

  async function rejectsWith(p: unknown, code: string): Promise<HttpsError> {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof HttpsError, `expected an HttpsError, got ${String(err)}`);
      assert.equal(err.code, code, err.message);
      return err;
    }
    assert.fail(`expected HttpsError ${code}`);
  }

  const all = {
    sendMessage: fft.wrap(callables.sendMessage),
    listConversations: fft.wrap(callables.listConversations),
    getConversation: fft.wrap(callables.getConversation),
    deleteConversation: fft.wrap(callables.deleteConversation),
    listAgents: fft.wrap(callables.listAgents),
    deleteWorkspace: fft.wrap(callables.deleteWorkspace),
  };

  test('every callable rejects a call without auth as unauthenticated', async () => {
    for (const [name, fn] of Object.entries(all)) {
      const e = await rejectsWith(fn(request({ message: 'hi', conversationId: 'abc' })), 'unauthenticated');
      assert.equal(e.message, 'sign in first', name);
      // An auth object without a uid is no sign-in either.
      await rejectsWith(fn(request({ message: 'hi' }, '')), 'unauthenticated');
    }
    // Rejected before the handler: no Firebase app (so no Firestore client) was ever created.
    assert.equal(getApps().length, 0);
  });

  test('invalid data is invalid-argument with the field in details', async () => {
    const uid = 'user-1';
    const cases: Array<[keyof typeof all, unknown, string, RegExp]> = [
      ['sendMessage', { message: '   ' }, 'message', /^message: must not be empty$/],
      ['sendMessage', { message: 'hi', conversationId: 'a/b' }, 'conversationId', /^conversationId: /],
      ['sendMessage', { message: 'hi', requestId: 'short' }, 'requestId', /^requestId: /],
      ['listConversations', { limit: 0 }, 'limit', /^limit: must be at least 1$/],
      ['listConversations', { limit: 101 }, 'limit', /^limit: must be at most 100$/],
      ['getConversation', {}, 'conversationId', /^conversationId: /],
      ['getConversation', { conversationId: 'abc', limit: 1.5 }, 'limit', /^limit: must be a whole number$/],
      ['deleteConversation', { conversationId: '../x' }, 'conversationId', /^conversationId: /],
    ];
    for (const [name, data, field, message] of cases) {
      const e = await rejectsWith(all[name](request(data, uid)), 'invalid-argument');
      assert.deepEqual(e.details, { field }, `${name} ${JSON.stringify(data)}`);
      assert.match(e.message, message);
    }
  });

  test('non-object data is invalid-argument without a field', async () => {
    for (const fn of [all.listAgents, all.deleteWorkspace, all.listConversations, all.sendMessage]) {
      const e = await rejectsWith(fn(request('not an object', 'user-1')), 'invalid-argument');
      assert.equal(e.details, undefined);
      assert.match(e.message, /^the request must be an object: /);
    }
  });

  test("sendMessage's message cap is MAX_MESSAGE_CHARS of its configuration", async () => {
    const short = createCallables(() => loadConfig({ MAX_MESSAGE_CHARS: '5' }));
    const e = await rejectsWith(
      fft.wrap(short.sendMessage)(request({ message: '123456' }, 'user-1')),
      'invalid-argument',
    );
    assert.equal(e.message, 'message: must be at most 5 characters');
    assert.deepEqual(e.details, { field: 'message' });
  });

  test('the module-level callables use the default cap without any environment', async () => {
    const e = await rejectsWith(
      fft.wrap(sendMessage)(request({ message: 'x'.repeat(8001) }, 'user-1')),
      'invalid-argument',
    );
    assert.equal(e.message, 'message: must be at most 8000 characters');
  });
});

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

describe('configuration (params with bounds)', () => {
  test('defaults, and every wait derived from the run cap', () => {
    const c = loadConfig({});
    assert.equal(c.runTimeoutMs, 30_000);
    assert.equal(c.messagesPerMinute, 20);
    assert.equal(c.maxMessageChars, 8000);
    assert.equal(c.enforceAppCheck, false);
    assert.deepEqual(c.corsOrigins, ['http://127.0.0.1:5000', 'http://localhost:5000']);
    assert.ok(c.budget.runnerClientMs > c.budget.runnerAnswerMs);
    assert.ok(c.budget.runnerAnswerMs > c.runTimeoutMs);
    assert.ok(c.budget.functionMs <= c.budget.functionTimeoutMs);
  });

  test('out-of-bounds values are refused, each named with why', () => {
    assert.throws(
      () =>
        loadConfig({
          MESSAGES_PER_MINUTE: '0',
          MAX_MESSAGE_CHARS: '2000000',
          RUNNER_URL: 'ftp://runner',
          CORS_ORIGINS: 'https://ok.example.com,https://bad.example.com/path',
          ENFORCE_APP_CHECK: 'yes',
        }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const text = err.problems.join('\n');
        assert.match(text, /MESSAGES_PER_MINUTE="0": must be at least 1/);
        assert.match(text, /MAX_MESSAGE_CHARS="2000000": must be at most 100000/);
        assert.match(text, /RUNNER_URL="ftp:\/\/runner": must be an http\(s\) URL/);
        assert.match(text, /CORS_ORIGINS=.*origins/);
        assert.match(text, /ENFORCE_APP_CHECK="yes"/);
        return true;
      },
    );
  });

  test('a run cap whose path does not fit the function timeout is refused, naming both values', () => {
    assert.throws(
      () => loadConfig({ RUN_TIMEOUT_MS: '90000' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /RUN_TIMEOUT_MS=90000/);
        assert.match(err.message, /FUNCTION_TIMEOUT_S=120/);
        return true;
      },
    );
    assert.equal(loadConfig({ RUN_TIMEOUT_MS: '80000' }).runTimeoutMs, 80_000);
  });
});

describe('configuration refused at start', () => {
  /** A logger that keeps its lines, for assertions. */
  function memoryLog() {
    const lines: Array<{ severity: Severity; message: string; fields: Record<string, unknown> }> = [];
    const log = new Logger({
      write: (severity, message, fields) => lines.push({ severity, message, fields }),
    });
    return { log, lines };
  }
  const tooLong = { RUN_TIMEOUT_MS: '90000' };

  test('an invalid configuration is logged once, naming both values, and every use is internal', () => {
    const { log, lines } = memoryLog();
    const cfg = instanceConfig(tooLong, log);
    for (let i = 0; i < 3; i++) {
      assert.throws(cfg, (err: unknown) => err instanceof InternalError && err.code === 'internal');
    }
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.severity, 'ERROR');
    const problems = JSON.stringify(lines[0]!.fields.problems);
    assert.match(problems, /RUN_TIMEOUT_MS=90000/);
    assert.match(problems, /FUNCTION_TIMEOUT_S=120/);
  });

  test('a valid configuration is read once per instance', () => {
    const env: Record<string, string> = { MESSAGES_PER_MINUTE: '7' };
    const cfg = instanceConfig(env, memoryLog().log);
    assert.equal(cfg().messagesPerMinute, 7);
    env.MESSAGES_PER_MINUTE = '0';
    assert.equal(cfg().messagesPerMinute, 7);
  });

  test('the runner secret is used only under the emulators and never echoed', () => {
    assert.equal(loadConfig({ RUNNER_TOKEN: 'tok' }).devRunnerToken, undefined);
    assert.equal(loadConfig({ RUNNER_TOKEN: 'tok', FUNCTIONS_EMULATOR: 'true' }).devRunnerToken, 'tok');
    assert.equal(loadConfig({ FUNCTIONS_EMULATOR: 'true' }).devRunnerToken, undefined);
    assert.throws(
      () => loadConfig({ RUNNER_TOKEN: 'tok-secret', MESSAGES_PER_MINUTE: '0' }),
      (err: unknown) => err instanceof ConfigError && !err.message.includes('tok-secret'),
    );
  });

  test('a callable of an instance with an invalid configuration answers internal', async () => {
    const fft = functionsTest();
    try {
      const { log, lines } = memoryLog();
      const callables = createCallables(instanceConfig(tooLong, log));
      const { logged } = await captureStderrAsync(async () => {
        await assert.rejects(
          fft.wrap(callables.sendMessage)({
            data: { message: 'hi' },
            auth: { uid: 'user-1', token: {} as DecodedIdToken, rawToken: 'unused' },
            rawRequest: {} as CallableRequest['rawRequest'],
            acceptsStreaming: false,
          }),
          (err: unknown) =>
            err instanceof HttpsError && err.code === 'internal' && err.message === 'internal error',
        );
      });
      assert.equal(lines.length, 1);
      assert.match(logged, /RUN_TIMEOUT_MS=90000/);
    } finally {
      fft.cleanup();
    }
  });

  test('the REST API of an instance with an invalid configuration answers 500 internal', async (t) => {
    const { log, lines } = memoryLog();
    const server = createApi(instanceConfig(tooLong, log)).listen(0, '127.0.0.1');
    t.after(() => server.close());
    await new Promise((r) => server.once('listening', r));
    const { port } = server.address() as AddressInfo;
    const { logged } = await captureStderrAsync(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/api/conversations`, {
        headers: { origin: 'http://127.0.0.1:5000' },
      });
      assert.equal(res.status, 500);
      assert.deepEqual(await res.json(), { error: { code: 'internal', message: 'internal error' } });
    });
    assert.equal(lines.length, 1);
    assert.match(logged, /FUNCTION_TIMEOUT_S=120/);
  });
});

describe('logs', () => {
  test('one structured line per message, with a hash of the user id and never the id itself', () => {
    const lines: Array<{ severity: string; message: string; fields: Record<string, unknown> }> = [];
    const log = new Logger({
      write: (severity, message, fields) => lines.push({ severity, message, fields }),
    });
    log.messageHandled({
      uid: 'alice-uid-123',
      conversationId: 'c1',
      messageId: 'm1',
      replyId: 'm2',
      runId: 'r1',
      status: 'ok',
      ms: 42,
      streamed: true,
      replay: false,
      warm: true,
    });
    assert.equal(lines.length, 1);
    const [line] = lines;
    assert.equal(line!.message, 'message handled');
    assert.equal(line!.fields.user, userHash('alice-uid-123'));
    assert.match(String(line!.fields.user), /^[0-9a-f]{16}$/);
    assert.ok(!JSON.stringify(line).includes('alice-uid-123'));
    assert.deepEqual(
      { ...line!.fields, user: undefined },
      {
        user: undefined,
        conversationId: 'c1',
        messageId: 'm1',
        replyId: 'm2',
        runId: 'r1',
        status: 'ok',
        ms: 42,
        streamed: true,
        replay: false,
        warm: true,
      },
    );
  });

  test("a refused ID token is logged by firebase-admin's code only, never the token or its message", () => {
    const lines: Array<{ message: string; fields: Record<string, unknown> }> = [];
    const log = new Logger({ write: (_s, message, fields) => lines.push({ message, fields }) });
    const err = Object.assign(new Error('Decoding failed for token eyJsecret'), {
      code: 'auth/argument-error',
    });
    log.tokenRejected('GET /api/conversations', err);
    assert.deepEqual(lines[0]!.fields, { route: 'GET /api/conversations', code: 'auth/argument-error' });
    assert.ok(!JSON.stringify(lines).includes('eyJsecret'));
  });
});

describe('storable replies and bounded history', () => {
  test('a table with rows of cells is kept; rows as arrays of arrays are dropped with a note', () => {
    const table = { type: 'table', columns: ['a'], rows: [{ cells: ['1'] }] };
    assert.deepEqual(storableReply('hi', table), { text: 'hi', component: table, dropped: null });
    const old = storableReply('hi', { type: 'table', columns: ['a'], rows: [['1']] });
    assert.equal(old.component, null);
    assert.equal(old.text, 'hi\n\n[The agent\'s "table" component could not be shown.]');
    assert.match(old.dropped ?? '', /^table: rows\.0/);
    const unknown = storableReply('hi', { type: 'chart', points: [[1, 2]] });
    assert.equal(unknown.component, null);
    assert.match(unknown.text, /"chart" component could not be shown/);
  });

  test('a reply over STORED_TEXT_MAX_BYTES is cut at a character boundary, with a note', () => {
    const text = 'é'.repeat(STORED_TEXT_MAX_BYTES); // two bytes each
    const r = storableReply(text, null);
    assert.ok(Buffer.byteLength(r.text) <= STORED_TEXT_MAX_BYTES);
    assert.match(r.text, /^é+\n\n\[The reply was longer than can be stored; it was cut here\.\]$/);
    assert.equal(cutUtf8('aé', 2), 'a', 'a split character is dropped, not mangled');
  });

  test('history keeps the newest entries that fit HISTORY_MAX_JSON_BYTES, oldest first', () => {
    const entries = Array.from({ length: 20 }, (_, i) => ({
      role: (i % 2 ? 'agent' : 'user') as 'user' | 'agent',
      text: `${i}:` + '"'.repeat(20_000), // escaping doubles each quote
    }));
    const kept = boundedHistory(entries);
    assert.ok(Buffer.byteLength(JSON.stringify(kept)) <= HISTORY_MAX_JSON_BYTES);
    assert.ok(kept.length > 0 && kept.length < 20);
    assert.deepEqual(
      kept.map((e) => e.text.split(':')[0]),
      entries.slice(20 - kept.length).map((e) => e.text.split(':')[0]),
    );
    const huge = boundedHistory([{ role: 'agent', text: '\u0001'.repeat(100_000) }]);
    assert.equal(huge.length, 1, 'an over-long newest entry is cut, not dropped');
    assert.ok(Buffer.byteLength(JSON.stringify(huge)) <= HISTORY_MAX_JSON_BYTES);
  });
});

describe('stored documents', () => {
  const conversation = { title: 't', messageCount: 2, nextSeq: 2, lastMessagePreview: 'p', createdAt: null };
  test('a document that matches its schema is read, unknown fields dropped', () => {
    const problems: string[] = [];
    const doc = readDoc(conversationDocSchema, { data: () => ({ ...conversation, extra: 1 }) }, (p) =>
      problems.push(p),
    );
    assert.deepEqual(doc, { ...conversation, updatedAt: null });
    assert.deepEqual(problems, []);
  });

  test('one that does not is null, with its first problem named', () => {
    const problems: string[] = [];
    const doc = readDoc(conversationDocSchema, { data: () => ({ ...conversation, nextSeq: 'x' }) }, (p) =>
      problems.push(p),
    );
    assert.equal(doc, null);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^nextSeq: /);
    assert.equal(
      readDoc(conversationDocSchema, { data: () => undefined }, () => undefined),
      null,
      'a missing document is not a conversation',
    );
  });
});

describe('rate windows', () => {
  test('counts up to the limit in a minute, then refuses with the seconds to wait', () => {
    let w = takeOne(null, 1_000, 2, 'things');
    assert.deepEqual(w, { windowStartMs: 1_000, count: 1 });
    w = takeOne(w, 2_000, 2, 'things');
    assert.deepEqual(w, { windowStartMs: 1_000, count: 2 });
    assert.throws(
      () => takeOne(w, 31_000, 2, 'things'),
      (err: unknown) =>
        err instanceof RateLimitedError &&
        err.retryAfterSeconds === 30 &&
        err.message === 'at most 2 things per minute; try again in 30 s',
    );
    assert.deepEqual(takeOne(w, 61_000, 2, 'things'), { windowStartMs: 61_000, count: 1 }, 'a new window');
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
