import { getApps, initializeApp } from 'firebase-admin/app';
import { getAppCheck, type AppCheck } from 'firebase-admin/app-check';
import { getAuth, type Auth } from 'firebase-admin/auth';
import { getFirestore } from 'firebase-admin/firestore';
import type { FunctionsConfig } from './config.ts';
import { AgentService } from './agents/agent-service.ts';
import { ConversationService } from './conversations/conversation-service.ts';
import { FilesService } from './files/files-service.ts';
import { instanceConfig } from './instance-config.ts';
import { log, type Logger } from './logs.ts';
import { RunnerClient } from './runner/runner-client.ts';
import { resolveRunner, type RunnerLocation } from './runner/runner-url.ts';

export interface Deps {
  config: FunctionsConfig;
  service: ConversationService;
  agents: AgentService;
  files: FilesService;
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
  const service = new ConversationService(
    db,
    runner,
    {
      messagesPerMinute: cfg.messagesPerMinute,
      runTimeoutMs: cfg.runTimeoutMs,
      ipMessagesPerMinute: cfg.ipMessagesPerMinute,
      maxConcurrentPerUser: cfg.maxConcurrentPerUser,
      tokensPerRun: cfg.tokensPerRun,
      tokensPerUserPerDay: cfg.tokensPerUserPerDay,
    },
    log,
  );
  const agents = new AgentService(db, runner, { tokensPerUserPerDay: cfg.tokensPerUserPerDay }, log);
  const files = new FilesService(db, runner);
  cached = { config: cfg, service, agents, files, auth: getAuth(app), appCheck: getAppCheck(app), log };
  return cached;
}
