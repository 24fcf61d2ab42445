/**
 * App Check under the Firebase emulators. Zod-free (the web client imports it).
 *
 * App Check's debug provider cannot work here: it exchanges its debug token with Google's App
 * Check API, and this platform's development and CI machines are offline. Nor is it needed to
 * exercise our code: the Functions emulator does not verify App Check tokens, it only decodes
 * them (firebase-tools runs functions with firebase-functions' `skipTokenVerification` debug
 * feature) and still refuses a call without one when `enforceAppCheck` is set. So under the
 * emulators the clients attach a token with App Check's claims, unsigned, through the SDK's
 * CustomProvider (the same header, `X-Firebase-AppCheck`, the same SDK code path), and the REST
 * API decodes it the same way. Deployed, every token is verified by the Admin SDK against
 * Google's keys, and this one is refused.
 */

// Global in browsers and in Node >= 16; declared here because the contract compiles without
// the DOM or Node type libraries.
declare function btoa(data: string): string;
declare function atob(data: string): string;

/** Lifetime of an emulator token; the SDK refreshes it before it ends. */
export const EMULATOR_APP_CHECK_TTL_MS = 60 * 60 * 1000;

const b64url = (s: string): string => btoa(s).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');

/** An unsigned App Check token for the emulators: App Check's claims, `alg: none`. */
export function emulatorAppCheckToken(
  projectId: string,
  appId: string,
  nowMs: number,
): { token: string; expireTimeMillis: number } {
  const iat = Math.floor(nowMs / 1000);
  const expireTimeMillis = nowMs + EMULATOR_APP_CHECK_TTL_MS;
  const claims = {
    iss: `https://firebaseappcheck.googleapis.com/${projectId}`,
    sub: appId,
    aud: [`projects/${projectId}`],
    iat,
    exp: Math.floor(expireTimeMillis / 1000),
  };
  return {
    token: `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.`,
    expireTimeMillis,
  };
}

/**
 * The app id in an emulator App Check token, or null when it is not one (decoded, not verified:
 * for the emulators only).
 */
export function decodeEmulatorAppCheckToken(token: string): string | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const json = atob(parts[1].replaceAll('-', '+').replaceAll('_', '/'));
    const claims = JSON.parse(json) as { sub?: unknown; exp?: unknown };
    if (typeof claims.sub !== 'string' || typeof claims.exp !== 'number') return null;
    if (claims.exp * 1000 < Date.now()) return null;
    return claims.sub;
  } catch {
    return null;
  }
}

/** The web app id the emulator tokens name (any string works; a real app id under a project). */
export const EMULATOR_APP_ID = '1:000000000000:web:emulator';
