import { z } from 'zod';
import { ID_MAX_CHARS, REQUEST_ID_MAX_CHARS, REQUEST_ID_MIN_CHARS, RUN_ID_MAX_CHARS } from './limits.ts';

/** User, conversation, message and agent ids: 1-128 of [A-Za-z0-9_-]. */
export const ID_PATTERN = new RegExp(`^[A-Za-z0-9_-]{1,${ID_MAX_CHARS}}$`);
export const ID_RULE = `must be 1-${ID_MAX_CHARS} of [A-Za-z0-9_-]`;
export const idSchema = z.string({ error: 'must be a string' }).regex(ID_PATTERN, ID_RULE);

/** Idempotency keys: 8-128 of [A-Za-z0-9_-]. */
export const REQUEST_ID_PATTERN = new RegExp(
  `^[A-Za-z0-9_-]{${REQUEST_ID_MIN_CHARS},${REQUEST_ID_MAX_CHARS}}$`,
);
export const requestIdSchema = z
  .string({ error: 'must be a string' })
  .regex(REQUEST_ID_PATTERN, `must be ${REQUEST_ID_MIN_CHARS}-${REQUEST_ID_MAX_CHARS} of [A-Za-z0-9_-]`);

export const runIdSchema = z.string().min(1).max(RUN_ID_MAX_CHARS);
