import { InvalidInputError } from '../errors.ts';

/**
 * The list callables' page cursors: opaque to clients (base64url of JSON), checked when they come
 * back, so a forged one is invalid input rather than a query error.
 */
export function encodeCursor(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

export function decodeCursor<T>(cursor: string, check: (v: unknown) => v is T): T {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (check(v)) return v;
  } catch {
    // fall through
  }
  throw new InvalidInputError('cursor: is not a cursor returned by this API', 'cursor');
}
