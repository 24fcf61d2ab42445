import assert from 'node:assert/strict';
import { test } from 'node:test';
import { soak } from './soak.ts';

/**
 * The short soak in npm test (issue 9): 6 users x 5 messages (the test stack allows 5 a minute)
 * through the whole local stack at concurrency 4, a timeout, a memory hog and an output flood
 * among them, the runner SIGKILLed and restarted midway. `npm run soak` is the long version.
 */
test('short soak: every message ends with exactly one reply or a failed status; nothing is left', async () => {
  const port = process.env.RUNNER_TEST_PORT;
  const token = process.env.RUNNER_TEST_TOKEN;
  assert.ok(port && token, 'RUNNER_TEST_PORT and RUNNER_TEST_TOKEN must be set (scripts/test.sh does it)');
  const report = await soak({
    users: 6,
    messages: 5,
    concurrency: 4,
    port,
    token,
    runnerId: process.env.RUNNER_TEST_ID ?? 'soak-test',
    log: () => undefined,
  });
  assert.deepEqual(report.violations, []);
  assert.equal(report.messagesSent, 30);
  const answered = Object.values(report.answered).reduce((a, b) => a + b, 0);
  const failed = Object.values(report.errors).reduce((a, b) => a + b, 0);
  assert.equal(answered + failed, 30, 'each send got an answer or an error');
  assert.ok(
    report.answered.timeout,
    `a run past the cap is a stored timeout: ${JSON.stringify(report.answered)}`,
  );
  assert.ok(report.runnerKilledAfter > 0, 'the runner was killed midway');
  assert.equal(report.leftContainers, 0);
  assert.equal(report.leftVolumes, 0);
});
