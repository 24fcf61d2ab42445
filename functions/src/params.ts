import { defineBoolean, defineInt, defineString } from 'firebase-functions/params';
import { ENV_DEFAULTS as DEFAULTS } from './config.ts';

/**
 * The functions' params, declared for `firebase deploy` (which stores their values in
 * functions/.env.<project> and sets them as environment variables). At run time they are read
 * and checked, with their bounds, by config.ts; ENFORCE_APP_CHECK (the callables' options) and
 * RUNNER_VPC_CONNECTOR (global-options.ts) are used directly, at deploy. Their defaults reach
 * scripts/deploy.sh through scripts/deploy/param-defaults.env, generated from this file
 * (`node scripts/deploy/param-defaults.ts`; npm test checks it is current).
 */

/** Base URL of the runner, e.g. https://runner.example.com. Default: empty (then RUNNER_SERVICE). */
export const RUNNER_URL = defineString('RUNNER_URL', { default: DEFAULTS.RUNNER_URL });
/** Cloud Run service name (projects/P/locations/R/services/S) whose URL is the runner's. Default: empty. */
export const RUNNER_SERVICE = defineString('RUNNER_SERVICE', { default: DEFAULTS.RUNNER_SERVICE });
/**
 * Serverless VPC Access connector the functions reach a runner fleet's internal load balancer
 * through (`npm run deploy -- --runners`), e.g. agent-functions. Only private ranges go through
 * it. Default: empty, meaning no VPC egress (one runner, reached at its public HTTPS address).
 */
export const RUNNER_VPC_CONNECTOR = defineString('RUNNER_VPC_CONNECTOR', {
  default: '',
  description:
    "Serverless VPC Access connector to a runner fleet's internal load balancer (private ranges only); empty: no VPC egress.",
});
/** Audience of the ID tokens sent to the runner. Default: empty, meaning the runner URL. */
export const RUNNER_AUDIENCE = defineString('RUNNER_AUDIENCE', { default: DEFAULTS.RUNNER_AUDIENCE });
/** The run cap asked of the runner; every wait of a message derives from it. Default 30000. */
export const RUN_TIMEOUT_MS = defineInt('RUN_TIMEOUT_MS', { default: DEFAULTS.RUN_TIMEOUT_MS });
/** Messages one user may send per minute. Default 20. */
export const MESSAGES_PER_MINUTE = defineInt('MESSAGES_PER_MINUTE', {
  default: DEFAULTS.MESSAGES_PER_MINUTE,
});
/** Messages from one client address (all its accounts) per minute. Default 120. */
export const IP_MESSAGES_PER_MINUTE = defineInt('IP_MESSAGES_PER_MINUTE', {
  default: DEFAULTS.IP_MESSAGES_PER_MINUTE,
});
/** Messages of one user being answered at once. Default 2. */
export const MAX_CONCURRENT_PER_USER = defineInt('MAX_CONCURRENT_PER_USER', {
  default: DEFAULTS.MAX_CONCURRENT_PER_USER,
});
/** Tokens (input + output) one message's model calls may use. Default 100000. */
export const MODEL_TOKENS_PER_RUN = defineInt('MODEL_TOKENS_PER_RUN', {
  default: DEFAULTS.MODEL_TOKENS_PER_RUN,
});
/** Tokens one user's model calls may use per UTC day (users/{uid}.tokensPerDay overrides). Default 1000000. */
export const MODEL_TOKENS_PER_USER_PER_DAY = defineInt('MODEL_TOKENS_PER_USER_PER_DAY', {
  default: DEFAULTS.MODEL_TOKENS_PER_USER_PER_DAY,
});
/** A user's workspace is deleted after this many days without a message. Default 30. */
export const WORKSPACE_IDLE_DAYS = defineInt('WORKSPACE_IDLE_DAYS', {
  default: DEFAULTS.WORKSPACE_IDLE_DAYS,
});
/** Longest message in characters. Default 8000. */
export const MAX_MESSAGE_CHARS = defineInt('MAX_MESSAGE_CHARS', { default: DEFAULTS.MAX_MESSAGE_CHARS });
/** Reject callable requests without a valid App Check token. Default false. */
export const ENFORCE_APP_CHECK = defineBoolean('ENFORCE_APP_CHECK', { default: DEFAULTS.ENFORCE_APP_CHECK });
/** Comma-separated web origins allowed by the REST API's CORS. Default: the local Hosting emulator. */
export const CORS_ORIGINS = defineString('CORS_ORIGINS', { default: DEFAULTS.CORS_ORIGINS.join(',') });
