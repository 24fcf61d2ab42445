import { PENDING_SWEEP_SCHEDULE } from '@agent-platform/contract';
import { onSchedule } from 'firebase-functions/v2/scheduler';
import { deps } from '../deps.ts';

/**
 * Marks failed the pending messages whose function died before storing their outcome (their
 * lease, PENDING_LEASE_MS, expired). Reads already show such a message as failed and a retry with
 * its requestId runs it again; the sweep makes the stored state say so too. Bounded per run (200);
 * what is left waits for the next run.
 */
export const sweepPendingMessages = onSchedule(
  { schedule: PENDING_SWEEP_SCHEDULE, timeoutSeconds: 120 },
  async () => {
    await deps().sweep.sweepExpiredLeases(Date.now());
  },
);
