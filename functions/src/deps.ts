import { getApps, initializeApp } from 'firebase-admin/app';
import { getAuth, type Auth } from 'firebase-admin/auth';
import { getFirestore } from 'firebase-admin/firestore';
import { ConfigError, loadConfig, type FunctionsConfig } from './config.ts';
import { ConversationService } from './conversations/conversation-service.ts';
import { InternalError } from './errors.ts';
import { log, type Logger } from './logs.ts';
import { RunnerClient } from './runner/runner-client.ts';
import { resolveRunner, type RunnerLocation } from './runner/runner-url.ts';

export interface Deps {
  config: FunctionsConfig;
  service: ConversationService;
  auth: Auth;
  log: Logger;
}

let cachedConfig: FunctionsConfig | null = null;

/**
 * The instance's configuration, read and checked once from its environment. An invalid one
 * refuses every call with `internal` and logs which setting is wrong and why (naming both values
 * when the timeout budget does not fit).
 */
export function config(env: Record<string, string | undefined> = process.env): FunctionsConfig {
  if (cachedConfig) return cachedConfig;
  try {
    cachedConfig = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      log.configInvalid(err.problems);
      throw new InternalError(err.message);
    }
    throw err;
  }
  return cachedConfig;
}

let cached: Deps | null = null;

/**
 * Built once per function instance, on first use: one Firestore client, one runner client (its
 * ID-token client and the runner's URL are cached).
 */
export function deps(): Deps {
  if (cached) return cached;
  const cfg = config();
  const app = getApps()[0] ?? initializeApp();
  const db = getFirestore(app);
  let location: Promise<RunnerLocation> | null = null;
  const runner = new RunnerClient({
    location: () =>
      (location ??= resolveRunner({
        url: cfg.runnerUrl,
        service: cfg.runnerService,
        audience: cfg.runnerAudience,
      }).catch((err: unknown) => {
        location = null;
        throw err;
      })),
    timeoutMs: cfg.budget.runnerClientMs,
    // The shared secret is for the emulators only; deployed functions use Google ID tokens.
    devToken: process.env.FUNCTIONS_EMULATOR === 'true' ? process.env.RUNNER_TOKEN : undefined,
  });
  const service = new ConversationService(
    db,
    runner,
    { messagesPerMinute: cfg.messagesPerMinute, runTimeoutMs: cfg.runTimeoutMs },
    log,
  );
  cached = { config: cfg, service, auth: getAuth(app), log };
  return cached;
}
