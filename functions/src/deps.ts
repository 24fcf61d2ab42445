import { getApps, initializeApp } from 'firebase-admin/app';
import { getAuth, type Auth } from 'firebase-admin/auth';
import { getFirestore } from 'firebase-admin/firestore';
import { ConversationService } from './conversations/conversation-service.ts';
import {
  MESSAGES_PER_MINUTE,
  RUNNER_AUDIENCE,
  RUNNER_SERVICE,
  RUNNER_TIMEOUT_MS,
  RUNNER_URL,
} from './params.ts';
import { RunnerClient } from './runner/runner-client.ts';
import { resolveRunner, type RunnerLocation } from './runner/runner-url.ts';

export interface Deps {
  service: ConversationService;
  auth: Auth;
}

let cached: Deps | null = null;

/**
 * Built once per function instance, on first use (params are only readable at run time): one
 * Firestore client, one runner client (its ID-token client and the runner's URL are cached).
 */
export function deps(): Deps {
  if (cached) return cached;
  const app = getApps()[0] ?? initializeApp();
  const db = getFirestore(app);
  let location: Promise<RunnerLocation> | null = null;
  const runner = new RunnerClient({
    location: () =>
      (location ??= resolveRunner({
        url: RUNNER_URL.value(),
        service: RUNNER_SERVICE.value(),
        audience: RUNNER_AUDIENCE.value(),
      }).catch((err: unknown) => {
        location = null;
        throw err;
      })),
    timeoutMs: RUNNER_TIMEOUT_MS.value(),
    // The shared secret is for the emulators only; deployed functions use Google ID tokens.
    devToken: process.env.FUNCTIONS_EMULATOR === 'true' ? process.env.RUNNER_TOKEN : undefined,
  });
  const service = new ConversationService(db, runner, () => ({
    messagesPerMinute: MESSAGES_PER_MINUTE.value(),
  }));
  cached = { service, auth: getAuth(app) };
  return cached;
}
