/** Firebase set-up (emulators on loopback), the callables, and the shapes of stored documents. */
import { initializeApp } from 'firebase/app';
import { CustomProvider, ReCaptchaEnterpriseProvider, initializeAppCheck } from 'firebase/app-check';
import { connectAuthEmulator, getAuth } from 'firebase/auth';
import { connectFirestoreEmulator, getFirestore, Timestamp, type DocumentData } from 'firebase/firestore';
import { connectFunctionsEmulator, getFunctions, httpsCallable } from 'firebase/functions';
import {
  CALLABLES,
  EMULATOR_APP_ID,
  emulatorAppCheckToken,
  leaseExpired,
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
  type ModelUsage,
  type UpdateAgentInput,
  type UsageOutput,
  type SendMessageInput,
  type SendResult,
  type TextChunk,
  type MessageDoc,
  type WarmSandboxOutput,
} from '@agent-platform/contract';

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

export type { RunStatus, SendResult } from '@agent-platform/contract';
export type Agent = AgentView;
export type StreamChunk = TextChunk;

/** What the client sends (sendMessage's input; its requestId is always set: a retry reuses it). */
export type SendRequest = SendMessageInput & { requestId: string };

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

/** users/{uid}/conversations/{id} */
export interface Conversation {
  id: string;
  title: string;
  preview: string;
  updatedAt: Date | null;
}

/** users/{uid}/conversations/{cid}/messages/{id} (MessageDoc in the contract), as shown. */
export interface Message {
  id: string;
  seq: number;
  role: MessageDoc['role'];
  text: string;
  /** user: pending | done | failed; agent: a RunStatus */
  status: string;
  component: unknown;
  requestId: string | null;
  /** Why a user message failed (a callable error code), when it did. */
  error: string | null;
  /** A pending user message: when its function's lease ends (then it was not answered). */
  leaseExpiresAtMs: number | null;
  /** An agent message: what its run's model calls used (null: none recorded). */
  usage: ModelUsage | null;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

export function toConversation(id: string, d: DocumentData): Conversation {
  return {
    id,
    title: str(d.title) || 'Untitled',
    preview: str(d.lastMessagePreview),
    updatedAt: d.updatedAt instanceof Timestamp ? d.updatedAt.toDate() : null,
  };
}

export function toMessage(id: string, d: DocumentData): Message {
  return {
    id,
    seq: typeof d.seq === 'number' ? d.seq : 0,
    role: d.role === 'user' ? 'user' : 'agent',
    text: str(d.text),
    status: str(d.status),
    component: d.component ?? null,
    requestId: str(d.requestId) || null,
    error: str(d.error) || null,
    leaseExpiresAtMs: d.leaseExpiresAt instanceof Timestamp ? d.leaseExpiresAt.toMillis() : null,
    usage: toUsage(d.usage),
  };
}

const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

export function toUsage(v: unknown): ModelUsage | null {
  if (typeof v !== 'object' || v === null) return null;
  const u = v as Record<string, unknown>;
  return {
    model: typeof u.model === 'string' ? u.model : null,
    calls: count(u.calls),
    inputTokens: count(u.inputTokens),
    outputTokens: count(u.outputTokens),
    exhausted: u.exhausted === 'tokens' || u.exhausted === 'calls' ? u.exhausted : null,
  };
}

/** A pending message whose function is gone (its lease ended): it will not be answered. */
export function notAnswered(m: Message, nowMs: number): boolean {
  return m.status === 'failed' || leaseExpired(m.status, m.leaseExpiresAtMs, nowMs);
}

/** A fresh idempotency key for one send: 32 of [0-9a-f] (requestIdSchema: 8-128 of [A-Za-z0-9_-]). */
export function newRequestId(): string {
  return crypto.randomUUID().replaceAll('-', '');
}
