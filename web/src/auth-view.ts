/** The sign-in screen: email/password (sign in or create an account), Google, anonymous. */
import {
  GoogleAuthProvider,
  createUserWithEmailAndPassword,
  signInAnonymously,
  signInWithEmailAndPassword,
  signInWithPopup,
} from 'firebase/auth';
import { auth } from './api.ts';
import { byId } from './dom.ts';
import { authErrorMessage } from './errors.ts';

export function setUpAuthView(): void {
  const form = byId<HTMLFormElement>('auth-form');
  const email = byId<HTMLInputElement>('auth-email');
  const password = byId<HTMLInputElement>('auth-password');
  const error = byId('auth-error');
  const buttons = [...document.querySelectorAll<HTMLButtonElement>('#auth-view button')];

  const attempt = async (action: () => Promise<unknown>) => {
    error.hidden = true;
    buttons.forEach((b) => (b.disabled = true));
    try {
      await action();
      form.reset();
    } catch (err) {
      error.textContent = authErrorMessage(err);
      error.hidden = false;
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  };

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const intent = (e.submitter as HTMLButtonElement | null)?.value ?? 'sign-in';
    const signIn = intent === 'sign-up' ? createUserWithEmailAndPassword : signInWithEmailAndPassword;
    void attempt(() => signIn(auth, email.value.trim(), password.value));
  });
  byId('sign-in-google').addEventListener('click', () => {
    void attempt(() => signInWithPopup(auth, new GoogleAuthProvider()));
  });
  byId('sign-in-anonymous').addEventListener('click', () => {
    void attempt(() => signInAnonymously(auth));
  });
}
