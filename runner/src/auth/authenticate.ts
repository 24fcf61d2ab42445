import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { OAuth2Client } from 'google-auth-library';
import type { RunnerConfig } from '../config.ts';
import { UnauthenticatedError } from '../errors.ts';
import type { Logger } from '../logs.ts';

/** Who called: a Google service account (production) or the shared development secret. */
export type Caller = { kind: 'google'; email: string } | { kind: 'shared-secret' };

export interface Authenticator {
  verify(header: string | undefined): Promise<Caller>;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Verifies `Authorization: Bearer <token>`. A token shaped like a JWT is checked as a
 * Google-signed ID token (signature against the certificates at RUNNER_OIDC_CERTS_URL, expiry,
 * issuer, audience = RUNNER_AUDIENCE, email in RUNNER_ALLOWED_INVOKERS and verified); anything
 * else is compared in constant time with RUNNER_TOKEN. Failures carry a reason code (never token
 * text) for the log only.
 */
export function createAuthenticator(config: RunnerConfig): Authenticator {
  const client = config.audience
    ? new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: config.oidcCertsUrl } })
    : null;
  const allowed = new Set(config.allowedInvokers.map((e) => e.toLowerCase()));
  const secretDigest = config.runnerToken ? sha256(config.runnerToken) : null;

  return {
    async verify(header) {
      if (!header) throw new UnauthenticatedError('no_header');
      const match = /^Bearer ([^\s]+)$/.exec(header);
      if (!match?.[1]) throw new UnauthenticatedError('not_bearer');
      const token = match[1];
      if (client && JWT_SHAPE.test(token)) {
        let payload;
        try {
          const ticket = await client.verifyIdToken({ idToken: token, audience: config.audience });
          payload = ticket.getPayload();
        } catch {
          // google-auth-library's message can quote the token or its payload: never log it.
          throw new UnauthenticatedError('id_token_rejected');
        }
        const email = payload?.email?.toLowerCase();
        if (!email || payload?.email_verified !== true) {
          throw new UnauthenticatedError('id_token_email_unverified');
        }
        if (!allowed.has(email)) throw new UnauthenticatedError('invoker_not_allowed');
        return { kind: 'google', email };
      }
      if (secretDigest && timingSafeEqual(sha256(token), secretDigest)) return { kind: 'shared-secret' };
      throw new UnauthenticatedError(client ? 'not_id_token_nor_secret' : 'wrong_secret');
    },
  };
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Express middleware: 401 with no detail for every failure; the reason goes to the log. */
export function requireAuth(auth: Authenticator, log: Logger): RequestHandler {
  return (req, res, next) => {
    auth.verify(req.headers.authorization).then(
      (caller) => {
        res.locals.caller = caller;
        next();
      },
      (err: unknown) => {
        log.authRejected(err instanceof UnauthenticatedError ? err.message : 'internal_error', req.path);
        res
          .status(401)
          .set('WWW-Authenticate', 'Bearer')
          .json({ error: { code: 'unauthenticated', message: 'authentication required' } });
      },
    );
  };
}
