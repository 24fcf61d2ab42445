import type { DocumentSnapshot } from 'firebase-admin/firestore';
import type { z } from 'zod';
import { FIRESTORE_CALL_TIMEOUT_MS, withDeadline } from '@agent-platform/contract';
import { DatabaseUnavailableError } from '../errors.ts';
import type { Logger } from '../logs.ts';
import { readDoc } from './read-doc.ts';

/**
 * The services' Firestore steps: each with a deadline, documents read through their schema. A
 * database that does not answer makes the call `unavailable` (DatabaseUnavailableError) instead of
 * holding it until the function times out. The step may still land later; each step is atomic,
 * and a pending message it leaves has a lease.
 */
export class DbSteps {
  readonly #log: Logger;
  readonly #ms: number;

  constructor(log: Logger, ms: number = FIRESTORE_CALL_TIMEOUT_MS) {
    this.#log = log;
    this.#ms = ms;
  }

  step<T>(op: Promise<T>, what: string): Promise<T> {
    return withDeadline(
      op,
      AbortSignal.timeout(this.#ms),
      () => new DatabaseUnavailableError(`${what}: no answer in ${this.#ms} ms`),
    );
  }

  /** The document through `schema`, or null (an invalid one is logged). */
  read<T>(uid: string, schema: z.ZodType<T>, snap: DocumentSnapshot): T | null {
    return readDoc(schema, snap, (problem) =>
      this.#log.documentInvalid(uid, snap.ref.parent.id, snap.id, problem),
    );
  }
}
