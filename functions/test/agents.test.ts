/**
 * Agents that users create, and the model budgets, end to end: the real emulators (Auth,
 * Functions, Firestore, Hosting), the real runner on the real Docker engine, and the reference
 * LLM agent in the sandbox; the model provider is the only stand-in (runner/test/helpers/
 * fake-model.ts, real HTTP in OpenAI's wire format). This file owns the runner at
 * RUNNER_TEST_PORT while it runs (as integration.test.ts does), configured with that provider.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Docker from 'dockerode';
import type { DocumentReference } from 'firebase-admin/firestore';
import {
  AGENTS_LIST_MAX,
  AGENT_TOOLS,
  type AgentOutput,
  type AgentView,
  type GetConversationOutput,
  type ListModelsOutput,
  type SendResult,
  type UsageOutput,
} from '@agent-platform/contract';
import { adminDb, newUser, rest, type TestUser } from './helpers/stack.ts';
import { call, rejectsWith } from './helpers/callables.ts';
import { startRunner, type RunnerProcess } from '../../runner/test/helpers/runner-process.ts';
import { startFakeModel, type FakeModel } from '../../runner/test/helpers/fake-model.ts';

const PORT = process.env.RUNNER_TEST_PORT;
const TOKEN = process.env.RUNNER_TEST_TOKEN;
const RUNNER_ID = `${process.env.RUNNER_TEST_ID ?? 'functions-test'}-agents`;
const KEY = `sk-test-${'z'.repeat(32)}-functions`;
const docker = new Docker();

let runner: RunnerProcess;
let fake: FakeModel;
const users: TestUser[] = [];

async function user(): Promise<TestUser> {
  const u = await newUser();
  users.push(u);
  return u;
}

before(async () => {
  assert.ok(PORT && TOKEN, 'RUNNER_TEST_PORT and RUNNER_TEST_TOKEN must be set (scripts/test.sh does it)');
  fake = await startFakeModel();
  runner = await startRunner({
    PORT,
    RUNNER_TOKEN: TOKEN,
    RUNNER_ID,
    MODEL_BASE_URL: fake.baseUrl,
    MODEL_API_KEY: KEY,
    MODEL_ALLOWLIST: 'fake-small,fake-large',
    MODEL_DEFAULT: 'fake-small',
  });
});

after(async () => {
  await runner?.stop();
  await fake?.close();
  await Promise.all(users.map((u) => u.close()));
  const left = await docker.listContainers({
    all: true,
    filters: { label: [`dev.agent-platform.runner-id=${RUNNER_ID}`] },
  });
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
  assert.deepEqual(left, [], 'no sandbox outlives the tests');
});

const send = (u: TestUser, data: Record<string, unknown>) => call<SendResult>(u, 'sendMessage', data);

type Sent = { model: string; messages: Array<{ role: string; content?: string }> };
const agentCallsSince = (from: number): Sent[] =>
  fake.requests
    .slice(from)
    .filter((q) => typeof q.body === 'object' && q.body !== null && 'tools' in q.body)
    .map((q) => q.body as Sent);

describe('agents that users create', () => {
  test('create, list, update, delete, with bounded fields and clear errors; models come from the runner', async () => {
    const u = await user();
    const models = await call<ListModelsOutput>(u, 'listModels');
    assert.deepEqual(models, {
      configured: true,
      models: ['fake-small', 'fake-large'],
      default: 'fake-small',
    });

    const { agent } = await call<AgentOutput>(u, 'createAgent', {
      name: '  Poet ',
      description: 'writes verse',
      instructions: 'Answer in rhymes.',
      model: 'fake-large',
      tools: ['run_code'],
    });
    assert.equal(agent.name, 'Poet', 'trimmed');
    assert.equal(agent.model, 'fake-large');
    assert.deepEqual(agent.tools, ['run_code']);
    assert.equal(agent.conversationId, null);
    const { agent: plain } = await call<AgentOutput>(u, 'createAgent', { name: 'Plain' });
    assert.deepEqual(plain.tools, [...AGENT_TOOLS], 'all tools by default');
    assert.equal(plain.model, null, 'the default model');

    await rejectsWith(call(u, 'createAgent', { name: '' }), 'invalid-argument', 'name');
    await rejectsWith(
      call(u, 'createAgent', { name: 'x', model: 'gpt-expensive' }),
      'invalid-argument',
      'model',
    );
    await rejectsWith(call(u, 'createAgent', { name: 'x', tools: ['rm_rf'] }), 'invalid-argument', 'tools.0');
    await rejectsWith(
      call(u, 'createAgent', { name: 'x', tools: ['run_code', 'run_code'] }),
      'invalid-argument',
      'tools',
    );
    await rejectsWith(
      call(u, 'createAgent', { name: 'x', instructions: 'i'.repeat(20_001) }),
      'invalid-argument',
      'instructions',
    );
    await rejectsWith(call(u, 'createAgent', { name: 'x', extra: 1 }), 'invalid-argument');

    const { agent: updated } = await call<AgentOutput>(u, 'updateAgent', {
      agentId: agent.id,
      instructions: 'Answer in haiku.',
      model: null,
    });
    assert.equal(updated.instructions, 'Answer in haiku.');
    assert.equal(updated.model, null);
    assert.equal(updated.name, 'Poet', 'fields not given are kept');

    const listed = (await call<{ agents: AgentView[] }>(u, 'listAgents')).agents.map((a) => a.name);
    assert.deepEqual(listed, ['Plain', 'Poet'], 'newest first');

    // Another user's agent looks like no agent at all.
    const other = await user();
    await rejectsWith(call(other, 'updateAgent', { agentId: agent.id, name: 'Mine' }), 'not-found');
    await rejectsWith(call(other, 'deleteAgent', { agentId: agent.id }), 'not-found');
    await rejectsWith(send(other, { message: 'hi', agentId: agent.id }), 'not-found');

    assert.deepEqual(await call(u, 'deleteAgent', { agentId: plain.id }), { deleted: true });
    await rejectsWith(call(u, 'deleteAgent', { agentId: plain.id }), 'not-found');
  });

  test('the REST API: GET/POST /api/agents, PATCH and DELETE /api/agents/:id, GET /api/models and /api/usage', async () => {
    const u = await user();
    const created = await rest('POST', '/api/agents', { token: u.idToken, body: { name: 'Rest Bot' } });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    const id = (created.json.agent as AgentView).id;
    const patched = await rest('PATCH', `/api/agents/${id}`, {
      token: u.idToken,
      body: { description: 'via REST' },
    });
    assert.equal((patched.json.agent as AgentView).description, 'via REST');
    const bad = await rest('PATCH', `/api/agents/${id}`, { token: u.idToken, body: { tools: 'all' } });
    assert.equal(bad.status, 400);
    assert.equal((bad.json.error as { field: string }).field, 'tools');
    const list = await rest('GET', '/api/agents', { token: u.idToken });
    assert.deepEqual(
      (list.json.agents as AgentView[]).map((a) => a.id),
      [id],
    );
    assert.equal((await rest('GET', '/api/models', { token: u.idToken })).json.default, 'fake-small');
    const usage = await rest('GET', '/api/usage', { token: u.idToken });
    assert.equal(usage.json.inputTokens, 0);
    assert.equal((await rest('DELETE', `/api/agents/${id}`, { token: u.idToken })).status, 200);
    assert.equal((await rest('DELETE', `/api/agents/${id}`, { token: u.idToken })).status, 404);
    assert.equal((await rest('GET', '/api/agents')).status, 401);
  });

  test('a conversation with an agent: its instructions, model and tools reach the model; the conversation remembers it', async () => {
    const u = await user();
    const { agent } = await call<AgentOutput>(u, 'createAgent', {
      name: 'Counter',
      instructions: 'Count things with code.',
      model: 'fake-large',
      tools: ['run_code'],
    });
    const before = fake.requests.length;
    fake.agentScript.push(
      {
        toolCalls: [
          { name: 'run_code', arguments: JSON.stringify({ language: 'python', code: 'print(len("abcd"))' }) },
        ],
      },
      { text: 'There are 4.' },
    );
    const first = await send(u, { message: 'how many letters in abcd?', agentId: agent.id });
    assert.equal(first.status, 'ok', first.text);
    assert.match(first.text, /```output \(python\)\n4\n```\n\(exit 0\)\n\nThere are 4\.$/);
    const [call1] = agentCallsSince(before);
    assert.equal(call1!.model, 'fake-large');
    assert.match(call1!.messages[0]!.content!, /^You are Counter\. Count things with code\./);
    assert.equal(first.usage?.calls, 2);
    assert.equal(first.usage?.model, 'fake-large');

    // The next message needs no agentId: the conversation remembers its agent.
    const mid = fake.requests.length;
    fake.agentScript.push({ text: 'Still counting.' });
    const second = await send(u, { conversationId: first.conversationId, message: 'and now?' });
    assert.equal(second.text, 'Still counting.');
    assert.match(agentCallsSince(mid)[0]!.messages[0]!.content!, /^You are Counter\./);

    const conv = await call<GetConversationOutput>(u, 'getConversation', {
      conversationId: first.conversationId,
    });
    assert.equal(conv.conversation.agentId, agent.id);
    const replies = conv.messages.filter((m) => m.role === 'agent');
    assert.deepEqual(
      replies.map((m) => m.usage?.calls),
      [2, 1],
      'each reply stores its usage',
    );

    // Another agent cannot join it; a deleted agent ends it.
    const { agent: other } = await call<AgentOutput>(u, 'createAgent', { name: 'Other' });
    await rejectsWith(
      send(u, { conversationId: first.conversationId, message: 'x', agentId: other.id }),
      'invalid-argument',
      'agentId',
    );
    await call(u, 'deleteAgent', { agentId: agent.id });
    const gone = await rejectsWith(
      send(u, { conversationId: first.conversationId, message: 'x' }),
      'not-found',
    );
    assert.match(gone.message, /agent was deleted/);
  });
});

describe('the cap on agents', () => {
  test('a user may have at most AGENTS_LIST_MAX agents, made by hand or by a run', async () => {
    const u = await user();
    for (let i = 0; i < AGENTS_LIST_MAX; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, (_, k) => call(u, 'createAgent', { name: `agent ${i + k}` })),
      );
    }
    await rejectsWith(call(u, 'createAgent', { name: 'one too many' }), 'resource-exhausted');
    fake.agentScript.push(
      {
        toolCalls: [
          {
            name: 'create_agent',
            arguments: JSON.stringify({ name: 'From a run', description: '', instructions: '' }),
          },
        ],
      },
      { text: 'made one' },
    );
    const r = await send(u, { message: 'make an agent' });
    assert.equal(r.agentCreated, false, 'not stored past the cap');
    assert.match(
      r.text,
      /\[agent not created: you have the most agents allowed \(100\); delete one first\]$/,
      'the reply says so, after the agent\'s own "Created agent"',
    );
    const listed = (await call<{ agents: AgentView[] }>(u, 'listAgents')).agents;
    assert.equal(listed.length, AGENTS_LIST_MAX);
    assert.ok(!listed.some((a) => a.name === 'From a run'));
  });
});

describe('budgets and usage', () => {
  test("usage adds up per user per day; past the user's daily budget a model call is refused and the reply says why; another user is unaffected", async () => {
    const alice = await user();
    const bob = await user();
    // An operator's per-user budget (users/{uid}.tokensPerDay): 1500 tokens. Each of the agent's
    // calls costs 700 (scripted); before it is forwarded it reserves its prompt (about 500
    // tokens, estimated) and a cap, all within what is left of the day (issue 18).
    await adminDb().collection('users').doc(alice.uid).set({ tokensPerDay: 1_500 }, { merge: true });
    const before = fake.requests.length;
    const costly = { input: 600, output: 100 };

    fake.agentScript.push({ text: 'one', usage: costly });
    const r1 = await send(alice, { message: 'first' });
    assert.equal(r1.text, 'one');
    fake.agentScript.push({ text: 'two', usage: costly });
    const r2 = await send(alice, { message: 'second' });
    assert.equal(r2.text, 'two', 'the 800 tokens left admit a call whose prompt fits');
    const r3 = await send(alice, { message: 'third' });
    assert.equal(r3.status, 'error');
    assert.match(
      r3.text,
      /does not fit in what is left of the token budget of this run \(100 of 100 tokens\)/,
    );
    assert.equal(r3.usage?.exhausted, 'tokens');
    assert.equal(fake.requests.length - before, 2, 'the refused call never reached the provider');

    const usage = await call<UsageOutput>(alice, 'getUsage');
    assert.deepEqual(
      {
        calls: usage.calls,
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        tokensPerDay: usage.tokensPerDay,
      },
      { calls: 2, inputTokens: 1_200, outputTokens: 200, tokensPerDay: 1_500 },
    );
    const day = (
      await adminDb().collection('users').doc(alice.uid).collection('usage').doc(usage.day).get()
    ).data();
    assert.equal(day?.runs, 3);
    const aliceDoc = (await adminDb().collection('users').doc(alice.uid).get()).data();
    assert.deepEqual(aliceDoc?.tokenReservations ?? {}, {}, 'every reservation was released');

    // Bob's budget is his own.
    fake.agentScript.push({ text: 'bob is fine' });
    const b = await send(bob, { message: 'hello' });
    assert.equal(b.text, 'bob is fine');
    assert.equal((await call<UsageOutput>(bob, 'getUsage')).inputTokens, 7);
  });

  test('the provider key is in no Firestore document and no reply', async () => {
    const u = await user();
    fake.agentScript.push(
      {
        toolCalls: [
          {
            name: 'run_code',
            arguments: JSON.stringify({ language: 'sh', code: 'env; cat /proc/self/environ' }),
          },
        ],
      },
      { text: 'looked' },
    );
    const r = await send(u, { message: 'show me your environment' });
    assert.equal(r.status, 'ok');
    const docs: string[] = [];
    const walk = async (ref: DocumentReference): Promise<void> => {
      const snap = await ref.get();
      if (snap.exists) docs.push(JSON.stringify(snap.data()));
      for (const col of await ref.listCollections()) {
        for (const d of (await col.get()).docs) await walk(d.ref);
      }
    };
    await walk(adminDb().collection('users').doc(u.uid));
    assert.ok(docs.length >= 5, `documents read: ${docs.length}`);
    assert.ok(!docs.some((d) => d.includes(KEY)), 'the key is in no document');
    assert.ok(
      docs.some((d) => d.includes('sk-sandbox-placeholder')),
      'the sandbox saw only the placeholder',
    );
  });
});
