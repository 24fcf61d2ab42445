import { ID_MAX_CHARS, REQUEST_ID_MAX_CHARS, REQUEST_ID_MIN_CHARS } from './limits.ts';

/**
 * The id rules as plain patterns (zod-free, so the web client can test a path segment without
 * bundling zod); ids.ts builds the schemas from them.
 */

/** User, conversation, message and agent ids: 1-128 of [A-Za-z0-9_-]. */
export const ID_PATTERN = new RegExp(`^[A-Za-z0-9_-]{1,${ID_MAX_CHARS}}$`);
export const ID_RULE = `must be 1-${ID_MAX_CHARS} of [A-Za-z0-9_-]`;

/** Idempotency keys: 8-128 of [A-Za-z0-9_-]. */
export const REQUEST_ID_PATTERN = new RegExp(
  `^[A-Za-z0-9_-]{${REQUEST_ID_MIN_CHARS},${REQUEST_ID_MAX_CHARS}}$`,
);
export const REQUEST_ID_RULE = `must be ${REQUEST_ID_MIN_CHARS}-${REQUEST_ID_MAX_CHARS} of [A-Za-z0-9_-]`;
