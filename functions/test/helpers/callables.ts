import assert from 'node:assert/strict';
import { FirebaseError } from 'firebase/app';
import type { TestUser } from './stack.ts';

/** Calls the callable `name` as `u` and gives its data. */
export const call = <Res>(u: TestUser, name: string, data?: unknown): Promise<Res> =>
  u
    .call<unknown, Res>(name)(data)
    .then((r) => r.data);

/** Asserts that `p` fails with the callable error `functions/<code>` (and names `field`, if given). */
export async function rejectsWith(p: Promise<unknown>, code: string, field?: string): Promise<FirebaseError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FirebaseError, `expected a FirebaseError, got ${String(err)}`);
    assert.equal(err.code, `functions/${code}`, err.message);
    if (field) assert.equal((err as FirebaseError & { details?: { field?: string } }).details?.field, field);
    return err;
  }
  assert.fail(`expected functions/${code}`);
}
