import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
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
  getConversationInputSchema as getConversationSchema,
  listConversationsInputSchema as listConversationsSchema,
  sendMessageInputSchema as sendMessageSchema,
} from '@agent-platform/contract';
import { parseInput } from '../src/http/parse-input.ts';
import { toHttpError, toHttpsError } from '../src/http/translate.ts';
import { sendMessage } from '../src/http/callables.ts';
import { createCallables } from '../src/http/create-callables.ts';
import { loadConfig } from '../src/config.ts';
import { captureStderr } from './helpers/stderr.ts';

/** Pure: input validation, error translation at the boundaries, and the callables offline. */

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
