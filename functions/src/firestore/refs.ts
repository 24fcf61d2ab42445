import { createHash } from 'node:crypto';
import type { DocumentReference, Firestore } from 'firebase-admin/firestore';
import { COLLECTIONS } from '@agent-platform/contract';

/**
 * Where the functions' documents live (the layout is described in the contract's firestore.ts):
 * users/{uid} with its conversations, agents, requests and usage, and ipWindows/{ipKey}.
 */

export function userRef(db: Firestore, uid: string): DocumentReference {
  return db.collection(COLLECTIONS.users).doc(uid);
}

/** The usage document of a UTC day: users/{uid}/usage/{YYYY-MM-DD}. */
export function usageDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The document id of a client address's window: no address is stored, only a hash of it. */
export function ipKey(ip: string): string {
  return createHash('sha256').update(ip, 'utf8').digest('hex').slice(0, 32);
}

export function ipWindowRef(db: Firestore, ip: string): DocumentReference {
  return db.collection(COLLECTIONS.ipWindows).doc(ipKey(ip));
}

/** gRPC status of a write to a missing document (e.g. one whose conversation was deleted). */
const NOT_FOUND = 5;

export function isNotFound(err: unknown): boolean {
  return (err as { code?: number } | null)?.code === NOT_FOUND;
}
