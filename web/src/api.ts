/** Firebase set-up (emulators on loopback) and the callables. */
import { initializeApp } from 'firebase/app';
import { CustomProvider, ReCaptchaEnterpriseProvider, initializeAppCheck } from 'firebase/app-check';
import { connectAuthEmulator, getAuth } from 'firebase/auth';
import { connectFirestoreEmulator, getFirestore } from 'firebase/firestore';
import { connectFunctionsEmulator, getFunctions, httpsCallable } from 'firebase/functions';
import {
  CALLABLES,
  EMULATOR_APP_ID,
  emulatorAppCheckToken,
  RUN_TIMEOUT_DEFAULT_MS,
  timeoutBudget,
  type AgentOutput,
  type AgentView,
  type CreateAgentInput,
  type DeletedOutput,
  type DownloadFileOutput,
  type FilesList,
  type UploadFileOutput,
  type ListModelsOutput,
  type UpdateAgentInput,
  type UsageOutput,
  type SendResult,
  type TextChunk,
  type WarmSandboxOutput,
} from '@agent-platform/contract';
import type { SendRequest } from './chat/send-machine.ts';

const env = import.meta.env;
const projectId = env.VITE_FIREBASE_PROJECT_ID || 'demo-agent-platform';

export const app = initializeApp({
  apiKey: env.VITE_FIREBASE_API_KEY || 'demo-key',
  authDomain: env.VITE_FIREBASE_AUTH_DOMAIN || `${projectId}.firebaseapp.com`,
  projectId,
});
export const auth = getAuth(app);
export const db = getFirestore(app);
const functions = getFunctions(app, 'us-central1');

export const usingEmulators =
  ['127.0.0.1', 'localhost'].includes(location.hostname) || env.VITE_USE_EMULATORS === 'true';
if (usingEmulators) {
  connectAuthEmulator(auth, 'http://127.0.0.1:9099', { disableWarnings: true });
  connectFirestoreEmulator(db, '127.0.0.1', 8080);
  connectFunctionsEmulator(functions, '127.0.0.1', 5001);
}

/**
 * App Check: every callable then carries an App Check token (X-Firebase-AppCheck), so the
 * functions may enforce it (ENFORCE_APP_CHECK). Deployed, reCAPTCHA Enterprise attests the page
 * (VITE_APP_CHECK_SITE_KEY at build time; without one, no App Check and enforcement must stay
 * off). Under the emulators, an unsigned token with App Check's claims (contract/src/app-check.ts
 * says why not the debug provider).
 */
if (usingEmulators) {
  initializeAppCheck(app, {
    provider: new CustomProvider({
      getToken: () => Promise.resolve(emulatorAppCheckToken(projectId, EMULATOR_APP_ID, Date.now())),
    }),
    isTokenAutoRefreshEnabled: true,
  });
} else if (env.VITE_APP_CHECK_SITE_KEY) {
  initializeAppCheck(app, {
    provider: new ReCaptchaEnterpriseProvider(env.VITE_APP_CHECK_SITE_KEY),
    isTokenAutoRefreshEnabled: true,
  });
}

export type Agent = AgentView;
export type StreamChunk = TextChunk;

export const callables = {
  sendMessage: httpsCallable<SendRequest, SendResult, TextChunk>(functions, CALLABLES.sendMessage, {
    // The outermost layer of the timeout budget (contract/src/timeouts.ts): longer than the
    // function's own timeout, so the function always answers first.
    timeout: timeoutBudget(RUN_TIMEOUT_DEFAULT_MS).webClientMs,
  }),
  deleteConversation: httpsCallable<{ conversationId: string }, DeletedOutput>(
    functions,
    CALLABLES.deleteConversation,
  ),
  listAgents: httpsCallable<undefined, { agents: AgentView[] }>(functions, CALLABLES.listAgents),
  createAgent: httpsCallable<Partial<CreateAgentInput>, AgentOutput>(functions, CALLABLES.createAgent),
  updateAgent: httpsCallable<UpdateAgentInput, AgentOutput>(functions, CALLABLES.updateAgent),
  deleteAgent: httpsCallable<{ agentId: string }, DeletedOutput>(functions, CALLABLES.deleteAgent),
  listModels: httpsCallable<undefined, ListModelsOutput>(functions, CALLABLES.listModels),
  getUsage: httpsCallable<undefined, UsageOutput>(functions, CALLABLES.getUsage),
  listFiles: httpsCallable<undefined, FilesList>(functions, CALLABLES.listFiles),
  downloadFile: httpsCallable<{ path: string }, DownloadFileOutput>(functions, CALLABLES.downloadFile),
  uploadFile: httpsCallable<{ path: string; contentBase64: string }, UploadFileOutput>(
    functions,
    CALLABLES.uploadFile,
  ),
  deleteFile: httpsCallable<{ path: string }, DeletedOutput>(functions, CALLABLES.deleteFile),
  warmSandbox: httpsCallable<undefined, WarmSandboxOutput>(functions, CALLABLES.warmSandbox),
};
