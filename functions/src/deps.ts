import { getApps, initializeApp } from 'firebase-admin/app';
import { getAppCheck, type AppCheck } from 'firebase-admin/app-check';
import { getAuth, type Auth } from 'firebase-admin/auth';
import { getFirestore } from 'firebase-admin/firestore';
import type { FunctionsConfig } from './config.ts';
import { instanceConfig } from './instance-config.ts';
import { log, type Logger } from './logs.ts';
import { RunnerClient } from './runner/runner-client.ts';
import { resolveRunner, type RunnerLocation } from './runner/runner-url.ts';
import { createServices, serviceLimits, type Services } from './services.ts';

export interface Deps extends Services {
  config: FunctionsConfig;
  auth: Auth;
  appCheck: AppCheck;
  log: Logger;
}

/** The instance's configuration, read and checked once from its environment (instance-config.ts). */
export const config = instanceConfig(process.env, log);

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
    devToken: cfg.devRunnerToken,
  });
  cached = {
    ...createServices(db, runner, serviceLimits(cfg), log),
    config: cfg,
    auth: getAuth(app),
    appCheck: getAppCheck(app),
    log,
  };
  return cached;
}
