import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { startFakeGoogle, type FakeGoogle } from './helpers/fake-google.ts';
import { AGENT_IMAGE, MAIN, docker, postRun, sandboxIds, uniqueId } from './helpers/runner-process.ts';
import { TestRunner, withRunner } from './helpers/with-runner.ts';

const AUDIENCE = 'https://runner.example.test';
const INVOKER = 'functions-invoker@demo-agent-platform.iam.gserviceaccount.com';
const UNAUTH_BODY = { error: { code: 'unauthenticated', message: 'authentication required' } };

let google: FakeGoogle;
const runner = new TestRunner();

before(async () => {
  google = await startFakeGoogle({ audience: AUDIENCE, email: INVOKER });
  await runner.start({
    RUNNER_AUDIENCE: AUDIENCE,
    RUNNER_ALLOWED_INVOKERS: `someone-else@example.com, ${INVOKER}`,
    RUNNER_OIDC_CERTS_URL: google.certsUrl,
    MAX_MESSAGE_CHARS: '1000',
    RUN_TIMEOUT_MS: '20000',
  });
});

after(async () => {
  try {
    await runner.close(); // no sandbox container may outlive its run
  } finally {
    await google.close();
  }
});

const validBody = () => ({ userId: uniqueId('u'), conversationId: 'c1', message: 'hello' });

async function post(
  path: string,
  init: { auth?: string; body?: string; contentType?: string; method?: string },
) {
  const headers: Record<string, string> = { 'content-type': init.contentType ?? 'application/json' };
  if (init.auth !== undefined) headers.authorization = init.auth;
  const res = await fetch(`${runner.url}${path}`, {
    method: init.method ?? 'POST',
    headers,
    body: init.body,
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

const run = (auth: string | undefined, body: unknown = validBody()) =>
  post('/v1/runs', { ...(auth !== undefined ? { auth } : {}), body: JSON.stringify(body) });

describe('open endpoints', () => {
  test('GET /healthz answers without auth', async () => {
    const res = await fetch(`${runner.url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok', service: 'runner', runnerId: runner.runnerId });
  });

  test('GET /readyz is 200 when the engine and the agent image are there; details only with auth', async () => {
    const res = await fetch(`${runner.url}/readyz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ready' }, 'an anonymous caller learns nothing more');
    const authed = await fetch(`${runner.url}/readyz`, {
      headers: { authorization: `Bearer ${runner.token}` },
    });
    assert.equal(authed.status, 200);
    const body = (await authed.json()) as { status: string; agentImage: string; runtime: string };
    assert.equal(body.status, 'ready');
    assert.equal(body.agentImage, AGENT_IMAGE);
    assert.equal(typeof body.runtime, 'string');
    const wrong = await fetch(`${runner.url}/readyz`, {
      headers: { authorization: 'Bearer wrong-token-123456' },
    });
    assert.deepEqual(await wrong.json(), { status: 'ready' }, 'a wrong token gets the anonymous answer');
  });

  test('SANDBOX_RUNTIME=auto runs sandboxes under runsc when the engine has it, else runc, and logs the choice', async () => {
    const info = (await docker.info()) as { Runtimes?: Record<string, unknown> };
    const expected = 'runsc' in (info.Runtimes ?? {}) ? 'runsc' : 'runc';
    await withRunner({ SANDBOX_RUNTIME: 'auto', WARM_IDLE_TTL_MS: '60000' }, async (other) => {
      const chosen = other.logs
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { message?: string; runtime?: string; requested?: string })
        .find((l) => l.message?.startsWith('sandboxes run under'));
      assert.deepEqual(
        { runtime: chosen?.runtime, requested: chosen?.requested },
        { runtime: expected, requested: 'auto' },
        'logged at start, before any run',
      );
      const readyz = await fetch(`${other.url}/readyz`, {
        headers: { authorization: `Bearer ${other.token}` },
      });
      assert.equal(((await readyz.json()) as { runtime: string }).runtime, expected);
      const user = uniqueId('auto');
      const { status, body } = await postRun(other, { userId: user, message: 'which runtime?' });
      assert.equal(status, 200);
      assert.equal(body.status, 'ok');
      const [id] = await sandboxIds(other.runnerId, user);
      assert.ok(id, 'the warm sandbox is there');
      const inspected = await docker.getContainer(id).inspect();
      assert.equal(inspected.HostConfig.Runtime, expected);
    });
  });

  test('GET /readyz is 503 with a reason when the agent image is missing', async () => {
    await withRunner({ AGENT_IMAGE: 'agent-platform/does-not-exist:never' }, async (other) => {
      const res = await fetch(`${other.url}/readyz`);
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), { status: 'unavailable' });
      const authed = await fetch(`${other.url}/readyz`, {
        headers: { authorization: `Bearer ${other.token}` },
      });
      assert.equal(authed.status, 503);
      const body = (await authed.json()) as { reason: string };
      assert.match(body.reason, /does-not-exist/);
      const r = await fetch(`${other.url}/v1/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${other.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(validBody()),
      });
      assert.equal(r.status, 503);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'not_ready');
    });
  });
});

describe('metrics', () => {
  test('GET /metrics needs authentication and counts runs, warm hits, sandboxes, queue and Docker calls', async () => {
    const anonymous = await fetch(`${runner.url}/metrics`);
    assert.equal(anonymous.status, 401);
    const userId = uniqueId('u');
    for (let i = 0; i < 2; i++) {
      const r = await run(`Bearer ${runner.token}`, { userId, conversationId: 'c', message: `m${i}` });
      assert.equal(r.status, 200);
    }
    const res = await fetch(`${runner.url}/metrics`, {
      headers: { authorization: `Bearer ${runner.token}` },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      assert.ok(line, `no ${series} in:\n${text}`);
      return Number(line.slice(series.length + 1));
    };
    assert.ok(value('runner_runs_total{status="ok"}') >= 2);
    assert.ok(value('runner_warm_total{result="miss"}') >= 1);
    assert.ok(value('runner_run_duration_seconds_count') >= 2);
    assert.ok(
      value('runner_docker_call_duration_seconds_count{call="creating a sandbox",outcome="ok"}') >= 1,
    );
    assert.equal(value('runner_queue_depth'), 0);
    assert.equal(value('runner_runs_running'), 0);
    assert.equal(value('runner_sandboxes{state="busy"}'), 0);
    assert.ok(value('runner_sandboxes{state="idle"}') >= 0);
    assert.match(text, /^# TYPE runner_docker_call_errors_total counter$/m);
  });
});

describe('authentication', () => {
  test('a Google-signed ID token of an allowed invoker runs the request', async () => {
    const res = await run(`Bearer ${google.idToken()}`);
    assert.equal(res.status, 200);
    const body = res.json as { status: string; text: string };
    assert.equal(body.status, 'ok');
    assert.equal(body.text, 'Test response: hello');
  });

  test('the shared secret runs the request', async () => {
    const res = await run(`Bearer ${runner.token}`);
    assert.equal(res.status, 200);
  });

  const rejected: Array<[string, () => string | undefined]> = [
    ['no Authorization header', () => undefined],
    ['a non-Bearer scheme', () => `Basic ${Buffer.from('a:b').toString('base64')}`],
    ['an empty Bearer', () => 'Bearer '],
    ['a malformed token', () => 'Bearer not.a.jwt!'],
    ['two tokens', () => `Bearer ${runner.token} ${runner.token}`],
    ['an expired token', () => `Bearer ${google.idToken({ iat: now() - 7200, exp: now() - 3600 })}`],
    ['a token for another audience', () => `Bearer ${google.idToken({ aud: 'https://other.example.test' })}`],
    ['a token from another issuer', () => `Bearer ${google.idToken({ iss: 'https://evil.example.test' })}`],
    ['a token of an email not allowed', () => `Bearer ${google.idToken({ email: 'intruder@example.com' })}`],
    ['a token whose email is not verified', () => `Bearer ${google.idToken({ email_verified: false })}`],
    ['a token without email', () => `Bearer ${google.idToken({ email: undefined })}`],
    ['a token with a bad signature', () => `Bearer ${google.sign(claims(), { key: google.otherKey })}`],
    ['a token with an unknown key id', () => `Bearer ${google.sign(claims(), { kid: 'unknown-kid' })}`],
    [
      'a token with its payload altered after signing',
      () => {
        const [h, , s] = google.idToken().split('.');
        const forged = Buffer.from(JSON.stringify({ ...claims(), email: INVOKER, admin: true })).toString(
          'base64url',
        );
        return `Bearer ${h}.${forged}.${s}`;
      },
    ],
    ['an unsigned token (alg none)', () => `Bearer ${unsigned(claims())}`],
    ['a wrong shared secret', () => `Bearer ${runner.token.slice(0, -1)}x`],
    ['a prefix of the shared secret', () => `Bearer ${runner.token.slice(0, 16)}`],
  ];
  for (const [name, header] of rejected) {
    test(`401 without detail for ${name}`, async () => {
      const res = await run(header());
      assert.equal(res.status, 401);
      assert.deepEqual(res.json, UNAUTH_BODY);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
    });
  }

  test('DELETE workspace needs authentication too', async () => {
    const res = await post(`/v1/users/${uniqueId('u')}/workspace`, { method: 'DELETE' });
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, UNAUTH_BODY);
  });

  test('the log records a reason code for a rejected token, never the token or its payload', async () => {
    const token = google.idToken({ aud: 'https://wrong-audience.example.test' });
    const [, payload] = token.split('.');
    await run(`Bearer ${token}`);
    const logs = runner.logs.join('\n');
    assert.match(logs, /"message":"authentication rejected","[^}]*"reason":"id_token_rejected"/);
    assert.ok(!logs.includes(token), 'a token must never be logged');
    assert.ok(!logs.includes(payload!), "the token's payload must never be logged");
    assert.ok(!logs.includes('wrong-audience.example.test'), "nothing of the token's claims is logged");
    assert.ok(!logs.includes(runner.token), 'the shared secret must never be logged');
  });
});

describe('bad requests get 400 naming the field', () => {
  const auth = () => `Bearer ${runner.token}`;

  test("a fleet's routing header naming another user is refused; the same user is served, and the result names the runner", async () => {
    const body = validBody();
    const headers = (user: string) => ({
      authorization: auth(),
      'content-type': 'application/json',
      'x-agent-user': user,
    });
    const bad = await fetch(`${runner.url}/v1/runs`, {
      method: 'POST',
      headers: headers('someone-else'),
      body: JSON.stringify(body),
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { field: string } }).error.field, 'userId');
    const warm = await fetch(`${runner.url}/v1/users/${body.userId}/warm`, {
      method: 'POST',
      headers: headers('someone-else'),
    });
    assert.equal(warm.status, 400);
    const ok = await fetch(`${runner.url}/v1/runs`, {
      method: 'POST',
      headers: headers(body.userId),
      body: JSON.stringify(body),
    });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { runnerId: string }).runnerId, runner.runnerId);
  });
  const cases: Array<[string, () => unknown, string | null, string]> = [
    ['a missing userId', () => ({ conversationId: 'c', message: 'm' }), 'userId', 'invalid_request'],
    [
      'a numeric userId',
      () => ({ userId: 42, conversationId: 'c', message: 'm' }),
      'userId',
      'invalid_request',
    ],
    [
      'a userId with a path',
      () => ({ userId: '../etc', conversationId: 'c', message: 'm' }),
      'userId',
      'invalid_request',
    ],
    ['a missing conversationId', () => ({ userId: 'u', message: 'm' }), 'conversationId', 'invalid_request'],
    ['a missing message', () => ({ userId: 'u', conversationId: 'c' }), 'message', 'invalid_request'],
    ['an empty message', () => ({ ...validBody(), message: '' }), 'message', 'invalid_request'],
    ['a blank message', () => ({ ...validBody(), message: ' \n\t ' }), 'message', 'invalid_request'],
    [
      'a message over the limit',
      () => ({ ...validBody(), message: 'x'.repeat(1001) }),
      'message',
      'invalid_request',
    ],
    [
      'a message of the wrong type',
      () => ({ ...validBody(), message: ['hi'] }),
      'message',
      'invalid_request',
    ],
    [
      'a malformed history',
      () => ({ ...validBody(), history: [{ role: 'system', text: 'x' }] }),
      'history.0.role',
      'invalid_request',
    ],
    ['a timeout above the cap', () => ({ ...validBody(), timeoutMs: 20001 }), 'timeoutMs', 'invalid_request'],
    ['a fractional timeout', () => ({ ...validBody(), timeoutMs: 1500.5 }), 'timeoutMs', 'invalid_request'],
    ['a JSON array', () => [validBody()], null, 'invalid_request'],
  ];
  for (const [name, body, field, code] of cases) {
    test(name, async () => {
      const res = await run(auth(), body());
      assert.equal(res.status, 400);
      const err = (res.json as { error: { code: string; field?: string; message: string } }).error;
      assert.equal(err.code, code);
      if (field) {
        assert.equal(err.field, field);
        assert.ok(err.message.startsWith(`${field}:`), err.message);
      }
    });
  }

  test('invalid JSON', async () => {
    const res = await post('/v1/runs', { auth: auth(), body: '{"userId": "u",' });
    assert.equal(res.status, 400);
    assert.equal((res.json as { error: { code: string } }).error.code, 'invalid_json');
  });

  test('a body that is not JSON', async () => {
    const res = await post('/v1/runs', { auth: auth(), body: 'hello', contentType: 'text/plain' });
    assert.equal(res.status, 400);
    assert.match((res.json as { error: { message: string } }).error.message, /JSON/);
  });

  test('an oversized body gets 413', async () => {
    const res = await run(auth(), { ...validBody(), message: 'x'.repeat(300 * 1024) });
    assert.equal(res.status, 413);
    assert.equal((res.json as { error: { code: string } }).error.code, 'body_too_large');
  });

  test('DELETE workspace with an invalid user id', async () => {
    const res = await post('/v1/users/bad%20id/workspace', { auth: auth(), method: 'DELETE' });
    assert.equal(res.status, 400);
    assert.equal((res.json as { error: { field: string } }).error.field, 'userId');
  });

  test('an unknown route is 404 once authenticated', async () => {
    const res = await post('/v1/nothing', { auth: auth(), body: '{}' });
    assert.equal(res.status, 404);
  });

  test('after all the bad requests the runner still serves', async () => {
    const res = await run(auth());
    assert.equal(res.status, 200);
    assert.equal((res.json as { status: string }).status, 'ok');
  });
});

describe('start-up configuration', () => {
  const start = (env: Record<string, string>) =>
    spawnSync(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
      timeout: 15_000,
    });

  test('refuses to start with no authentication configured', () => {
    const r = start({ PORT: '0' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no authentication configured/);
  });

  test('names each bad variable and hides secret values', () => {
    const r = start({ PORT: 'eighty', RUN_TIMEOUT_MS: '5', RUNNER_TOKEN: 'short-secret' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /PORT="eighty": must be a number/);
    assert.match(r.stderr, /RUN_TIMEOUT_MS="5": must be at least 1000/);
    assert.match(r.stderr, /RUNNER_TOKEN=\(hidden\): must be at least 16 characters/);
    assert.ok(!r.stderr.includes('short-secret'));
  });

  test('an audience without allowed invokers is refused', () => {
    const r = start({ RUNNER_AUDIENCE: AUDIENCE });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /RUNNER_ALLOWED_INVOKERS/);
  });
});

function now(): number {
  return Math.floor(Date.now() / 1000);
}

function claims(): Record<string, unknown> {
  return {
    iss: 'https://accounts.google.com',
    aud: AUDIENCE,
    email: INVOKER,
    email_verified: true,
    iat: now(),
    exp: now() + 3600,
  };
}

function unsigned(c: Record<string, unknown>): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(c)}.`;
}
