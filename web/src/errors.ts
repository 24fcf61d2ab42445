/** Human-readable messages for the errors the callables and Firebase Auth report. */
import { FirebaseError } from 'firebase/app';

function codeOf(err: unknown): string {
  return err instanceof FirebaseError ? err.code : '';
}

/** A callable's error (FunctionsError codes are `functions/<code>`), as one clear sentence. */
export function callableErrorMessage(err: unknown): string {
  const code = codeOf(err).replace(/^functions\//, '');
  const details = (err as { details?: { retryAfterSeconds?: unknown } }).details;
  switch (code) {
    case 'resource-exhausted': {
      const wait =
        typeof details?.retryAfterSeconds === 'number' ? ` Try again in ${details.retryAfterSeconds} s.` : '';
      return `You're sending messages too fast.${wait}`;
    }
    case 'unavailable':
      return 'The agent runner is unavailable right now. Try again in a moment.';
    case 'deadline-exceeded':
      return 'The agent did not answer in time (timeout). Try again, or ask for less work.';
    case 'invalid-argument':
      return `That message can't be sent: ${(err as Error).message}`;
    case 'not-found':
      // An agent's ("no such agent", "this conversation's agent was deleted; ...") or a conversation's.
      return /agent/.test((err as Error).message)
        ? `${(err as Error).message.replace(/^./, (c) => c.toUpperCase())}.`
        : 'This conversation no longer exists.';
    case 'unauthenticated':
      return 'Your session has expired. Sign in again.';
    case 'aborted':
      return 'This message is still being processed. Try again in a moment.';
    default:
      return `Something went wrong${code ? ` (${code})` : ''}. Try again.`;
  }
}

const AUTH_MESSAGES: Record<string, string> = {
  'auth/invalid-email': 'That email address is not valid.',
  'auth/missing-email': 'Enter your email address.',
  'auth/missing-password': 'Enter your password.',
  'auth/invalid-credential': 'Wrong email or password.',
  'auth/wrong-password': 'Wrong email or password.',
  'auth/user-not-found': 'No account uses that email. Create one instead.',
  'auth/email-already-in-use': 'An account already uses that email. Sign in instead.',
  'auth/weak-password': 'Choose a longer password (at least 6 characters).',
  'auth/too-many-requests': 'Too many attempts. Wait a moment and try again.',
  'auth/network-request-failed': 'Could not reach the sign-in service. Check your connection.',
  'auth/popup-closed-by-user': 'The sign-in window was closed before finishing.',
  'auth/popup-blocked': 'The browser blocked the sign-in window. Allow pop-ups and try again.',
  'auth/operation-not-allowed': 'This sign-in method is not enabled for this project.',
  'auth/admin-restricted-operation': 'This sign-in method is not enabled for this project.',
};

export function authErrorMessage(err: unknown): string {
  const code = codeOf(err);
  return AUTH_MESSAGES[code] ?? `Sign-in failed${code ? ` (${code})` : ''}.`;
}
