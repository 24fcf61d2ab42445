import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  assertFails,
  assertSucceeds,
  initializeTestEnvironment,
  type RulesTestContext,
  type RulesTestEnvironment,
} from '@firebase/rules-unit-testing';
import { setLogLevel } from 'firebase/firestore';

/**
 * firestore.rules on the real Firestore emulator (started by scripts/test.sh). A project id of
 * its own keeps these documents and rules away from the integration tests' project.
 */
const PROJECT_ID = 'demo-agent-platform-rules';
const [HOST, PORT] = (process.env.FIRESTORE_EMULATOR_HOST ?? '127.0.0.1:8080').split(':');

type Db = ReturnType<RulesTestContext['firestore']>;

// Each denied write would otherwise log a gRPC warning.
setLogLevel('error');

let env: RulesTestEnvironment;
let alice: Db;
let bob: Db;
let anon: Db;

const ALICE_CONV = 'users/alice/conversations/c-alice';
const ALICE_MSG = `${ALICE_CONV}/messages/m-alice`;
const ALICE_AGENT = 'users/alice/agents/a-alice';
const ALICE_REQUEST = 'users/alice/requests/req-alice-1';
const BOB_CONV = 'users/bob/conversations/c-bob';
const BOB_MSG = `${BOB_CONV}/messages/m-bob`;
const BOB_AGENT = 'users/bob/agents/a-bob';
const BOB_REQUEST = 'users/bob/requests/req-bob-1';

before(async () => {
  env = await initializeTestEnvironment({
    projectId: PROJECT_ID,
    firestore: {
      rules: readFileSync(new URL('../../firestore.rules', import.meta.url), 'utf8'),
      host: HOST ?? '127.0.0.1',
      port: Number(PORT ?? 8080),
    },
  });
  await env.clearFirestore();
  await env.withSecurityRulesDisabled(async (ctx) => {
    const db = ctx.firestore();
    for (const uid of ['alice', 'bob']) {
      await db.doc(`users/${uid}`).set({ rate: { windowStartMs: 1, count: 1 } });
      const conv = `users/${uid}/conversations/c-${uid}`;
      await db.doc(conv).set({ title: `${uid}'s chat`, messageCount: 1, lastMessagePreview: 'hi' });
      await db.doc(`${conv}/messages/m-${uid}`).set({ seq: 0, role: 'user', text: `hi from ${uid}` });
      await db.doc(`users/${uid}/agents/a-${uid}`).set({ name: `${uid}-agent`, conversationId: `c-${uid}` });
      await db.doc(`users/${uid}/requests/req-${uid}-1`).set({ state: 'done', conversationId: `c-${uid}` });
    }
    await db.doc('conversations/top-level').set({ title: 'outside users/' });
    await db.doc('config/app').set({ secret: 'x' });
  });
  alice = env.authenticatedContext('alice').firestore();
  bob = env.authenticatedContext('bob', { admin: true, email: 'bob@example.test' }).firestore();
  anon = env.unauthenticatedContext().firestore();
});

after(async () => {
  await env?.clearFirestore();
  await env?.cleanup();
});

describe("reads of one's own documents", () => {
  test('get own conversation, message, agent, request and user doc', async () => {
    const conv = await assertSucceeds(alice.doc(ALICE_CONV).get());
    assert.equal(conv.get('title'), "alice's chat");
    const msg = await assertSucceeds(alice.doc(ALICE_MSG).get());
    assert.equal(msg.get('text'), 'hi from alice');
    const agent = await assertSucceeds(alice.doc(ALICE_AGENT).get());
    assert.equal(agent.get('name'), 'alice-agent');
    const req = await assertSucceeds(alice.doc(ALICE_REQUEST).get());
    assert.equal(req.get('state'), 'done');
    const user = await assertSucceeds(alice.doc('users/alice').get());
    assert.equal(user.get('rate.count'), 1);
  });

  test('a missing own document reads as missing, not denied', async () => {
    const snap = await assertSucceeds(alice.doc('users/alice/conversations/nope').get());
    assert.equal(snap.exists, false);
  });

  test('list own conversations, messages and agents', async () => {
    const convs = await assertSucceeds(alice.collection('users/alice/conversations').get());
    assert.deepEqual(
      convs.docs.map((d) => d.id),
      ['c-alice'],
    );
    const msgs = await assertSucceeds(alice.collection(`${ALICE_CONV}/messages`).orderBy('seq').get());
    assert.deepEqual(
      msgs.docs.map((d) => d.get('text')),
      ['hi from alice'],
    );
    const agents = await assertSucceeds(alice.collection('users/alice/agents').get());
    assert.deepEqual(
      agents.docs.map((d) => d.id),
      ['a-alice'],
    );
  });
});

describe("another user's documents", () => {
  test('cross-user get is denied', async () => {
    for (const path of [BOB_CONV, BOB_MSG, BOB_AGENT, BOB_REQUEST, 'users/bob']) {
      await assertFails(alice.doc(path).get());
    }
    // Custom claims grant nothing either.
    for (const path of [ALICE_CONV, ALICE_MSG, ALICE_AGENT, 'users/alice']) {
      await assertFails(bob.doc(path).get());
    }
  });

  test("cross-user get of a missing document is denied (existence isn't revealed)", async () => {
    await assertFails(alice.doc('users/bob/conversations/does-not-exist').get());
  });

  test('cross-user list is denied', async () => {
    await assertFails(alice.collection('users/bob/conversations').get());
    await assertFails(alice.collection(`${BOB_CONV}/messages`).get());
    await assertFails(alice.collection('users/bob/agents').get());
    await assertFails(alice.collection('users/bob/requests').get());
    await assertFails(bob.collection(`${ALICE_CONV}/messages`).orderBy('seq').get());
  });

  test('listing all users is denied', async () => {
    await assertFails(alice.collection('users').get());
    await assertFails(alice.collection('users').where('rate.count', '>=', 0).get());
  });

  test('collection-group queries are denied', async () => {
    await assertFails(alice.collectionGroup('messages').get());
    await assertFails(alice.collectionGroup('conversations').get());
    await assertFails(alice.collectionGroup('agents').get());
    await assertFails(alice.collectionGroup('messages').where('role', '==', 'user').get());
  });
});

describe('unauthenticated reads', () => {
  test('are denied everywhere', async () => {
    for (const path of [ALICE_CONV, ALICE_MSG, ALICE_AGENT, ALICE_REQUEST, 'users/alice']) {
      await assertFails(anon.doc(path).get());
    }
    await assertFails(anon.collection('users/alice/conversations').get());
    await assertFails(anon.collection(`${ALICE_CONV}/messages`).get());
    await assertFails(anon.collection('users').get());
    await assertFails(anon.collectionGroup('messages').get());
  });
});

describe('client writes', () => {
  const own = [ALICE_CONV, ALICE_MSG, ALICE_AGENT, ALICE_REQUEST, 'users/alice'];

  test('create on own paths is denied', async () => {
    await assertFails(alice.doc('users/alice/conversations/new-conv').set({ title: 'mine' }));
    await assertFails(alice.doc(`${ALICE_CONV}/messages/new-msg`).set({ seq: 1, role: 'user', text: 'x' }));
    await assertFails(alice.collection(`${ALICE_CONV}/messages`).add({ seq: 1, role: 'agent', text: 'x' }));
    await assertFails(alice.doc('users/alice/agents/new-agent').set({ name: 'evil' }));
    await assertFails(alice.doc('users/alice/requests/new-request-1').set({ state: 'done' }));
    await assertFails(alice.doc('users/alice/anything/else').set({ x: 1 }));
  });

  test('update and set-over on own documents are denied', async () => {
    for (const path of own) {
      await assertFails(alice.doc(path).update({ tampered: true }));
      await assertFails(alice.doc(path).set({ tampered: true }, { merge: true }));
    }
    // The rate-limit counter in particular cannot be reset.
    await assertFails(alice.doc('users/alice').set({ rate: { windowStartMs: 0, count: 0 } }));
  });

  test('delete of own documents is denied', async () => {
    for (const path of own) {
      await assertFails(alice.doc(path).delete());
    }
  });

  test("writes to another user's documents are denied", async () => {
    await assertFails(alice.doc(BOB_CONV).update({ title: 'hacked' }));
    await assertFails(alice.doc(BOB_MSG).delete());
    await assertFails(alice.doc('users/bob/agents/planted').set({ name: 'evil' }));
    await assertFails(alice.doc('users/bob').set({ rate: { windowStartMs: 0, count: 999 } }));
  });

  test('unauthenticated writes are denied', async () => {
    await assertFails(anon.doc('users/alice/conversations/new').set({ title: 'x' }));
    await assertFails(anon.doc(ALICE_MSG).delete());
    await assertFails(anon.doc('users/alice').update({ x: 1 }));
  });

  test('writes to top-level collections are denied', async () => {
    await assertFails(alice.doc('conversations/new').set({ title: 'x' }));
    await assertFails(alice.collection('conversations').add({ title: 'x' }));
    await assertFails(alice.doc('conversations/top-level').update({ title: 'x' }));
    await assertFails(alice.doc('conversations/top-level').delete());
    await assertFails(alice.doc('alice/doc').set({ x: 1 }));
    await assertFails(anon.doc('config/app').set({ secret: 'y' }));
  });

  test('nothing was changed by the denied writes', async () => {
    await env.withSecurityRulesDisabled(async (ctx) => {
      const db = ctx.firestore();
      const conv = await db.doc(ALICE_CONV).get();
      assert.deepEqual(conv.data(), { title: "alice's chat", messageCount: 1, lastMessagePreview: 'hi' });
      assert.deepEqual((await db.doc('users/alice').get()).data(), { rate: { windowStartMs: 1, count: 1 } });
      assert.equal((await db.collection(`${ALICE_CONV}/messages`).get()).size, 1);
      assert.equal((await db.doc('users/alice/conversations/new-conv').get()).exists, false);
      assert.equal((await db.doc('conversations/new').get()).exists, false);
      assert.equal((await db.doc(BOB_CONV).get()).get('title'), "bob's chat");
    });
  });
});

describe('outside users/', () => {
  test('reads are denied, even of existing documents and for signed-in users', async () => {
    for (const db of [alice, bob, anon]) {
      await assertFails(db.doc('conversations/top-level').get());
      await assertFails(db.doc('config/app').get());
      await assertFails(db.collection('conversations').get());
      await assertFails(db.collection('config').get());
    }
    // A top-level collection named after a uid is not the user's either.
    await assertFails(alice.doc('alice/doc').get());
  });
});
