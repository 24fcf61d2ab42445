import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import functionsTest from 'firebase-functions-test';
import { HttpsError, type CallableRequest } from 'firebase-functions/v2/https';
import type { DecodedIdToken } from 'firebase-admin/auth';
import { InternalError } from '../src/errors.ts';
import { createCallables } from '../src/http/create-callables.ts';
import { createApi } from '../src/http/api.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { instanceConfig } from '../src/instance-config.ts';
import { Logger, type Severity } from '../src/logs.ts';
import { captureStderrAsync } from './helpers/stderr.ts';

/** Pure: the functions' settings, checked once per instance, and an instance refused at start. */

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
