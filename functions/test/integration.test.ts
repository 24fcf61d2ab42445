import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FirebaseError } from 'firebase/app';
import Docker from 'dockerode';
import {
  EMULATOR_APP_ID,
  emulatorAppCheckToken,
  FIRESTORE_CALL_TIMEOUT_MS,
  PENDING_LEASE_MS,
  SANDBOX_OPS_PER_MINUTE,
  type SendResult,
} from '@agent-platform/contract';
import { adminAuth, adminDb, appCheckHeader, newUser, rest, type TestUser } from './helpers/stack.ts';
import { rejectsWith } from './helpers/callables.ts';
import { pidsMatching, waitUntilReaped } from './helpers/processes.ts';
import { randomBytes } from 'node:crypto';
import { Timestamp } from 'firebase-admin/firestore';
import { loadConfig } from '../src/config.ts';
import { createServices, serviceLimits, type ServiceLimits, type Services } from '../src/services.ts';
import { RateLimitedError } from '../src/errors.ts';
import { RunnerClient } from '../src/runner/runner-client.ts';
import { Logger } from '../src/logs.ts';
import { startRunner, type RunnerProcess } from '../../runner/test/helpers/runner-process.ts';

/**
 * End to end on the real emulators (Auth, Functions, Firestore, Hosting) and the real runner on
 * the real Docker engine. scripts/test.sh starts the emulators with functions/.env.local pointing
 * RUNNER_URL at 127.0.0.1:$RUNNER_TEST_PORT; this file owns that runner process.
 */
const PORT = process.env.RUNNER_TEST_PORT;
const TOKEN = process.env.RUNNER_TEST_TOKEN;
const RUNNER_ID = process.env.RUNNER_TEST_ID ?? 'functions-test';
const docker = new Docker();

let runner: RunnerProcess;
let alice: TestUser;
let bob: TestUser;

async function startTestRunner(): Promise<RunnerProcess> {
  assert.ok(PORT && TOKEN, 'RUNNER_TEST_PORT and RUNNER_TEST_TOKEN must be set (scripts/test.sh does it)');
  // Cold sandboxes, as in the old system's scenario: a container per request, removed after it.
  return startRunner({
    PORT,
    RUNNER_TOKEN: TOKEN,
    RUNNER_ID,
    MAX_QUEUED_PER_USER: '4',
    WARM_IDLE_TTL_MS: '0',
    // Fixed rather than host-derived: the fair-share test counts on 4 slots, 2 per address.
    MAX_CONCURRENT_RUNS: '4',
  });
}

async function sandboxCountOf(uid: string): Promise<number> {
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`dev.agent-platform.runner-id=${RUNNER_ID}`, `dev.agent-platform.owner=${uid}`] },
  });
  return list.length;
}

async function waitForSandboxOf(uid: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await sandboxCountOf(uid)) === 0) {
    assert.ok(Date.now() < deadline, 'no sandbox appeared');
    await sleep(50);
  }
}

async function sandboxCount(): Promise<number> {
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`dev.agent-platform.runner-id=${RUNNER_ID}`, 'dev.agent-platform.kind=sandbox'] },
  });
  return list.length;
}

const extraUsers: TestUser[] = [];
/** A fresh signed-up user per test keeps each under the per-minute rate limit. */
async function user(): Promise<TestUser> {
  const u = await newUser();
  extraUsers.push(u);
  return u;
}

before(async () => {
  runner = await startTestRunner();
  [alice, bob] = await Promise.all([newUser(), newUser()]);
});

after(async () => {
  await runner?.stop();
  await Promise.all([alice?.close(), bob?.close(), ...extraUsers.map((u) => u.close())]);
  const vols = await docker.listVolumes({
    filters: { label: [`dev.agent-platform.runner-id=${RUNNER_ID}`] },
  });
  await Promise.all(
    (vols.Volumes ?? []).map((v) =>
      docker
        .getVolume(v.Name)
        .remove()
        .catch(() => undefined),
    ),
  );
  assert.equal(await sandboxCount(), 0, 'no sandbox outlives the tests');
});

const send = (u: TestUser, data: Record<string, unknown>) =>
  u
    .call<Record<string, unknown>, SendResult>('sendMessage')(data)
    .then((r) => r.data);

describe("the old system's verified scenario, through Hosting", () => {
  test('GET /health', async () => {
    const res = await rest('GET', '/health');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { status: 'ok', service: 'api-server' });
  });

  test('POST /api/conversation with a user token: reply, stored, container cleaned up', async () => {
    const res = await rest('POST', '/api/conversation', {
      token: alice.idToken,
      body: { message: 'Hello agent' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const body = res.json as unknown as SendResult;
    assert.equal(body.text, 'Test response: Hello agent');
    assert.equal(body.status, 'ok');
    assert.equal(body.component, null);
    assert.equal(body.agentCreated, false);
    assert.match(body.conversationId, /^[A-Za-z0-9]{20}$/);
    assert.equal(await sandboxCount(), 0);

    const db = adminDb();
    const conv = await db.doc(`users/${alice.uid}/conversations/${body.conversationId}`).get();
    assert.equal(conv.get('messageCount'), 2);
    assert.equal(conv.get('title'), 'Hello agent');
    const msgs = await conv.ref.collection('messages').orderBy('seq').get();
    assert.deepEqual(
      msgs.docs.map((d) => [d.get('role'), d.get('text'), d.get('status')]),
      [
        ['user', 'Hello agent', 'done'],
        ['agent', 'Test response: Hello agent', 'ok'],
      ],
    );
    assert.equal(msgs.docs[1]!.id, body.messageId);
    assert.ok(msgs.docs[1]!.get('runId'));
  });

  test('a token whose sessions were revoked is refused by the REST API', async () => {
    const u = await newUser();
    try {
      const before = await rest('GET', '/api/conversations', { token: u.idToken });
      assert.equal(before.status, 200);
      // Revocation is recorded in whole seconds: a token issued in the same second stays valid.
      await sleep(1100);
      await adminAuth().revokeRefreshTokens(u.uid);
      const after = await rest('GET', '/api/conversations', { token: u.idToken });
      assert.equal(after.status, 401);
      assert.equal((after.json as { error: { code: string } }).error.code, 'unauthenticated');
    } finally {
      await u.close();
    }
  });

  test('the old X-User-Id header grants nothing', async () => {
    const res = await rest('POST', '/api/conversation', {
      headers: { 'x-user-id': alice.uid },
      body: { message: 'hi' },
    });
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, { error: { code: 'unauthenticated', message: 'sign in first' } });
  });

  test('a forged token is rejected', async () => {
    const [h, p] = alice.idToken.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, user_id: bob.uid, sub: bob.uid })).toString('base64url')}.`;
    const viaRest = await rest('GET', '/api/conversations', { token: 'not-a-token' });
    assert.equal(viaRest.status, 401);
    const forgedRest = await rest('GET', '/api/conversations', { token: forged.replace(/\.$/, '.c2ln') });
    // The Auth emulator accepts unsigned tokens (alg none) by design, but not a token with a
    // signature that does not match; production verifies Google's signatures.
    assert.equal(forgedRest.status, 401);
  });
});

describe('callables', () => {
  test('unauthenticated calls are rejected', async () => {
    const res = await fetch(`http://127.0.0.1:5001/demo-agent-platform/us-central1/sendMessage`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ data: { message: 'hi' } }),
    });
    assert.equal(res.status, 401);
    const body = (await res.json()) as { error: { status: string } };
    assert.equal(body.error.status, 'UNAUTHENTICATED');
  });

  test('App Check is enforced (ENFORCE_APP_CHECK=true in the test stack): a signed-in call without a token is refused, callable and REST', async () => {
    const u = await user();
    const callable = (headers: Record<string, string>) =>
      fetch(`http://127.0.0.1:5001/demo-agent-platform/us-central1/listConversations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${u.idToken}`, ...headers },
        body: JSON.stringify({ data: {} }),
      });
    const without = await callable({});
    assert.equal(without.status, 401, 'no App Check token');
    const token = emulatorAppCheckToken('demo-agent-platform', EMULATOR_APP_ID, Date.now()).token;
    const withToken = await callable({ 'x-firebase-appcheck': token });
    assert.equal(withToken.status, 200, 'the same call with a token');

    const refused = await rest('GET', '/api/conversations', { token: u.idToken, appCheck: false });
    assert.equal(refused.status, 401);
    assert.deepEqual(refused.json, {
      error: {
        code: 'unauthenticated',
        message: 'a valid App Check token is required (X-Firebase-AppCheck header)',
      },
    });
    const garbage = await rest('GET', '/api/conversations', {
      token: u.idToken,
      appCheck: false,
      headers: { 'x-firebase-appcheck': 'not-a-token' },
    });
    assert.equal(garbage.status, 401);
    assert.equal((await rest('GET', '/api/conversations', { token: u.idToken })).status, 200);
  });

  test('a conversation that starts with code is titled by its first line of prose', async () => {
    const u = await user();
    const r = await send(u, { message: '```sh\necho hi\n```\nWhat does this print?' });
    const conv = await adminDb().doc(`users/${u.uid}/conversations/${r.conversationId}`).get();
    assert.equal(conv.get('title'), 'What does this print?');
  });

  test('sendMessage starts and continues a conversation; getConversation pages in order', async () => {
    const u = await user();
    const first = await send(u, { message: 'first' });
    const second = await send(u, { conversationId: first.conversationId, message: 'second' });
    assert.equal(second.conversationId, first.conversationId);
    assert.equal(second.text, 'Test response: second');
    const get = u.call<
      Record<string, unknown>,
      { messages: Array<{ role: string; text: string }>; nextCursor: string | null }
    >('getConversation');
    const page1 = (await get({ conversationId: first.conversationId, limit: 3 })).data;
    assert.deepEqual(
      page1.messages.map((m) => m.text),
      ['first', 'Test response: first', 'second'],
    );
    assert.ok(page1.nextCursor);
    const page2 = (await get({ conversationId: first.conversationId, limit: 3, cursor: page1.nextCursor }))
      .data;
    assert.deepEqual(
      page2.messages.map((m) => m.text),
      ['Test response: second'],
    );
    assert.equal(page2.nextCursor, null);
  });

  test('listConversations pages newest first', async () => {
    const u = await newUser();
    try {
      const a = await send(u, { message: 'conversation A' });
      const b = await send(u, { message: 'conversation B' });
      const list = u.call<
        Record<string, unknown>,
        { conversations: Array<{ id: string; title: string }>; nextCursor: string | null }
      >('listConversations');
      const p1 = (await list({ limit: 1 })).data;
      assert.deepEqual(
        p1.conversations.map((c) => c.id),
        [b.conversationId],
      );
      const p2 = (await list({ limit: 1, cursor: p1.nextCursor })).data;
      assert.deepEqual(
        p2.conversations.map((c) => c.id),
        [a.conversationId],
      );
      const p3 = (await list({ limit: 1, cursor: p2.nextCursor })).data;
      assert.deepEqual(p3.conversations, []);
    } finally {
      await u.close();
    }
  });

  test('a retry with the same requestId returns the first result and makes no second message or run', async () => {
    const u = await user();
    const requestId = `req-${Date.now()}-abcdef`;
    const before = await sandboxRuns();
    const [r1, r2] = await Promise.allSettled([
      send(u, { message: 'only once', requestId }),
      sleep(50).then(() => send(u, { message: 'only once', requestId })),
    ]);
    // The second may arrive while the first runs ("aborted", retry later) or after it.
    assert.equal(r1.status, 'fulfilled');
    const first = (r1 as PromiseFulfilledResult<SendResult>).value;
    if (r2.status === 'rejected') assert.equal((r2.reason as FirebaseError).code, 'functions/aborted');
    const again = await send(u, { message: 'only once', requestId });
    assert.deepEqual(again, first);
    const msgs = await adminDb()
      .collection(`users/${u.uid}/conversations/${first.conversationId}/messages`)
      .where('requestId', '==', requestId)
      .get();
    assert.equal(msgs.size, 2, 'one user message and one reply');
    assert.equal((await sandboxRuns()) - before, 1, 'exactly one run');
  });

  test('a requestId reused for another message or conversation is refused, not answered', async () => {
    const u = await user();
    const requestId = `reuse-${Date.now()}-abcdef`;
    const first = await send(u, { message: 'the first message', requestId });
    const other = await rejectsWith(send(u, { message: 'another message', requestId }), 'invalid-argument');
    assert.deepEqual((other as unknown as { details?: unknown }).details, { field: 'requestId' });
    assert.match(other.message, /^requestId: was already used for another message/);
    const elsewhere = await send(u, { message: 'elsewhere' });
    await rejectsWith(
      send(u, { message: 'the first message', requestId, conversationId: elsewhere.conversationId }),
      'invalid-argument',
    );
    // The same message in the same conversation is still a retry.
    assert.deepEqual(
      await send(u, { message: 'the first message', requestId, conversationId: first.conversationId }),
      first,
    );
  });

  test('an agent run that creates an agent', async () => {
    const u = await user();
    const r = await send(u, {
      message: '/create-agent Recipe Bot: Suggests recipes\nAsk about allergies first.',
    });
    assert.equal(r.agentCreated, true);
    assert.ok(r.agentId);
    const agents = (
      await u.call<undefined, { agents: Array<{ id: string; name: string; instructions: string }> }>(
        'listAgents',
      )()
    ).data.agents;
    const created = agents.find((a) => a.id === r.agentId);
    assert.equal(created?.name, 'Recipe Bot');
    assert.equal(created?.instructions, 'Ask about allergies first.');
  });

  test('a component reaches the client', async () => {
    const u = await user();
    const r = await send(u, { message: '/component card Weather: Sunny' });
    assert.deepEqual(r.component, { type: 'card', title: 'Weather', body: 'Sunny' });
  });

  test('a /component table reply is stored and replayed (it used to stay pending for ever)', async () => {
    // Issue 12: rows as arrays of arrays made Firestore refuse the reply; REST answered
    // `internal`, the message stayed pending and a retry said "still being processed" for ever.
    const u = await user();
    const requestId = `table-${Date.now()}-abcdef`;
    const body = { message: '/component table\nname,qty\napples,3\npears,5', requestId };
    const res = await rest('POST', '/api/conversation', { token: u.idToken, body });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const first = res.json as unknown as SendResult;
    assert.deepEqual(first.component, {
      type: 'table',
      columns: ['name', 'qty'],
      rows: [{ cells: ['apples', '3'] }, { cells: ['pears', '5'] }],
    });
    const msgs = await adminDb()
      .collection(`users/${u.uid}/conversations/${first.conversationId}/messages`)
      .orderBy('seq')
      .get();
    assert.deepEqual(
      msgs.docs.map((d) => d.get('status')),
      ['done', 'ok'],
    );
    assert.deepEqual(msgs.docs[1]!.get('component'), first.component);
    const again = await rest('POST', '/api/conversation', { token: u.idToken, body });
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, res.json, 'the retry replays the stored result');
  });

  test('a reply longer than a Firestore document is stored cut, with a note; the conversation goes on', async () => {
    // 17 code blocks of 64 KiB of output each: over 1 MiB of reply, more than a document holds.
    const u = await user();
    const blocks = Array.from({ length: 17 }, () => '```sh\nyes | head -c 65536\n```').join('\n');
    const requestId = `long-${Date.now()}-abcdef`;
    const r = await send(u, { message: blocks, requestId });
    assert.equal(r.status, 'ok');
    assert.ok(Buffer.byteLength(r.text) <= 512 * 1024, `${Buffer.byteLength(r.text)} bytes`);
    assert.match(r.text, /\[The reply was longer than can be stored; it was cut here\.\]$/);
    const stored = await adminDb()
      .doc(`users/${u.uid}/conversations/${r.conversationId}/messages/${r.messageId}`)
      .get();
    assert.equal(stored.get('text'), r.text);
    assert.deepEqual(await send(u, { message: blocks, requestId }), r, 'replayed, not pending');
    // The long reply is history now; the next message still fits the runner's body limit.
    const next = await send(u, { conversationId: r.conversationId, message: 'and now?' });
    assert.equal(next.status, 'ok');
    assert.equal(next.text, 'Test response: and now?');
  });

  test('a sandbox failure is a status, stored', async () => {
    const u = await user();
    const r = await send(u, {
      message: '```python\nx=[]\nwhile True: x.append(bytearray(50*1024*1024))\n```',
    });
    assert.equal(r.status, 'oom');
    const reply = await adminDb()
      .doc(`users/${u.uid}/conversations/${r.conversationId}/messages/${r.messageId}`)
      .get();
    assert.equal(reply.get('status'), 'oom');
  });

  test('deleteWorkspace wipes the caller’s files', async () => {
    const u = await newUser();
    try {
      const w = await send(u, { message: '```sh\necho data > f.txt\n```' });
      const del = await u.call<undefined, { deleted: boolean }>('deleteWorkspace')();
      assert.deepEqual(del.data, { deleted: true });
      const r = await send(u, { conversationId: w.conversationId, message: '```sh\ncat f.txt\n```' });
      assert.match(r.text, /No such file/);
    } finally {
      await u.close();
    }
  });

  test('warmSandbox starts the caller’s sandbox ahead of the first message', async () => {
    const u = await user();
    const warm = await u.call<undefined, { warm: boolean; created: boolean }>('warmSandbox')();
    // This stack's runner runs cold sandboxes (WARM_IDLE_TTL_MS=0), so warming is a no-op;
    // runner/test/warm.test.ts covers a runner that keeps sandboxes warm.
    assert.deepEqual(warm.data, { warm: false, created: false });
    await rejectsWith(u.call('warmSandbox')({ unexpected: 1 } as never), 'invalid-argument');
  });

  test('deleteConversation removes the conversation and all its messages', async () => {
    const u = await user();
    const r = await send(u, { message: 'to be deleted' });
    await u.call('deleteConversation')({ conversationId: r.conversationId });
    const db = adminDb();
    assert.equal((await db.doc(`users/${u.uid}/conversations/${r.conversationId}`).get()).exists, false);
    assert.equal(
      (await db.collection(`users/${u.uid}/conversations/${r.conversationId}/messages`).get()).size,
      0,
    );
    await rejectsWith(u.call('getConversation')({ conversationId: r.conversationId }), 'not-found');
  });
});

describe('streaming', () => {
  test('sendMessage with .stream(): text chunks, then the same result and stored messages', async () => {
    const u = await user();
    const message = 'stream me\n```sh\necho streamed-output\n```';
    const call = u.call<Record<string, unknown>, SendResult>('sendMessage');
    const { stream, data } = await call.stream({ message });
    const chunks: Array<{ type: string; delta: string }> = [];
    for await (const chunk of stream) chunks.push(chunk as { type: string; delta: string });
    const result = await data;
    assert.ok(chunks.length >= 2, `chunks: ${JSON.stringify(chunks)}`);
    assert.ok(chunks.every((c) => c.type === 'text'));
    assert.equal(chunks[0]!.delta, `Test response: ${message}`);
    assert.equal(chunks.map((c) => c.delta).join(''), result.text);
    assert.match(result.text, /streamed-output/);
    const stored = await adminDb()
      .collection(`users/${u.uid}/conversations/${result.conversationId}/messages`)
      .orderBy('seq')
      .get();
    assert.deepEqual(
      stored.docs.map((d) => [d.get('role'), d.get('text'), d.get('status')]),
      [
        ['user', message, 'done'],
        ['agent', result.text, 'ok'],
      ],
    );
  });

  test('POST /api/conversation with Accept: text/event-stream sends delta events, then the result', async () => {
    const u = await user();
    const res = await fetch('http://127.0.0.1:5000/api/conversation', {
      method: 'POST',
      headers: {
        ...appCheckHeader(),
        authorization: `Bearer ${u.idToken}`,
        'content-type': 'application/json',
        accept: 'text/event-stream',
      },
      body: JSON.stringify({ message: 'sse please' }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = (await res.text())
      .split('\n\n')
      .filter((b) => b.trim())
      .map((block) => {
        const name = /^event: (.+)$/m.exec(block)?.[1];
        const data = JSON.parse(/^data: (.+)$/m.exec(block)?.[1] ?? 'null') as Record<string, unknown>;
        return { name, data };
      });
    const last = events[events.length - 1]!;
    assert.equal(last.name, 'result');
    assert.equal(last.data.text, 'Test response: sse please');
    const deltas = events.filter((e) => e.name === 'delta').map((e) => e.data.delta as string);
    assert.equal(deltas.join(''), last.data.text);
    const conv = await adminDb()
      .doc(`users/${u.uid}/conversations/${last.data.conversationId as string}`)
      .get();
    assert.equal(conv.get('messageCount'), 2);
    const bad = await fetch('http://127.0.0.1:5000/api/conversation', {
      method: 'POST',
      headers: {
        ...appCheckHeader(),
        authorization: `Bearer ${u.idToken}`,
        'content-type': 'application/json',
        accept: 'text/event-stream',
      },
      body: JSON.stringify({ message: '' }),
    });
    assert.equal(bad.status, 400, 'errors before the first event are plain JSON');
  });
});

describe("user A cannot touch user B's conversations", () => {
  let bobsConversation: string;
  before(async () => {
    bobsConversation = (await send(bob, { message: 'bob private' })).conversationId;
  });

  test('callables: read, continue, delete all look like not-found', async () => {
    await rejectsWith(alice.call('getConversation')({ conversationId: bobsConversation }), 'not-found');
    await rejectsWith(send(alice, { conversationId: bobsConversation, message: 'hijack' }), 'not-found');
    await rejectsWith(alice.call('deleteConversation')({ conversationId: bobsConversation }), 'not-found');
    const list = (
      await alice.call<Record<string, unknown>, { conversations: Array<{ id: string }> }>(
        'listConversations',
      )({})
    ).data;
    assert.ok(!list.conversations.some((c) => c.id === bobsConversation));
  });

  test('REST: read, continue, delete all look like not-found', async () => {
    assert.equal(
      (await rest('GET', `/api/conversations/${bobsConversation}`, { token: alice.idToken })).status,
      404,
    );
    assert.equal(
      (
        await rest('POST', '/api/conversation', {
          token: alice.idToken,
          body: { conversationId: bobsConversation, message: 'x' },
        })
      ).status,
      404,
    );
    assert.equal(
      (await rest('DELETE', `/api/conversations/${bobsConversation}`, { token: alice.idToken })).status,
      404,
    );
    const own = await rest('GET', `/api/conversations/${bobsConversation}`, { token: bob.idToken });
    assert.equal(own.status, 200);
    const msgs = (own.json as { messages: Array<{ text: string }> }).messages;
    assert.deepEqual(
      msgs.map((m) => m.text),
      ['bob private', 'Test response: bob private'],
    );
  });
});

describe('bad input gets invalid-argument naming the field', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['missing message', {}, 'message'],
    ['empty message', { message: '' }, 'message'],
    ['blank message', { message: '   ' }, 'message'],
    ['message too long', { message: 'x'.repeat(8001) }, 'message'],
    ['message not a string', { message: 42 }, 'message'],
    ['conversationId with a slash', { message: 'hi', conversationId: 'a/b' }, 'conversationId'],
    ['requestId too short', { message: 'hi', requestId: 'abc' }, 'requestId'],
  ];
  for (const [name, data, field] of cases) {
    test(`sendMessage: ${name}`, async () => {
      const err = await rejectsWith(send(alice, data), 'invalid-argument');
      assert.equal((err as FirebaseError & { details?: { field?: string } }).details?.field, field);
    });
  }
  test('page sizes and cursors', async () => {
    await rejectsWith(alice.call('listConversations')({ limit: 0 }), 'invalid-argument');
    await rejectsWith(alice.call('listConversations')({ limit: 101 }), 'invalid-argument');
    await rejectsWith(alice.call('listConversations')({ cursor: 'garbage' }), 'invalid-argument');
    await rejectsWith(
      alice.call('getConversation')({ conversationId: 'x', limit: 'ten' }),
      'invalid-argument',
    );
    await rejectsWith(alice.call('getConversation')({}), 'invalid-argument');
  });
  test('REST: invalid JSON and an empty message', async () => {
    const bad = await rest('POST', '/api/conversation', { token: alice.idToken, body: '{"message":' });
    assert.equal(bad.status, 400);
    const empty = await rest('POST', '/api/conversation', { token: alice.idToken, body: { message: '' } });
    assert.equal(empty.status, 400);
    assert.equal((empty.json as { error: { field: string } }).error.field, 'message');
  });
  test('CORS: a configured origin is allowed, another is refused', async () => {
    const ok = await rest('OPTIONS', '/api/conversations', { headers: { origin: 'http://127.0.0.1:5000' } });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'http://127.0.0.1:5000');
    const evil = await rest('GET', '/api/conversations', {
      token: alice.idToken,
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(evil.status, 403);
  });
});

describe('limits and failures', () => {
  test('per-user rate limit: resource-exhausted beyond MESSAGES_PER_MINUTE', async () => {
    const u = await newUser();
    try {
      const limit = Number(process.env.MESSAGES_PER_MINUTE_TEST ?? 5);
      for (let i = 0; i < limit; i++) await send(u, { message: `m${i}` });
      const err = await rejectsWith(send(u, { message: 'one too many' }), 'resource-exhausted');
      assert.match(err.message, /messages per minute/);
    } finally {
      await u.close();
    }
  });

  test('deleting a Firebase account removes its workspace and all its documents', async () => {
    // Issue 12: every user's volume stayed for ever, deleted accounts included.
    const u = await newUser();
    try {
      const r = await send(u, { message: '```sh\necho kept > f.txt\n```' });
      assert.equal(r.status, 'ok');
      const volumes = async () =>
        (
          await docker.listVolumes({
            filters: {
              label: [`dev.agent-platform.runner-id=${RUNNER_ID}`, `dev.agent-platform.owner=${u.uid}`],
            },
          })
        ).Volumes ?? [];
      assert.equal((await volumes()).length, 1, 'the user has a workspace');
      await adminAuth().deleteUser(u.uid);
      const deadline = Date.now() + 20_000;
      let left = { volumes: 1, docs: 1 };
      while (Date.now() < deadline) {
        const conv = await adminDb().doc(`users/${u.uid}/conversations/${r.conversationId}`).get();
        const userDoc = await adminDb().doc(`users/${u.uid}`).get();
        left = { volumes: (await volumes()).length, docs: Number(conv.exists) + Number(userDoc.exists) };
        if (left.volumes === 0 && left.docs === 0) break;
        await sleep(200);
      }
      assert.deepEqual(left, { volumes: 0, docs: 0 }, 'the Auth trigger removed the workspace and documents');
    } finally {
      await u.close();
    }
  });

  test('warmSandbox and deleteWorkspace share a per-user limit of SANDBOX_OPS_PER_MINUTE', async () => {
    const u = await newUser();
    try {
      for (let i = 0; i < SANDBOX_OPS_PER_MINUTE - 1; i++) await u.call('warmSandbox')();
      await u.call('deleteWorkspace')();
      const e = await rejectsWith(u.call('warmSandbox')(), 'resource-exhausted');
      assert.match(e.message, /at most 10 sandbox warm-ups and workspace deletions per minute/);
      await rejectsWith(u.call('deleteWorkspace')(), 'resource-exhausted');
    } finally {
      await u.close();
    }
  });

  test('a function instance killed mid-run: its message is pending with a lease; past it, it reads as failed and a retry with its requestId runs it again, once', async () => {
    const u = await user();
    const requestId = randomBytes(16).toString('hex');
    const message = '```sh\nsleep 4; echo finished\n```';
    const t0 = Date.now();
    const killed = send(u, { message, requestId }).then(
      () => 'answered',
      () => 'failed',
    );
    await waitForSandboxOf(u.uid);
    // The Functions emulator runs each invocation in a worker process: kill the busy ones.
    const workers = pidsMatching(/functionsEmulatorRuntime/);
    assert.ok(workers.length > 0, 'found the emulator workers');
    for (const pid of workers) process.kill(pid, 'SIGKILL');
    assert.equal(await killed, 'failed', 'the caller gets an error, not a reply');
    // Idle workers were killed too. Until the emulator reaps one it still counts it idle and may
    // hand it the next request, which then fails with `internal` (a CI run hit this).
    await waitUntilReaped(workers, 10_000);

    const [conv] = (await adminDb().collection(`users/${u.uid}/conversations`).get()).docs;
    assert.ok(conv);
    const msgs = await conv.ref.collection('messages').get();
    assert.equal(msgs.size, 1);
    const msg = msgs.docs[0]!;
    assert.equal(msg.get('status'), 'pending', 'nobody stored an outcome');
    const lease = (msg.get('leaseExpiresAt') as Timestamp).toMillis();
    assert.ok(
      lease >= t0 + PENDING_LEASE_MS - 5_000 && lease <= Date.now() + PENDING_LEASE_MS,
      'leased for the function timeout',
    );
    const requestRef = adminDb().doc(`users/${u.uid}/requests/${requestId}`);
    assert.equal((await requestRef.get()).get('state'), 'pending');
    // While the lease runs, a retry is "in progress".
    await rejectsWith(send(u, { message, requestId, conversationId: conv.id }), 'aborted');

    // The clock passes the lease (rather than waiting 130 s): written as the sweep would see it.
    const past = Timestamp.fromMillis(Date.now() - 1_000);
    await msg.ref.update({ leaseExpiresAt: past });
    await requestRef.update({ leaseExpiresAt: past });
    const read = await u.call<unknown, { messages: Array<{ id: string; status: string }> }>(
      'getConversation',
    )({
      conversationId: conv.id,
    });
    assert.deepEqual(
      read.data.messages.map((m) => [m.id, m.status]),
      [[msg.id, 'failed']],
      'past its lease it reads as failed',
    );
    // Two retries at once: one runs it again (in the same message), the other is "in progress".
    const retries = await Promise.allSettled([
      send(u, { message, requestId, conversationId: conv.id }),
      send(u, { message, requestId, conversationId: conv.id }),
    ]);
    const answered = retries.filter((r) => r.status === 'fulfilled');
    assert.equal(answered.length, 1, JSON.stringify(retries.map((r) => r.status)));
    assert.equal((answered[0] as PromiseFulfilledResult<SendResult>).value.status, 'ok');
    const after = (await conv.ref.collection('messages').orderBy('seq').get()).docs;
    assert.deepEqual(
      after.map((d) => [d.get('role'), d.get('status')]),
      [
        ['user', 'done'],
        ['agent', 'ok'],
      ],
      'one message, one reply',
    );
    assert.equal((await requestRef.get()).get('state'), 'done');
    // And a third retry replays the stored result.
    const replayed = await send(u, { message, requestId, conversationId: conv.id });
    assert.equal(replayed.messageId, after[1]!.id);
  });

  test('the scheduled sweep marks expired pending messages and their requests failed, and nothing else', async () => {
    const u = await user();
    const db = adminDb();
    const conv = db.collection(`users/${u.uid}/conversations`).doc();
    await conv.set({
      title: 't',
      createdAt: null,
      updatedAt: null,
      messageCount: 2,
      nextSeq: 4,
      lastMessagePreview: '',
    });
    const base = { role: 'user', text: 'hi', component: null, runId: null, createdAt: null };
    const expired = conv.collection('messages').doc();
    const live = conv.collection('messages').doc();
    await expired.set({
      ...base,
      seq: 0,
      status: 'pending',
      requestId: 'req-expired-1',
      leaseExpiresAt: Timestamp.fromMillis(Date.now() - 1_000),
    });
    await live.set({
      ...base,
      seq: 2,
      status: 'pending',
      requestId: null,
      leaseExpiresAt: Timestamp.fromMillis(Date.now() + 60_000),
    });
    const request = db.doc(`users/${u.uid}/requests/req-expired-1`);
    await request.set({
      state: 'pending',
      conversationId: conv.id,
      userMessageId: expired.id,
      messageSha256: 'a'.repeat(64),
      askedConversationId: null,
      createdAt: null,
      leaseExpiresAt: Timestamp.fromMillis(Date.now() - 1_000),
    });
    const { sweep } = createServices(
      db,
      new RunnerClient({
        location: () => Promise.reject(new Error('the sweep does not call the runner')),
        timeoutMs: 1_000,
      }),
      { ...serviceLimits(loadConfig({})), messagesPerMinute: 5, runTimeoutMs: 30_000 },
      new Logger(),
    );
    const swept = await sweep.sweepExpiredLeases(Date.now());
    assert.ok(swept >= 1);
    assert.deepEqual(
      [(await expired.get()).get('status'), (await expired.get()).get('error')],
      ['failed', 'deadline-exceeded'],
    );
    assert.equal((await live.get()).get('status'), 'pending', 'a live lease is left alone');
    assert.equal((await request.get()).get('state'), 'failed');
    assert.equal(await sweep.sweepExpiredLeases(Date.now()), 0, 'a second sweep finds nothing');
  });

  test('the Firestore emulator stopped: callables answer unavailable within the database deadline, nothing is half-written', async () => {
    const u = await user();
    const firestore = pidsMatching(/firestore-emulator/);
    assert.ok(firestore.length > 0, 'found the Firestore emulator');
    const t0 = Date.now();
    for (const pid of firestore) process.kill(pid, 'SIGSTOP');
    let outcome: unknown;
    try {
      outcome = await rejectsWith(send(u, { message: 'is anyone there?' }), 'unavailable');
      await rejectsWith(u.call('listConversations')({}), 'unavailable');
    } finally {
      for (const pid of firestore) process.kill(pid, 'SIGCONT');
    }
    assert.ok(outcome);
    assert.ok(Date.now() - t0 < 2 * FIRESTORE_CALL_TIMEOUT_MS + 5_000, `answered in ${Date.now() - t0} ms`);
    assert.equal(await sandboxCountOf(u.uid), 0, 'the runner was never called');
    // The held transaction may land now: then whole (conversation and its pending, leased
    // message), never a conversation without its message.
    await sleep(1_000);
    const convs = await adminDb().collection(`users/${u.uid}/conversations`).get();
    for (const c of convs.docs) {
      const msgs = await c.ref.collection('messages').get();
      assert.equal(msgs.size, 1);
      assert.ok(msgs.docs[0]!.get('leaseExpiresAt'), 'a pending message always has its lease');
    }
    const next = await send(u, { message: 'and now?' });
    assert.equal(next.status, 'ok');
  });

  test('the runner stopped mid-way: a clear error and no pending message', async () => {
    const after = await user();
    const u = await newUser();
    try {
      const pending = send(u, { message: '```sh\nsleep 20\n```' });
      const deadline = Date.now() + 15_000;
      while ((await sandboxCount()) === 0 && Date.now() < deadline) await sleep(50);
      await runner.stop('SIGKILL');
      const failed = await rejectsWith(pending, 'unavailable');
      const convId = (failed as FirebaseError & { details?: { conversationId?: string } }).details
        ?.conversationId;
      const convs = await adminDb().collection(`users/${u.uid}/conversations`).get();
      assert.equal(convId, convs.docs[0]!.id, 'the error names the conversation that was stored');
      const msgs = await convs.docs[0]!.ref.collection('messages').get();
      assert.deepEqual(
        msgs.docs.map((d) => [d.get('role'), d.get('status')]),
        [['user', 'failed']],
      );
      // While the runner is down, a new message fails fast and cleanly too.
      await rejectsWith(send(u, { message: 'anyone there?' }), 'unavailable');
    } finally {
      runner = await startTestRunner(); // its start-up reaper removes the orphaned sandbox
      await u.close();
    }
    assert.equal(await sandboxCount(), 0);
    const r = await send(after, { message: 'back again' });
    assert.equal(r.status, 'ok');
  });
});

describe('fairness and workspace expiry', () => {
  /** The services in this process, on the emulators' Firestore and the test runner. */
  function localServices(limits: Partial<ServiceLimits> = {}): Services {
    return createServices(
      adminDb(),
      new RunnerClient({
        location: () => Promise.resolve({ url: `http://127.0.0.1:${PORT}`, audience: 'unused' }),
        timeoutMs: 60_000,
        devToken: TOKEN,
      }),
      { ...serviceLimits(loadConfig({})), messagesPerMinute: 5, runTimeoutMs: 30_000, ...limits },
      new Logger(),
    );
  }

  test('a user may have at most MAX_CONCURRENT_PER_USER (2) messages being answered; the next is resource-exhausted', async () => {
    const u = await user();
    const slow = (i: number) => send(u, { message: `slow ${i}\n\`\`\`sh\nsleep 4\n\`\`\`` });
    const first = slow(1);
    const second = slow(2);
    // Both admitted (the emulator may start a worker for the second a second later).
    const deadline = Date.now() + 15_000;
    for (;;) {
      const active = (await adminDb().doc(`users/${u.uid}`).get()).get('activeRuns') as object | undefined;
      if (Object.keys(active ?? {}).length === 2) break;
      assert.ok(Date.now() < deadline, 'two messages in flight');
      await sleep(50);
    }
    const e = await rejectsWith(send(u, { message: 'a third at once' }), 'resource-exhausted');
    assert.match(e.message, /at most 2 messages may be answered at once/);
    assert.equal((await first).status, 'ok');
    assert.equal((await second).status, 'ok');
    const after = await send(u, { message: 'and now one more' });
    assert.equal(after.status, 'ok', 'answered messages free their slot');
    const userDoc = await adminDb().doc(`users/${u.uid}`).get();
    assert.deepEqual(userDoc.get('activeRuns'), {}, 'nothing left counted as in flight');
  });

  test('four accounts of one address holding long runs do not block a user of another address', async () => {
    // Issue 18: four anonymous accounts each hold a run far longer than the runner's queue wait
    // (10 s); the runner has 4 slots. Before, they held all four and everyone else was told
    // "busy" after 10 s. Now their address holds its share (2), and the others find room.
    const service = localServices().send;
    const ip = `203.0.113.${Math.floor(Math.random() * 250) + 1}`; // TEST-NET-3: only a label here
    const holders = await Promise.all([user(), user(), user(), user()]);
    const ended: string[] = [];
    const holds = holders.map((u, i) =>
      service
        .sendMessage(u.uid, { message: `hold ${i}\n\`\`\`sh\nsleep 14\n\`\`\`` }, undefined, {
          ip,
          anonymous: true,
        })
        .then(
          (r) => (ended.push('holder'), { status: r.status }),
          (err: unknown) => (ended.push('holder'), { error: err }),
        ),
    );
    for (const deadline = Date.now() + 20_000; (await sandboxCount()) < 2; await sleep(100)) {
      assert.ok(Date.now() < deadline, 'the address got its two slots');
    }
    const other = await user();
    const answered = await service.sendMessage(other.uid, { message: 'hello from elsewhere' }, undefined, {
      ip: '198.51.100.23',
      anonymous: false,
    });
    ended.push('other');
    assert.equal(answered.status, 'ok');
    assert.equal(answered.text, 'Test response: hello from elsewhere');
    const outcomes = await Promise.all(holds);
    assert.equal(ended[0], 'other', 'answered while the four still held their runs');
    // Two ran; two waited for their share past the queue's 10 s and were told so, retryably.
    assert.equal(outcomes.filter((o) => 'status' in o && o.status === 'ok').length, 2);
    const refused = outcomes.flatMap((o) => ('error' in o ? [o.error] : []));
    assert.equal(refused.length, 2);
    for (const err of refused) {
      assert.ok(err instanceof RateLimitedError, String(err));
      assert.match(err.message, /messages from your network are using their share of the agent runner/);
      assert.ok(err.retryAfterSeconds > 0);
    }
  });

  test('a call that outlives its lease stores nothing once a retry took its message over', async () => {
    const service = localServices({ pendingLeaseMs: 1_500 }).send;
    const u = await user();
    const requestId = randomBytes(16).toString('hex');
    const message = '```sh\nsleep 3; echo slow\n```';
    const first = service.sendMessage(u.uid, { message, requestId }); // leased for 1.5 s, runs ~3 s
    await sleep(2_000);
    const second = await service.sendMessage(u.uid, { message, requestId }); // takes it over
    const late = await first; // answered by the runner, but no longer the owner
    const msgs = (
      await adminDb()
        .collection(`users/${u.uid}/conversations/${second.conversationId}/messages`)
        .orderBy('seq')
        .get()
    ).docs;
    assert.deepEqual(
      msgs.map((d) => [d.get('role'), d.get('status')]),
      [
        ['user', 'done'],
        ['agent', 'ok'],
      ],
      "one outcome: the retry's",
    );
    assert.equal(msgs[1]!.id, second.messageId);
    assert.notEqual(late.messageId, second.messageId, "the late call's reply was never stored");
    const request = await adminDb().doc(`users/${u.uid}/requests/${requestId}`).get();
    assert.equal((request.get('result') as { messageId: string }).messageId, second.messageId);
  });

  test('messages from one address are limited across accounts (IP_MESSAGES_PER_MINUTE); another address is not', async () => {
    const service = localServices({ ipMessagesPerMinute: 2 }).send;
    const ip = `203.0.113.${Math.floor(Math.random() * 250) + 1}`; // TEST-NET-3: only a label here
    const [a, b, c] = [await user(), await user(), await user()];
    assert.equal(
      (await service.sendMessage(a.uid, { message: 'one' }, undefined, { ip, anonymous: false })).status,
      'ok',
    );
    assert.equal(
      (await service.sendMessage(b.uid, { message: 'two' }, undefined, { ip, anonymous: false })).status,
      'ok',
    );
    await assert.rejects(
      service.sendMessage(c.uid, { message: 'three' }, undefined, { ip, anonymous: false }),
      (err: unknown) => {
        assert.ok(err instanceof RateLimitedError);
        assert.match(err.message, /at most 2 messages from your network per minute/);
        return true;
      },
    );
    const other = await service.sendMessage(c.uid, { message: 'three' }, undefined, {
      ip: '198.51.100.9',
      anonymous: false,
    });
    assert.equal(other.status, 'ok');
    const stored = (await adminDb().collection('ipWindows').get()).docs.map((d) => d.id);
    assert.ok(!stored.some((id) => id.includes('203.0.113')), 'only hashes of addresses are stored');
  });

  test('an idle workspace is deleted after WORKSPACE_IDLE_DAYS; an active one is kept; the user can go on', async () => {
    const service = localServices().workspaces;
    const idle = await user();
    const active = await user();
    const first = await send(idle, { message: '```sh\necho kept > f.txt\n```' });
    await send(active, { message: '```sh\necho mine > f.txt\n```' });
    const volumesOf = async (uid: string) =>
      ((await docker.listVolumes({ filters: { label: [`dev.agent-platform.owner=${uid}`] } })).Volumes ?? [])
        .length;
    assert.equal(await volumesOf(idle.uid), 1);
    // 40 days pass for one of them.
    await adminDb()
      .doc(`users/${idle.uid}`)
      .update({ lastActiveAt: Timestamp.fromMillis(Date.now() - 40 * 86_400_000) });
    const expired = await service.expireIdleWorkspaces(Date.now() - 30 * 86_400_000);
    assert.ok(expired >= 1);
    assert.equal(await volumesOf(idle.uid), 0, 'the idle workspace is gone');
    assert.equal(await volumesOf(active.uid), 1, 'the active one is kept');
    assert.equal((await adminDb().doc(`users/${idle.uid}`).get()).get('workspaceActive'), false);
    assert.equal(await service.expireIdleWorkspaces(Date.now() - 30 * 86_400_000), 0, 'each is expired once');
    const back = await send(idle, {
      conversationId: first.conversationId,
      message: '```sh\ncat f.txt || echo no file\n```',
    });
    assert.match(back.text, /no file/, 'the conversation goes on with an empty workspace');
    assert.equal((await adminDb().doc(`users/${idle.uid}`).get()).get('workspaceActive'), true);
  });
});

describe('stored documents are read through the contract', () => {
  test('an invalid conversation or agent is left out of lists and refused when opened or continued', async () => {
    const u = await newUser();
    try {
      const good = await send(u, { message: 'a valid conversation' });
      const db = adminDb();
      // Documents only the functions write, drifted from the contract (nextSeq missing, a count
      // that is a string, an agent without a name).
      await db.doc(`users/${u.uid}/conversations/broken`).set({
        title: 'broken',
        messageCount: 'two',
        lastMessagePreview: '',
        createdAt: new Date(),
        updatedAt: new Date(),
      });
      await db
        .doc(`users/${u.uid}/agents/broken`)
        .set({ description: '', instructions: '', createdAt: new Date() });
      const list = await u.call<Record<string, unknown>, { conversations: Array<{ id: string }> }>(
        'listConversations',
      )({});
      assert.deepEqual(
        list.data.conversations.map((c) => c.id),
        [good.conversationId],
      );
      await rejectsWith(u.call('getConversation')({ conversationId: 'broken' }), 'internal');
      await rejectsWith(send(u, { message: 'continue', conversationId: 'broken' }), 'internal');
      const agents = await u.call<undefined, { agents: unknown[] }>('listAgents')();
      assert.deepEqual(agents.data.agents, []);
    } finally {
      await u.close();
    }
  });
});

/** Runs counted from the runner's own log lines ("run finished"). */
async function sandboxRuns(): Promise<number> {
  await sleep(20);
  return runner.logs.filter((l) => l.includes('"run finished"')).length;
}
