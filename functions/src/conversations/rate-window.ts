import { FieldValue, type Firestore } from 'firebase-admin/firestore';
import { COLLECTIONS, userDocSchema } from '@agent-platform/contract';
import { RateLimitedError } from '../errors.ts';

/** A fixed one-minute window of counted actions, stored on users/{uid}. */
export interface RateWindow {
  windowStartMs: number;
  count: number;
}

export const WINDOW_MS = 60_000;

/**
 * Counts one more action in `rate` at `nowMs`, or throws RateLimitedError (`what`, with the
 * seconds until the window frees) when `limit` actions were already counted in it.
 */
export function takeOne(rate: RateWindow | null, nowMs: number, limit: number, what: string): RateWindow {
  const fresh = !rate || nowMs - rate.windowStartMs >= WINDOW_MS;
  const count = fresh ? 0 : rate.count;
  if (!fresh && count >= limit) {
    const retry = Math.max(1, Math.ceil((rate.windowStartMs + WINDOW_MS - nowMs) / 1000));
    throw new RateLimitedError(`at most ${limit} ${what} per minute; try again in ${retry} s`, retry);
  }
  return { windowStartMs: fresh ? nowMs : rate.windowStartMs, count: count + 1 };
}

/** The per-user windows of users/{uid} besides the messages' (which sendMessage's transaction keeps). */
export type UserWindow = 'sandboxOpsRate' | 'fileOpsRate';

/**
 * Counts one action of the user in the window `field` of users/{uid} (a transaction), or throws
 * RateLimitedError; marks the user active, since each such action may use their workspace.
 * Returns the transaction for the caller to bound (withDbDeadline).
 */
export function takeUserWindow(
  db: Firestore,
  uid: string,
  field: UserWindow,
  limit: number,
  what: string,
): Promise<void> {
  const user = db.collection(COLLECTIONS.users).doc(uid);
  return db.runTransaction(async (tx) => {
    const snap = await tx.get(user);
    const rate = userDocSchema.safeParse(snap.data() ?? {}).data?.[field] ?? null;
    tx.set(
      user,
      {
        [field]: takeOne(rate, Date.now(), limit, what),
        lastActiveAt: FieldValue.serverTimestamp(),
        workspaceActive: true,
      },
      { merge: true },
    );
  });
}
