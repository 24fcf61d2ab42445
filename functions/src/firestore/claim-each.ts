import type { Firestore, Query, QueryDocumentSnapshot, Transaction } from 'firebase-admin/firestore';
import type { DbSteps } from './db-steps.ts';

/** What a scheduled clean-up does to each document its query finds. */
export interface Claim {
  /** Names the query's step and each claim's ("querying expired leases", ...). */
  query: string;
  claim: string;
  /**
   * Checks the document again inside a transaction and writes its claim: false when it no longer
   * qualifies (something changed since the query: a retry took it over, a message arrived).
   */
  take: (tx: Transaction, doc: QueryDocumentSnapshot) => Promise<boolean>;
  /** After a document is claimed, before the next one (a failure here ends the pass). */
  then?: (doc: QueryDocumentSnapshot) => Promise<void> | void;
}

/**
 * Runs `query` (bounded, as every step) and claims what it found, one transaction a document, in
 * order; gives how many were claimed. The scheduled sweeps (expired leases, idle workspaces) are
 * each one Claim.
 */
export async function claimEach(db: Firestore, steps: DbSteps, query: Query, c: Claim): Promise<number> {
  const snap = await steps.step(query.get(), c.query);
  let claimed = 0;
  for (const doc of snap.docs) {
    if (
      !(await steps.step(
        db.runTransaction((tx) => c.take(tx, doc)),
        c.claim,
      ))
    )
      continue;
    await c.then?.(doc);
    claimed++;
  }
  return claimed;
}
