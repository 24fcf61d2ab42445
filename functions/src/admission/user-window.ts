import { FieldValue, type Firestore } from 'firebase-admin/firestore';
import { userDocSchema } from '@agent-platform/contract';
import { userRef } from '../firestore/refs.ts';
import { takeOne } from './rate-window.ts';

/** The per-user windows of users/{uid} besides the messages' (which sendMessage's admission keeps). */
export type UserWindow = 'sandboxOpsRate' | 'fileOpsRate';

/**
 * Counts one action of the user in the window `field` of users/{uid} (a transaction), or throws
 * RateLimitedError; marks the user active, since each such action may use their workspace.
 * Returns the transaction for the caller to bound (DbSteps.step).
 */
export function takeUserWindow(
  db: Firestore,
  uid: string,
  field: UserWindow,
  limit: number,
  what: string,
): Promise<void> {
  const user = userRef(db, uid);
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
