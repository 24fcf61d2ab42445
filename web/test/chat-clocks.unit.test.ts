/**
 * The chat's two timers (pure, no browser, mocked time): the lease clock that turns a pending
 * message "Not answered" when its lease ends, and the throttle on rendering a streamed reply.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LeaseClock, nextLeaseEndMs } from '../src/chat/lease-clock.ts';
import { RenderThrottle } from '../src/chat/render-throttle.ts';

const pending = (leaseExpiresAtMs: number | null) => ({ status: 'pending', leaseExpiresAtMs });

describe('the lease clock', () => {
  test('the next lease end is the first of the pending messages still running', () => {
    const messages = [
      { status: 'done', leaseExpiresAtMs: 1_500 },
      pending(900), // ended already: shown as not answered, nothing to wait for
      pending(3_000),
      pending(2_000),
      pending(null),
    ];
    assert.equal(nextLeaseEndMs(messages, 1_000), 2_000);
    assert.equal(nextLeaseEndMs(messages, 2_000), 3_000, 'a lease ending now has ended');
    assert.equal(nextLeaseEndMs(messages, 3_000), null);
    assert.equal(nextLeaseEndMs([], 0), null);
  });

  test('calls back just after the next lease ends; watching again replaces the wait; stop ends it', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let calls = 0;
    const clock = new LeaseClock(() => calls++);
    clock.watch([pending(1_000)], 0);
    t.mock.timers.tick(1_000);
    assert.equal(calls, 0, 'a little after the end, so the render reads it as ended');
    t.mock.timers.tick(50);
    assert.equal(calls, 1);

    clock.watch([pending(1_000)], 0);
    clock.watch([pending(5_000)], 0);
    t.mock.timers.tick(1_050);
    assert.equal(calls, 1, 'the earlier wait was replaced');
    t.mock.timers.tick(4_000);
    assert.equal(calls, 2);

    clock.watch([pending(1_000)], 0);
    clock.stop();
    t.mock.timers.tick(10_000);
    assert.equal(calls, 2);
  });

  test('a lease beyond setTimeout’s range waits the longest delay instead of firing at once', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let calls = 0;
    new LeaseClock(() => calls++).watch([pending(2 ** 32)], 0);
    t.mock.timers.tick(1_000);
    assert.equal(calls, 0);
    t.mock.timers.tick(2 ** 31);
    assert.equal(calls, 1);
  });
});

describe('the stream render throttle', () => {
  test('the first request renders at once, later ones at most once per interval, the last never lost', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    let renders = 0;
    const throttle = new RenderThrottle(
      () => renders++,
      50,
      () => Date.now(),
    );
    throttle.request();
    assert.equal(renders, 1);
    throttle.request();
    throttle.request();
    t.mock.timers.tick(49);
    assert.equal(renders, 1, 'folded into one render at the end of the interval');
    t.mock.timers.tick(1);
    assert.equal(renders, 2);
    t.mock.timers.tick(200);
    assert.equal(renders, 2, 'nothing requested, nothing rendered');
    throttle.request();
    assert.equal(renders, 3, 'after a quiet interval, at once again');
  });
});
