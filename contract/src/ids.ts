import { z } from 'zod';
import { ID_PATTERN, ID_RULE, REQUEST_ID_PATTERN, REQUEST_ID_RULE } from './id-rules.ts';
import { RUN_ID_MAX_CHARS } from './limits.ts';

/** User, conversation, message and agent ids (id-rules.ts). */
export const idSchema = z.string({ error: 'must be a string' }).regex(ID_PATTERN, ID_RULE);

/** Idempotency keys chosen by clients (id-rules.ts). */
export const requestIdSchema = z
  .string({ error: 'must be a string' })
  .regex(REQUEST_ID_PATTERN, REQUEST_ID_RULE);

export const runIdSchema = z.string().min(1).max(RUN_ID_MAX_CHARS);
