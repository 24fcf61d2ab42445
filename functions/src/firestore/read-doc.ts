import type { DocumentSnapshot } from 'firebase-admin/firestore';
import type { z } from 'zod';

/**
 * A stored document read through its contract schema (@agent-platform/contract's firestore.ts),
 * or null with the first problem passed to `invalid`. Only the functions write these documents,
 * so an invalid one means our own writes drifted from the contract: callers log it and leave it
 * out (lists) or refuse (a document they must build on).
 */
export function readDoc<T>(
  schema: z.ZodType<T>,
  snap: Pick<DocumentSnapshot, 'data'>,
  invalid: (problem: string) => void,
): T | null {
  const parsed = schema.safeParse(snap.data() ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  invalid(issue ? `${issue.path.join('.') || 'document'}: ${issue.message}` : 'invalid');
  return null;
}
