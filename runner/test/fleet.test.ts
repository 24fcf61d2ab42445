/**
 * A fleet on one machine (issue 11): three runner processes behind HAProxy from Debian, hashing
 * consistently on the user header, with workspaces in the Cloud Storage stand-in
 * (helpers/fleet.ts). Users stick to a runner, a fourth runner moves about a quarter of them (the
 * others keep their warm sandboxes), and a runner killed mid-life hands its users to the others
 * with their files.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RUNNER_USER_HEADER, type RunResult } from '@agent-platform/contract';
import { servedBy, startFleet, type Fleet } from './helpers/fleet.ts';
import { fence, outputBlocks, uniqueId, waitFor } from './helpers/runner-process.ts';

let fleet: Fleet;

async function run(userId: string, message: string): Promise<RunResult> {
  const res = await fetch(`${fleet.url}/v1/runs`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${fleet.token}`,
      'content-type': 'application/json',
      [RUNNER_USER_HEADER]: userId,
    },
    body: JSON.stringify({ userId, conversationId: 'c1', message }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as RunResult;
}

before(async () => {
  fleet = await startFleet(3);
});

// Nothing left behind: each runner is closed as a TestRunner (helpers/with-runner.ts).
after(() => fleet?.stop());

describe('a fleet of runners behind a consistent-hash balancer', () => {
  test('each user sticks to one runner; 200 users spread over all three', async (t) => {
    const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const first = await Promise.all(users.map((u) => servedBy(fleet.url, u)));
    const again = await Promise.all(users.map((u) => servedBy(fleet.url, u)));
    assert.deepEqual(again, first, 'the same runner every time');
    const counts = new Map<string, number>();
    for (const r of first) counts.set(r!, (counts.get(r!) ?? 0) + 1);
    t.diagnostic(`users per runner: ${[...counts.values()].join(', ')}`);
    assert.equal(counts.size, 3);
    for (const [runner, n] of counts) assert.ok(n >= 30, `${runner} serves ${n} of 200`);
  });

  test('a fourth runner moves 15-35% of 200 users; the others keep their warm sandboxes', async (t) => {
    const users = Array.from({ length: 200 }, (_, i) => `mover-${i}`);
    const sample = users.slice(0, 12);
    for (const u of sample) await run(u, fence('sh', `echo ${u} > me.txt; echo ok`));
    const before = await Promise.all(users.map((u) => servedBy(fleet.url, u)));
    const added = await fleet.addRunner();
    const after = await Promise.all(users.map((u) => servedBy(fleet.url, u)));
    const moved = users.filter((_, i) => after[i] !== before[i]);
    assert.ok(
      moved.every((u) => after[users.indexOf(u)] === added.runnerId),
      'users move only to the new runner',
    );
    const share = moved.length / users.length;
    t.diagnostic(`moved: ${moved.length} of 200`);
    assert.ok(share >= 0.15 && share <= 0.35, `${moved.length} of 200 moved`);
    for (const u of sample) {
      const r = await run(u, fence('sh', 'cat me.txt'));
      assert.equal(outputBlocks(r.text)[0]?.output, u, 'the files follow the user');
      assert.equal(r.warm, !moved.includes(u), `${u}: warm unless moved`);
      assert.equal(r.runnerId, after[users.indexOf(u)]);
    }
  });

  test('the runner serving a user is SIGKILLed: the next message reaches another runner, with the files', async () => {
    const userId = uniqueId('u');
    const first = await run(userId, fence('sh', 'echo survived > kept.txt; echo ok'));
    const victim = fleet.runners.find((r) => r.runnerId === first.runnerId)!;
    await victim.stop('SIGKILL');
    // The balancer's health check takes it out (two failed checks, 300 ms apart).
    await waitFor('moved', async () => {
      const now = await servedBy(fleet.url, userId);
      return now !== null && now !== victim.runnerId;
    });
    const next = await run(userId, fence('sh', 'cat kept.txt'));
    assert.notEqual(next.runnerId, victim.runnerId);
    assert.equal(next.warm, false);
    assert.equal(outputBlocks(next.text)[0]?.output, 'survived');
  });
});
