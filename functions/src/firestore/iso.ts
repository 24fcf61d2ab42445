import type { TimestampLike } from '@agent-platform/contract';

/** A stored timestamp as clients see it (ISO 8601), or null while a server timestamp is pending. */
export function iso(v: TimestampLike | null | undefined): string | null {
  return v ? v.toDate().toISOString() : null;
}
