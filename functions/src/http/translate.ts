import { FUNCTIONS_ERROR_HTTP_STATUS, type RestErrorBody } from '@agent-platform/contract';
import { HttpsError } from 'firebase-functions/v2/https';
import { DomainError, InternalError, InvalidInputError, RateLimitedError } from '../errors.ts';
import { log } from '../logs.ts';

/** Anything thrown -> a DomainError; unknown errors are logged and become `internal`. */
export function toDomain(err: unknown, where: string): DomainError {
  if (err instanceof DomainError) {
    if (err instanceof InternalError) log.internalError(where, err.detail);
    return err;
  }
  log.unexpected(where, err);
  return new InternalError('unexpected');
}

/** The one translation to callable errors. Clients never see internals or stack traces. */
export function toHttpsError(err: unknown, where: string): HttpsError {
  const d = toDomain(err, where);
  const details: Record<string, unknown> = {};
  if (d instanceof InvalidInputError && d.field) details.field = d.field;
  if (d instanceof RateLimitedError) details.retryAfterSeconds = d.retryAfterSeconds;
  if (d.conversationId) details.conversationId = d.conversationId;
  return new HttpsError(d.code, d.message, Object.keys(details).length ? details : undefined);
}

/** The one translation to REST responses: status, headers and a JSON body with a stable code. */
export function toHttpError(
  err: unknown,
  where: string,
): { status: number; headers: Record<string, string>; body: RestErrorBody } {
  const d = toDomain(err, where);
  const headers: Record<string, string> = {};
  if (d instanceof RateLimitedError) headers['retry-after'] = String(d.retryAfterSeconds);
  return {
    status: FUNCTIONS_ERROR_HTTP_STATUS[d.code],
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
