import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RunGate, type RunShare } from '../src/concurrency/run-gate.ts';
import { OverloadedError, ShareFullError } from '../src/errors.ts';

/** The gate's fair shares (issue 18): one address, and anonymous accounts, hold part of the slots. */
const limits = {
  maxConcurrent: 4,
  maxQueued: 16,
  maxQueuedPerUser: 2,
  retryAfterSeconds: 5,
  queueTimeoutMs: 10_000,
  maxRunningPerAddress: 2,
  maxRunningAnonymous: 3,
};
const from = (addressKey: string | null, anonymous = false): RunShare => ({ addressKey, anonymous });
const tick = () => new Promise((r) => setImmediate(r));

describe('run gate: fair shares', () => {
  test('four accounts of one address hold two slots; a user of another address runs at once', async () => {
    const gate = new RunGate(limits);
    const got: string[] = [];
    const held = await Promise.all([
      gate.acquire('a1', undefined, from('aaaa0001')),
      gate.acquire('a2', undefined, from('aaaa0001')),
    ]);
    const waiting = ['a3', 'a4'].map((u) =>
      gate.acquire(u, undefined, from('aaaa0001')).then((r) => (got.push(u), r)),
    );
    await tick();
    assert.equal(gate.running, 2, 'the address holds its share only');
    assert.equal(gate.waiting, 2);
    const other = await gate.acquire('b1', undefined, from('bbbb0002'));
    assert.equal(gate.running, 3);
    other();
    assert.deepEqual(got, [], "another address's run ending gives the address no more than its share");
    held[0]!();
    await tick();
    assert.deepEqual(got, ['a3'], 'one of its own ending lets its next waiter in, in order');
    held[1]!();
    const rest = await Promise.all(waiting);
    assert.deepEqual(got, ['a3', 'a4']);
    rest.forEach((r) => r());
    assert.equal(gate.running, 0);
    assert.equal(gate.waiting, 0);
  });

  test('a waiter held back by its share does not hold back a later one that fits', async () => {
    const gate = new RunGate({ ...limits, maxConcurrent: 3 });
    const a = await Promise.all([
      gate.acquire('a1', undefined, from('aaaa0001')),
      gate.acquire('a2', undefined, from('aaaa0001')),
    ]);
    const a3 = gate.acquire('a3', undefined, from('aaaa0001'));
    const b = await gate.acquire('b1', undefined, from('bbbb0002'));
    assert.equal(gate.running, 3);
    // Full: b2 waits behind a3. When b1 ends, the slot goes to b2 (a3's address is at its share).
    let b2Ran = false;
    const b2 = gate.acquire('b2', undefined, from('bbbb0002')).then((r) => ((b2Ran = true), r));
    b();
    (await b2)();
    assert.ok(b2Ran);
    a.forEach((r) => r());
    (await a3)();
    assert.equal(gate.running, 0);
  });

  test('anonymous accounts share their part of the slots, whatever their addresses', async () => {
    const gate = new RunGate(limits);
    const anon = await Promise.all(
      ['n1', 'n2', 'n3'].map((u, i) => gate.acquire(u, undefined, from(`cccc000${i}`, true))),
    );
    let fourthRan = false;
    const fourth = gate.acquire('n4', undefined, from('cccc0009', true)).then((r) => ((fourthRan = true), r));
    const signedIn = await gate.acquire('s1', undefined, from('dddd0001'));
    await tick();
    assert.equal(fourthRan, false, 'a fourth anonymous run waits although a slot was free');
    assert.equal(gate.running, 4);
    signedIn();
    anon[0]!();
    (await fourth)();
    anon.slice(1).forEach((r) => r());
    assert.equal(gate.running, 0);
  });

  test('a run kept waiting by its share is refused with a retryable 429 that says why', async () => {
    const gate = new RunGate({ ...limits, queueTimeoutMs: 30 });
    const held = await Promise.all([
      gate.acquire('a1', undefined, from('aaaa0001')),
      gate.acquire('a2', undefined, from('aaaa0001')),
    ]);
    await assert.rejects(gate.acquire('a3', undefined, from('aaaa0001')), (err: unknown) => {
      assert.ok(err instanceof ShareFullError);
      assert.equal(err.code, 'share_full');
      assert.equal(err.share, 'address');
      assert.equal(err.retryAfterSeconds, 5);
      assert.match(err.message, /runs from its address held their share of this runner \(2 at once\)/);
      return true;
    });
    const anon = new RunGate({ ...limits, queueTimeoutMs: 30, maxRunningAnonymous: 1 });
    const n1 = await anon.acquire('n1', undefined, from(null, true));
    await assert.rejects(
      anon.acquire('n2', undefined, from(null, true)),
      (err: unknown) =>
        err instanceof ShareFullError &&
        err.share === 'anonymous' &&
        /anonymous accounts held their share of this runner \(1 at once\)/.test(err.message),
    );
    // Waiting for a slot that none frees (not for a share) is the plain overload.
    const full = new RunGate({ ...limits, maxConcurrent: 1, queueTimeoutMs: 30 });
    const f1 = await full.acquire('f1');
    await assert.rejects(full.acquire('f2', undefined, from('eeee0001')), OverloadedError);
    f1();
    n1();
    held.forEach((r) => r());
    assert.equal(gate.running, 0);
    assert.equal(gate.waiting, 0);
  });

  test('runs of unknown whom share nothing but the global cap', async () => {
    const gate = new RunGate(limits);
    const all = await Promise.all(['u1', 'u2', 'u3', 'u4'].map((u) => gate.acquire(u)));
    assert.equal(gate.running, 4);
    all.forEach((r) => r());
    assert.equal(gate.running, 0);
  });
});
