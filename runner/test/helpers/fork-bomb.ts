import assert from 'node:assert/strict';
import type { RunResult } from '@agent-platform/contract';
import { fence, GVISOR } from './runner-process.ts';

/** A bash fork bomb, as a message the default agent runs. */
export const FORK_BOMB = fence('bash', ':(){ :|:& };:');

/**
 * Under gVisor a fork bomb ends its sandbox by itself: the guest's processes fill the pids
 * cgroup until the sentry's own clone fails and it exits (code 2). Measured here (runsc
 * 2022-12-19, ptrace, pids limit 64, 2 cores), beside other helpers' work and again beside two
 * CPU hogs, with little difference between the two: warm sandbox 3.4-4.5 s; cold sandbox with
 * 0.5 CPU 7.7-9.0 s (the agent starts first); hostile.test.ts's cold one 4.5 s (its whole test
 * took 7.9 s, beside the hogs 11.6 s). A timeout below that ends the bomb first, honestly
 * reported as `timeout` (the bomb was still running), which is how 3 s in warm.test.ts failed
 * on a busy machine. So the bomb gets over twice the slowest, and the gVisor ending is asserted.
 */
const GVISOR_BOMB_BUDGET_MS = 20_000;

/**
 * The timeoutMs of a fork bomb's run: `runcMs` under runc, where the bomb never ends by itself
 * (forks fail with EAGAIN but the survivors retry) and the timeout is its ending; under gVisor
 * enough for the sandbox to end by itself.
 */
export function forkBombTimeoutMs(runcMs: number): number {
  return GVISOR ? GVISOR_BOMB_BUDGET_MS : runcMs;
}

/** Asserts how a fork bomb's run with `timeoutMs` (from forkBombTimeoutMs) ended on this runtime. */
export function assertForkBombEnded(result: RunResult, timeoutMs: number): void {
  if (GVISOR) {
    // The full cgroup fails the sentry's own clone and it ends the sandbox.
    assert.equal(result.status, 'error', result.text);
    assert.equal(result.text, 'The agent ended without a result (exit code 2).');
  } else {
    // The run ends by the host-side timeout.
    assert.equal(result.status, 'timeout', result.text);
    assert.equal(result.text, `The run took longer than ${timeoutMs} ms and was stopped.`);
    assert.equal(result.exitCode, 137, 'killed with SIGKILL');
  }
}
