import { HttpsError, type FunctionsErrorCode } from 'firebase-functions/v2/https';
import { logger } from 'firebase-functions';
import { DomainError, InternalError, InvalidInputError, RateLimitedError } from '../errors.ts';

/** HTTP statuses of the REST API, per domain code. */
const HTTP_STATUS: Record<DomainError['code'], number> = {
  'invalid-argument': 400,
  unauthenticated: 401,
  'not-found': 404,
  'resource-exhausted': 429,
  aborted: 409,
  unavailable: 503,
  'deadline-exceeded': 504,
  internal: 500,
};

/** Anything thrown -> a DomainError; unknown errors are logged and become `internal`. */
export function toDomain(err: unknown, where: string): DomainError {
  if (err instanceof DomainError) {
    if (err instanceof InternalError) logger.error(`${where}: ${err.detail}`);
    return err;
  }
  logger.error(`${where}: unexpected error`, {
    error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
  });
  return new InternalError('unexpected');
}

/** The one translation to callable errors. Clients never see internals or stack traces. */
export function toHttpsError(err: unknown, where: string): HttpsError {
  const d = toDomain(err, where);
  const details: Record<string, unknown> = {};
  if (d instanceof InvalidInputError && d.field) details.field = d.field;
  if (d instanceof RateLimitedError) details.retryAfterSeconds = d.retryAfterSeconds;
  if (d.conversationId) details.conversationId = d.conversationId;
  return new HttpsError(
    d.code as FunctionsErrorCode,
    d.message,
    Object.keys(details).length ? details : undefined,
  );
}

/** The one translation to REST responses: status, headers and a JSON body with a stable code. */
export function toHttpError(err: unknown, where: string) {
  const d = toDomain(err, where);
  const headers: Record<string, string> = {};
  if (d instanceof RateLimitedError) headers['retry-after'] = String(d.retryAfterSeconds);
  return {
    status: HTTP_STATUS[d.code],
    headers,
    body: {
      error: {
        code: d.code,
        message: d.message,
        ...(d instanceof InvalidInputError && d.field ? { field: d.field } : {}),
        ...(d.conversationId ? { conversationId: d.conversationId } : {}),
      },
    },
  };
}
