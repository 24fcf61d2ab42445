import type { Firestore } from 'firebase-admin/firestore';
import type { Logger } from '../logs.ts';
import type { DbSteps } from './db-steps.ts';

/** What a Firestore-backed service works with: the client, its bounded steps, and the log. */
export interface Store {
  db: Firestore;
  steps: DbSteps;
  log: Logger;
}
