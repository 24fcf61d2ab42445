import {
  FUNCTIONS_MESSAGE_CHARS_DEFAULT,
  FUNCTIONS_MESSAGE_CHARS_MAX,
  RUN_TIMEOUT_DEFAULT_MS,
  RUN_TIMEOUT_MAX_MS,
  TOKEN_BUDGET_MAX,
  TOKENS_PER_RUN_DEFAULT,
  TOKENS_PER_USER_PER_DAY_DEFAULT,
  budgetProblem,
  envBool,
  envInt,
  parseEnvTable,
  timeoutBudget,
  type SettingDoc,
  type TimeoutBudget,
} from '@agent-platform/contract';
import { z } from 'zod';

/**
 * Every setting of the functions, validated once per instance with bounds (the runner's
 * runner/src/config.ts is the model). The values arrive as environment variables: firebase-tools
 * sets them from functions/.env.<project> (deploys) or functions/.env.local (emulator), and the
 * params in params.ts declare the same names for `firebase deploy`. Outside the Firebase CLI no
 * one applies the params' defaults (an unset int param reads as 0), so the defaults live here.
 * The loader takes the environment as a parameter: tests pass their own and never touch
 * process.env.
 */
const int = envInt;
const bool = envBool;

const httpUrl = z.string().refine((v) => {
  if (v === '') return true;
  try {
    return ['http:', 'https:'].includes(new URL(v).protocol);
  } catch {
    return false;
  }
}, 'must be an http(s) URL');

const origins = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((o) => o.trim())
      .filter((o) => o.length > 0),
  )
  .refine(
    (list) =>
      list.every((o) => {
        try {
          const u = new URL(o);
          return ['http:', 'https:'].includes(u.protocol) && u.origin === o;
        } catch {
          return false;
        }
      }),
    'must be a comma-separated list of origins like https://app.example.com (scheme, host, port; no path)',
  );

/** Each setting's validator and default; envDocs below describes each (npm run docs). */
export const envSchema = z.object({
  RUNNER_URL: httpUrl.default(''),
  RUNNER_SERVICE: z.string().default(''),
  RUNNER_AUDIENCE: z.string().default(''),
  RUN_TIMEOUT_MS: int(1_000, RUN_TIMEOUT_MAX_MS).default(RUN_TIMEOUT_DEFAULT_MS),
  MESSAGES_PER_MINUTE: int(1, 10_000).default(20),
  IP_MESSAGES_PER_MINUTE: int(1, 1_000_000).default(120),
  MAX_CONCURRENT_PER_USER: int(1, 100).default(2),
  MODEL_TOKENS_PER_RUN: int(0, TOKEN_BUDGET_MAX).default(TOKENS_PER_RUN_DEFAULT),
  MODEL_TOKENS_PER_USER_PER_DAY: int(0, TOKEN_BUDGET_MAX).default(TOKENS_PER_USER_PER_DAY_DEFAULT),
  WORKSPACE_IDLE_DAYS: int(1, 3650).default(30),
  MAX_MESSAGE_CHARS: int(1, FUNCTIONS_MESSAGE_CHARS_MAX).default(FUNCTIONS_MESSAGE_CHARS_DEFAULT),
  ENFORCE_APP_CHECK: bool.default(false),
  CORS_ORIGINS: origins.default(['http://127.0.0.1:5000', 'http://localhost:5000']),
  RUNNER_TOKEN: z.string().default(''),
  FUNCTIONS_EMULATOR: z.string().default(''),
});

/** What docs/configuration.md says of each setting (`npm run docs` generates it from these lines). */
export const envDocs: Record<keyof typeof envSchema.shape, SettingDoc> = {
  RUNNER_URL: "Base URL of the runner (an http(s) URL); empty: RUNNER_SERVICE's.",
  RUNNER_SERVICE:
    'Instead of RUNNER_URL: a Cloud Run service (projects/P/locations/R/services/S) whose URL is used.',
  RUNNER_AUDIENCE: 'Audience of the Google ID tokens sent to the runner; empty: the runner URL.',
  RUN_TIMEOUT_MS:
    "The run cap asked of the runner (its timeoutMs), at most the runner's own; every wait derives from it.",
  MESSAGES_PER_MINUTE: 'Messages one user may send per minute (then resource-exhausted).',
  IP_MESSAGES_PER_MINUTE:
    'Messages from one client address (all its accounts) per minute; the address is stored hashed.',
  MAX_CONCURRENT_PER_USER: 'Messages of one user being answered at once (more: resource-exhausted).',
  MODEL_TOKENS_PER_RUN:
    "Tokens (input + output) one message's model calls may use; the runner's cap applies too.",
  MODEL_TOKENS_PER_USER_PER_DAY:
    "Tokens one user's model calls may use per UTC day (users/{uid}.tokensPerDay overrides).",
  WORKSPACE_IDLE_DAYS: "A user's workspace is deleted after this many days without a message or warm-up.",
  MAX_MESSAGE_CHARS: 'Longest message in characters.',
  ENFORCE_APP_CHECK: 'Reject callables and REST calls without a valid App Check token (applied at deploy).',
  CORS_ORIGINS: 'Comma-separated web origins the REST API allows (default: the local Hosting emulator).',
  RUNNER_TOKEN: 'Shared secret for the runner, used only under the emulators (not a param); never echoed.',
  FUNCTIONS_EMULATOR: 'Set to "true" by the Functions emulator (not a param).',
};

/** Settings whose values a problem report must not echo. */
const HIDDEN = ['RUNNER_TOKEN'] as const;

export interface FunctionsConfig {
  runnerUrl: string;
  runnerService: string;
  runnerAudience: string;
  runTimeoutMs: number;
  /** Every deadline of a message's path, derived from runTimeoutMs (contract/src/timeouts.ts). */
  budget: TimeoutBudget;
  messagesPerMinute: number;
  ipMessagesPerMinute: number;
  maxConcurrentPerUser: number;
  tokensPerRun: number;
  tokensPerUserPerDay: number;
  workspaceIdleDays: number;
  maxMessageChars: number;
  enforceAppCheck: boolean;
  /** Running under the Functions emulator (App Check tokens are decoded, not verified). */
  emulator: boolean;
  corsOrigins: string[];
  /**
   * The runner's shared secret under the emulators, else undefined: deployed functions
   * authenticate with Google ID tokens only, whatever the environment holds.
   */
  devRunnerToken: string | undefined;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid functions configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** Reads and validates the functions' settings; throws ConfigError naming each bad one. */
export function loadConfig(env: Record<string, string | undefined>): FunctionsConfig {
  const parsed = parseEnvTable(envSchema, env, HIDDEN);
  if (!parsed.ok) throw new ConfigError(parsed.problems);
  const e = parsed.data;
  const problem = budgetProblem(e.RUN_TIMEOUT_MS);
  if (problem) throw new ConfigError([problem]);
  return {
    runnerUrl: e.RUNNER_URL,
    runnerService: e.RUNNER_SERVICE,
    runnerAudience: e.RUNNER_AUDIENCE,
    runTimeoutMs: e.RUN_TIMEOUT_MS,
    budget: timeoutBudget(e.RUN_TIMEOUT_MS),
    messagesPerMinute: e.MESSAGES_PER_MINUTE,
    ipMessagesPerMinute: e.IP_MESSAGES_PER_MINUTE,
    maxConcurrentPerUser: e.MAX_CONCURRENT_PER_USER,
    tokensPerRun: e.MODEL_TOKENS_PER_RUN,
    tokensPerUserPerDay: e.MODEL_TOKENS_PER_USER_PER_DAY,
    workspaceIdleDays: e.WORKSPACE_IDLE_DAYS,
    maxMessageChars: e.MAX_MESSAGE_CHARS,
    enforceAppCheck: e.ENFORCE_APP_CHECK,
    emulator: e.FUNCTIONS_EMULATOR === 'true',
    corsOrigins: e.CORS_ORIGINS,
    devRunnerToken: e.FUNCTIONS_EMULATOR === 'true' && e.RUNNER_TOKEN ? e.RUNNER_TOKEN : undefined,
  };
}

/**
 * Every setting's default, as its environment variable's value parses: the one place they are
 * stated (params.ts declares them for `firebase deploy` from here).
 */
export const ENV_DEFAULTS = envSchema.parse({});
