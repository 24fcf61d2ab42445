import { initializeApp as initAdmin, getApps as getAdminApps, type App } from 'firebase-admin/app';
import { getAuth as getAdminAuth, type Auth } from 'firebase-admin/auth';
import { getFirestore, type Firestore } from 'firebase-admin/firestore';
import { deleteApp, initializeApp, type FirebaseApp } from 'firebase/app';
import { CustomProvider, initializeAppCheck } from 'firebase/app-check';
import { EMULATOR_APP_ID, emulatorAppCheckToken } from '@agent-platform/contract';
import {
  connectAuthEmulator,
  getAuth,
  signInWithCustomToken,
  createUserWithEmailAndPassword,
} from 'firebase/auth';
import {
  connectFunctionsEmulator,
  getFunctions,
  httpsCallable,
  type HttpsCallable,
} from 'firebase/functions';
import { randomBytes } from 'node:crypto';

/**
 * Access to the running emulator stack (started by scripts/test.sh or scripts/start.sh):
 * Auth 9099, Functions 5001, Firestore 8080, Hosting 5000, project demo-agent-platform.
 */
export const PROJECT_ID = 'demo-agent-platform';
export const HOSTING = 'http://127.0.0.1:5000';
export const FUNCTIONS = `http://127.0.0.1:5001/${PROJECT_ID}/us-central1`;
export const AUTH_HOST = 'http://127.0.0.1:9099';

export function emulatorsConfigured(): boolean {
  return Boolean(process.env.FIRESTORE_EMULATOR_HOST && process.env.FIREBASE_AUTH_EMULATOR_HOST);
}

/** The Auth emulator through the Admin SDK (e.g. to revoke a user's sessions). */
export function adminAuth(): Auth {
  return getAdminAuth(adminApp());
}

function adminApp(): App {
  return getAdminApps()[0] ?? initAdmin({ projectId: PROJECT_ID });
}

export function adminDb(): Firestore {
  return getFirestore(adminApp());
}

export interface TestUser {
  uid: string;
  email: string;
  idToken: string;
  app: FirebaseApp;
  call<Req = unknown, Res = unknown>(name: string): HttpsCallable<Req, Res>;
  close(): Promise<void>;
}

/** Signs up a fresh user on the Auth emulator through the real client SDK. */
export async function newUser(): Promise<TestUser> {
  const app = initializeApp(
    { apiKey: 'demo-key', projectId: PROJECT_ID, authDomain: 'localhost' },
    `u-${randomBytes(6).toString('hex')}`,
  );
  // As the web client does under the emulators: every callable carries an App Check token (the
  // test stack runs with ENFORCE_APP_CHECK=true).
  initializeAppCheck(app, {
    provider: new CustomProvider({
      getToken: () => Promise.resolve(emulatorAppCheckToken(PROJECT_ID, EMULATOR_APP_ID, Date.now())),
    }),
    isTokenAutoRefreshEnabled: false,
  });
  const auth = getAuth(app);
  connectAuthEmulator(auth, AUTH_HOST, { disableWarnings: true });
  const functions = getFunctions(app, 'us-central1');
  connectFunctionsEmulator(functions, '127.0.0.1', 5001);
  const email = `user-${randomBytes(6).toString('hex')}@example.test`;
  const cred = await createUserWithEmailAndPassword(auth, email, 'correct horse battery staple');
  return {
    uid: cred.user.uid,
    email,
    idToken: await cred.user.getIdToken(),
    app,
    call: (name) => httpsCallable(functions, name, { timeout: 120_000 }),
    close: () => deleteApp(app),
  };
}

export { signInWithCustomToken };

/** The App Check header the test stack's REST calls carry (App Check is enforced there). */
export function appCheckHeader(): Record<string, string> {
  return { 'x-firebase-appcheck': emulatorAppCheckToken(PROJECT_ID, EMULATOR_APP_ID, Date.now()).token };
}

/** REST call through the Hosting emulator's rewrite to the `api` function. */
export async function rest(
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string>; appCheck?: boolean } = {},
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = {
    // App Check is enforced in the test stack; `appCheck: false` sends none.
    ...(opts.appCheck === false
      ? {}
      : { 'x-firebase-appcheck': emulatorAppCheckToken(PROJECT_ID, EMULATOR_APP_ID, Date.now()).token }),
    ...(opts.headers ?? {}),
  };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${HOSTING}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined
      ? { body: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) }
      : {}),
  });
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json, headers: res.headers };
}
