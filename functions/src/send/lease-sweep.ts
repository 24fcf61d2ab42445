import { Timestamp, type Firestore } from 'firebase-admin/firestore';
import { COLLECTIONS, leaseExpired, messageDocSchema } from '@agent-platform/contract';
import type { DbSteps } from '../firestore/db-steps.ts';
import { userRef } from '../firestore/refs.ts';
import type { Logger } from '../logs.ts';

/**
 * Marks failed the pending messages whose function died between storing them and storing their
 * outcome (their lease expired). Reads already show such a message as failed, and a retry with
 * its requestId runs it again; the sweep makes the stored state say so too.
 */
export class LeaseSweep {
  readonly #db: Firestore;
  readonly #steps: DbSteps;
  readonly #log: Logger;

  constructor(db: Firestore, steps: DbSteps, log: Logger) {
    this.#db = db;
    this.#steps = steps;
    this.#log = log;
  }

  /**
   * Marks failed every pending message (and its request record) whose lease expired by `nowMs`:
   * at most `limit` a call, each in a transaction that checks it again (a retry may have taken it
   * over since the query). Returns how many.
   */
  async sweepExpiredLeases(nowMs: number, limit = 200): Promise<number> {
    const snap = await this.#steps.step(
      this.#db
        .collectionGroup(COLLECTIONS.messages)
        .where('status', '==', 'pending')
        .where('leaseExpiresAt', '<=', Timestamp.fromMillis(nowMs))
        .limit(limit)
        .get(),
      'querying expired leases',
    );
    let swept = 0;
    for (const d of snap.docs) {
      // users/{uid}/conversations/{cid}/messages/{mid}
      const uid = d.ref.parent.parent?.parent.parent?.id;
      if (!uid) continue;
      const marked = await this.#steps.step(
        this.#db.runTransaction(async (tx) => {
          const fresh = await tx.get(d.ref);
          const m = fresh.exists ? this.#steps.read(uid, messageDocSchema, fresh) : null;
          if (!m || !leaseExpired(m.status, m.leaseExpiresAt?.toMillis(), nowMs)) return false;
          const requestRef = m.requestId
            ? userRef(this.#db, uid).collection(COLLECTIONS.requests).doc(m.requestId)
            : null;
          const r = requestRef ? await tx.get(requestRef) : null; // reads before writes
          tx.update(d.ref, { status: 'failed', error: 'deadline-exceeded' });
          // The request is failed with it only while it still waits on this very message.
          if (requestRef && r?.exists && r.get('state') === 'pending' && r.get('userMessageId') === d.id) {
            tx.update(requestRef, { state: 'failed', errorCode: 'deadline-exceeded' });
          }
          return true;
        }),
        'marking an expired message failed',
      );
      if (marked) {
        swept++;
        this.#log.leaseExpired(uid, d.ref.parent.parent!.id, d.id);
      }
    }
    return swept;
  }
}
