/**
 * The pool's state machine (busy, idle, freezing, frozen, retiring) over in-memory sandboxes: every
 * transition, without Docker. Timers are short; waits are polls bounded well under a second.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '../src/logs.ts';
import { SandboxPool, type PoolLimits } from '../src/sandbox/sandbox-pool.ts';
import { InMemorySandbox } from './helpers/in-memory-backend.ts';

const LIMITS: PoolLimits = {
  idleTtlMs: 60_000,
  maxWarm: 16,
  maxLifetimeMs: 3_600_000,
  freezeAfterMs: 60_000,
};

function setup(limits: Partial<PoolLimits> = {}) {
  const logs: string[] = [];
  const pool = new SandboxPool({ ...LIMITS, ...limits }, new Logger({ write: (line) => logs.push(line) }));
  let n = 0;
  /** A new sandbox of `userId`, in the pool (busy). */
  const create = (userId: string) =>
    pool.create(`r${++n}`, async () => new InMemorySandbox(`mem-${n}`, userId, `r${n}`, 4096));
  const retired = (reason: string) => logs.some((l) => l.includes('sandbox removed') && l.includes(reason));
  return { pool, create, logs, retired };
}

async function eventually(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (check()) return;
    await sleep(5);
  }
  assert.fail(`timed out waiting for ${what}`);
}

const mem = (s: unknown) => s as InMemorySandbox;

describe('sandbox pool: states and transitions', () => {
  test('created -> busy -> idle (release) -> busy (take, no thaw needed) -> idle', async () => {
    const { pool, create } = setup();
    const s = mem(await create('u'));
    assert.equal(pool.stateOf(s), 'busy');
    assert.deepEqual(pool.counts(), { busy: 1, idle: 0, frozen: 0 });
    assert.equal(pool.hasSandbox('u'), true);
    await pool.release(s);
    assert.equal(pool.stateOf(s), 'idle');
    assert.deepEqual(pool.counts(), { busy: 0, idle: 1, frozen: 0 });
    assert.equal(await pool.take('u'), s);
    assert.equal(pool.stateOf(s), 'busy');
    assert.equal(await pool.take('u'), null, 'a busy sandbox is not handed out twice');
    await pool.release(s);
    assert.equal(pool.stateOf(s), 'idle');
    assert.equal(await pool.take('other'), null, "never another user's");
  });

  test('idle -> freezing -> frozen after freezeAfterMs; take thaws it', async () => {
    const { pool, create } = setup({ freezeAfterMs: 10 });
    const s = mem(await create('u'));
    await pool.release(s);
    assert.equal(pool.stateOf(s), 'idle');
    await eventually('frozen', () => pool.stateOf(s) === 'frozen');
    assert.equal(s.frozen, true);
    assert.deepEqual(pool.counts(), { busy: 0, idle: 1, frozen: 1 });
    assert.equal(await pool.take('u'), s);
    assert.equal(s.frozen, false);
    assert.equal(pool.stateOf(s), 'busy');
  });

  test('freezing -> busy: a take while the freeze is in flight waits for it, then thaws', async () => {
    const { pool, create } = setup({ freezeAfterMs: 0 });
    const s = mem(await create('u'));
    await pool.release(s);
    assert.equal(pool.stateOf(s), 'freezing');
    assert.deepEqual(pool.counts(), { busy: 0, idle: 1, frozen: 1 }, 'counted frozen while freezing');
    assert.equal(await pool.take('u'), s);
    assert.equal(s.freezes, 1);
    assert.equal(s.frozen, false);
    assert.equal(pool.stateOf(s), 'busy', 'the late end of the freeze does not move it');
  });

  test('freezing -> retiring: a sandbox that does not freeze is removed', async () => {
    const { pool, create, retired } = setup({ freezeAfterMs: 0 });
    const s = mem(await create('u'));
    s.freezeError = new Error('pause timed out');
    await pool.release(s);
    await eventually('removed', () => s.destroyed && pool.stateOf(s) === null);
    assert.ok(retired('did not freeze'));
    assert.equal(pool.hasSandbox('u'), false);
    assert.equal(await pool.take('u'), null);
  });

  test('a freeze that fails while a take waits for it: the take gets none, the sandbox is removed', async () => {
    const { pool, create, retired } = setup({ freezeAfterMs: 0 });
    const s = mem(await create('u'));
    s.freezeError = new Error('pause timed out');
    await pool.release(s);
    assert.equal(await pool.take('u'), null);
    assert.equal(s.destroyed, true);
    assert.ok(retired('did not freeze'));
  });

  test('frozen -> busy -> retiring: a sandbox that does not thaw is removed, the take gets none', async () => {
    const { pool, create, retired } = setup({ freezeAfterMs: 0 });
    const s = mem(await create('u'));
    await pool.release(s);
    await eventually('frozen', () => pool.stateOf(s) === 'frozen');
    s.thawError = new Error('unpause timed out');
    assert.equal(await pool.take('u'), null);
    assert.equal(s.destroyed, true);
    assert.equal(pool.stateOf(s), null);
    assert.ok(retired('did not thaw'));
  });

  test('idle -> retiring on expiry, and frozen -> retiring on expiry', async () => {
    const { pool, create, retired } = setup({ idleTtlMs: 30, freezeAfterMs: 0 });
    const frozen = mem(await create('a'));
    await pool.release(frozen);
    await eventually('frozen', () => frozen.frozen);
    const warm = setup({ idleTtlMs: 30 });
    const idle = mem(await warm.create('b'));
    await warm.pool.release(idle);
    await eventually('both expired', () => retired('idle expiry') && warm.retired('idle expiry'));
    assert.ok(frozen.destroyed && idle.destroyed);
    assert.deepEqual(pool.counts(), { busy: 0, idle: 0, frozen: 0 });
  });

  test('a busy sandbox does not expire, and its expiry timer is gone once taken', async () => {
    const { pool, create } = setup({ idleTtlMs: 30 });
    const s = mem(await create('u'));
    await pool.release(s);
    assert.equal(await pool.take('u'), s);
    await sleep(60);
    assert.equal(s.destroyed, false);
    assert.equal(pool.stateOf(s), 'busy');
  });

  test('busy -> retiring: unhealthy, warm reuse off, or past its lifetime', async () => {
    const sick = setup();
    const a = mem(await sick.create('u'));
    a.markUnhealthy('broken');
    await sick.pool.release(a);
    assert.equal(a.destroyed, true);
    assert.ok(sick.retired('unhealthy'));

    const off = setup({ idleTtlMs: 0 });
    assert.equal(off.pool.enabled, false);
    const b = mem(await off.create('u'));
    await off.pool.release(b);
    assert.equal(b.destroyed, true);
    assert.ok(off.retired('warm reuse off'));

    const old = setup({ maxLifetimeMs: 20 });
    const c = mem(await old.create('u'));
    await sleep(30);
    await old.pool.release(c);
    assert.equal(c.destroyed, true);
    assert.ok(old.retired('lifetime reached'));
  });

  test('an OOM kill while resting replaces the sandbox at its next take; one while busy at its release', async () => {
    const { pool, create, retired } = setup();
    const s = mem(await create('u'));
    await pool.release(s);
    s.oomKillChild();
    assert.equal(await pool.take('u'), null);
    assert.equal(s.destroyed, true);
    assert.ok(retired('out of memory after its run'));

    const t = mem(await create('v'));
    t.oomKillChild();
    await pool.release(t);
    assert.equal(t.destroyed, true);
    assert.equal(t.unhealthyReason(), 'out of memory');
  });

  test('an OOM kill before the sandbox entered the pool does not count against it', async () => {
    const { pool } = setup();
    const s = new InMemorySandbox('mem-x', 'u', 'r', 4096);
    s.oomKillChild();
    await pool.create('r', async () => s);
    await pool.release(s);
    assert.equal(await pool.take('u'), s);
  });

  test('resting -> retiring by eviction: beyond maxWarm the least recently used goes, and evict(n) removes n', async () => {
    const { pool, create, retired } = setup({ maxWarm: 2 });
    const a = mem(await create('a'));
    const b = mem(await create('b'));
    const c = mem(await create('c'));
    await pool.release(a);
    await pool.release(b);
    assert.equal(await pool.take('a'), a);
    await pool.release(a); // a is now more recent than b
    await pool.release(c);
    await eventually('b evicted', () => b.destroyed && retired('evicted'));
    assert.equal(pool.idleCount, 2);
    assert.equal(await pool.evict(5, 'host memory low'), 2);
    assert.ok(a.destroyed && c.destroyed);
    assert.equal(await pool.evict(1, 'host memory low'), 0);
  });

  test('discard removes a resting sandbox, never a busy one', async () => {
    const { pool, create, retired } = setup();
    const s = mem(await create('u'));
    await pool.discard('u', 'workspace deleted');
    assert.equal(s.destroyed, false, 'busy: left to its holder');
    await pool.release(s);
    await pool.discard('u', 'workspace deleted');
    assert.equal(s.destroyed, true);
    assert.ok(retired('workspace deleted'));
  });

  test('drain: every resting sandbox, frozen or not, is thawed, handed to `before`, then removed; busy ones stay', async () => {
    const { pool, create } = setup({ freezeAfterMs: 0 });
    const frozen = mem(await create('a'));
    await pool.release(frozen);
    await eventually('frozen', () => frozen.frozen);
    const freezing = mem(await create('b'));
    await pool.release(freezing); // its freeze is in flight
    const busy = mem(await create('c'));
    const warm = setup({ freezeAfterMs: 60_000 });
    const idle = mem(await warm.create('d'));
    await warm.pool.release(idle);
    const seen: string[] = [];
    const before = async (s: unknown) => {
      assert.equal(mem(s).frozen, false, 'handed over thawed');
      seen.push(mem(s).userId);
    };
    await Promise.all([pool.drain(before), warm.pool.drain(before)]);
    assert.deepEqual(seen.sort(), ['a', 'b', 'd']);
    assert.ok(frozen.destroyed && freezing.destroyed && idle.destroyed);
    assert.equal(busy.destroyed, false);
    assert.equal(pool.stateOf(busy), 'busy');
  });

  test('drain: a sandbox that does not thaw is removed without `before`', async () => {
    const { pool, create } = setup({ freezeAfterMs: 0 });
    const s = mem(await create('u'));
    await pool.release(s);
    await eventually('frozen', () => s.frozen);
    s.thawError = new Error('unpause timed out');
    let called = false;
    await pool.drain(async () => {
      called = true;
    });
    assert.equal(called, false);
    assert.equal(s.destroyed, true);
  });

  test('a second sandbox of the same user coming to rest replaces the first (a create abandoned by its client)', async () => {
    const { pool, create, retired } = setup();
    const late = mem(await create('u'));
    const current = mem(await create('u'));
    await pool.release(late);
    await pool.release(current);
    assert.equal(late.destroyed, true, 'the older one is removed, not forgotten');
    await eventually('logged', () => retired('replaced by a newer sandbox of its user'));
    assert.equal(await pool.take('u'), current);
  });

  test('release is a no-op for a sandbox that is not busy (given back twice, or retiring)', async () => {
    const { pool, create } = setup({ freezeAfterMs: 60_000 });
    const s = mem(await create('u'));
    await pool.release(s);
    await pool.release(s);
    assert.equal(pool.stateOf(s), 'idle');
    assert.equal(pool.idleCount, 1);
  });

  test('the reaper is told to spare the pooled sandboxes and the ones being created', async () => {
    const { pool, create } = setup();
    const s = mem(await create('u'));
    let release!: () => void;
    const creating = pool.create(
      'r-slow',
      () =>
        new Promise<InMemorySandbox>((resolve) => {
          release = () => resolve(new InMemorySandbox('mem-slow', 'v', 'r-slow', 4096));
        }),
    );
    assert.equal(pool.spares({ id: s.id, runId: null }), true);
    assert.equal(pool.spares({ id: 'mem-slow', runId: 'r-slow' }), true, 'being created');
    assert.equal(pool.spares({ id: 'orphan', runId: 'r-old' }), false);
    release();
    const slow = await creating;
    assert.equal(pool.spares({ id: slow.id, runId: 'r-slow' }), true, 'in the pool now');
    await pool.release(s);
    await pool.discard('u', 'gone');
    assert.equal(pool.spares({ id: s.id, runId: null }), false, 'removed');
  });

  test('a create that fails leaves nothing behind', async () => {
    const { pool } = setup();
    await assert.rejects(
      pool.create('r', () => Promise.reject(new Error('create failed'))),
      /create failed/,
    );
    assert.equal(pool.spares({ id: 'x', runId: 'r' }), false);
    assert.deepEqual(pool.counts(), { busy: 0, idle: 0, frozen: 0 });
  });
});
