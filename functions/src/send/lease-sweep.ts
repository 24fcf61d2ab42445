import { Timestamp, type QueryDocumentSnapshot } from 'firebase-admin/firestore';
import { COLLECTIONS, leaseExpired, messageDocSchema } from '@agent-platform/contract';
import { claimEach } from '../firestore/claim-each.ts';
import { userRef } from '../firestore/refs.ts';
import type { Store } from '../firestore/store.ts';

/**
 * Marks failed the pending messages whose function died between storing them and storing their
 * outcome (their lease expired). Reads already show such a message as failed, and a retry with
 * its requestId runs it again; the sweep makes the stored state say so too.
 */
export class LeaseSweep {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  /**
   * Marks failed every pending message (and its request record) whose lease expired by `nowMs`:
   * at most `limit` a call, each in a transaction that checks it again (a retry may have taken it
   * over since the query). Returns how many.
   */
  sweepExpiredLeases(nowMs: number, limit = 200): Promise<number> {
    const { db, steps, log } = this.#store;
    const uidOf = (d: QueryDocumentSnapshot) => d.ref.parent.parent?.parent.parent?.id; // users/{uid}/conversations/{cid}/messages/{mid}
    return claimEach(
      db,
      steps,
      db
        .collectionGroup(COLLECTIONS.messages)
        .where('status', '==', 'pending')
        .where('leaseExpiresAt', '<=', Timestamp.fromMillis(nowMs))
        .limit(limit),
      {
        query: 'querying expired leases',
        claim: 'marking an expired message failed',
        take: async (tx, d) => {
          const uid = uidOf(d);
          if (!uid) return false;
          const fresh = await tx.get(d.ref);
          const m = fresh.exists ? steps.read(uid, messageDocSchema, fresh) : null;
          if (!m || !leaseExpired(m.status, m.leaseExpiresAt?.toMillis(), nowMs)) return false;
          const requestRef = m.requestId
            ? userRef(db, uid).collection(COLLECTIONS.requests).doc(m.requestId)
            : null;
          const r = requestRef ? await tx.get(requestRef) : null; // reads before writes
          tx.update(d.ref, { status: 'failed', error: 'deadline-exceeded' });
          // The request is failed with it only while it still waits on this very message.
          if (requestRef && r?.exists && r.get('state') === 'pending' && r.get('userMessageId') === d.id) {
            tx.update(requestRef, { state: 'failed', errorCode: 'deadline-exceeded' });
          }
          return true;
        },
        then: (d) => log.leaseExpired(uidOf(d)!, d.ref.parent.parent!.id, d.id),
      },
    );
  }
}
