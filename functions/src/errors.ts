import type { FunctionsErrorCode } from '@agent-platform/contract';

/**
 * The functions' domain errors. Translated exactly once at each boundary: to HttpsError in
 * http/create-callables.ts and to an HTTP status in http/api.ts (both through http/translate.ts).
 * Messages are short, safe for clients, and say what to do.
 */
export type DomainCode = FunctionsErrorCode;

export abstract class DomainError extends Error {
  abstract readonly code: DomainCode;
  /** Set when a send failed after its conversation was stored, so clients can open it. */
  conversationId?: string;
}

export class InvalidInputError extends DomainError {
  override name = 'InvalidInputError';
  readonly code = 'invalid-argument';
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field;
  }
}

export class NotSignedInError extends DomainError {
  override name = 'NotSignedInError';
  readonly code = 'unauthenticated';
  constructor() {
    super('sign in first');
  }
}

/** ENFORCE_APP_CHECK is on and the REST call has no valid App Check token. */
export class AppCheckRequiredError extends DomainError {
  override name = 'AppCheckRequiredError';
  readonly code = 'unauthenticated';
  constructor() {
    super('a valid App Check token is required (X-Firebase-AppCheck header)');
  }
}

/** Also what another user's conversation looks like: its existence is not revealed. */
export class ConversationNotFoundError extends DomainError {
  override name = 'ConversationNotFoundError';
  readonly code = 'not-found';
  constructor() {
    super('no such conversation');
  }
}

/** Also what another user's agent looks like. */
export class AgentNotFoundError extends DomainError {
  override name = 'AgentNotFoundError';
  readonly code = 'not-found';
  constructor(message = 'no such agent') {
    super(message);
  }
}

export class FileNotFoundError extends DomainError {
  override name = 'FileNotFoundError';
  readonly code = 'not-found';
  constructor() {
    super('no such file in your workspace');
  }
}

export class RateLimitedError extends DomainError {
  override name = 'RateLimitedError';
  readonly code = 'resource-exhausted';
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The runner could not be reached, refused for capacity, or is not ready. */
export class RunnerUnavailableError extends DomainError {
  override name = 'RunnerUnavailableError';
  readonly code = 'unavailable';
  /** Why, for the log only (a status code, a connection error's code, a stream that ended). */
  readonly detail: string | undefined;
  constructor(message = 'the agent runner is unavailable; try again shortly', detail?: string) {
    super(message);
    this.detail = detail;
  }
}

export class RunnerTimeoutError extends DomainError {
  override name = 'RunnerTimeoutError';
  readonly code = 'deadline-exceeded';
  constructor() {
    super('the agent did not answer in time');
  }
}

/** Firestore did not answer within FIRESTORE_CALL_TIMEOUT_MS (or refused for a transient reason). */
export class DatabaseUnavailableError extends DomainError {
  override name = 'DatabaseUnavailableError';
  readonly code = 'unavailable';
  readonly detail: string;
  constructor(detail: string) {
    super('the database is unavailable; try again shortly');
    this.detail = detail;
  }
}

/** A retry of a request that is still being processed. */
export class RequestInProgressError extends DomainError {
  override name = 'RequestInProgressError';
  readonly code = 'aborted';
  constructor() {
    super('this request is still being processed; retry shortly');
  }
}

/** Our own machinery broke (e.g. the runner answered something unexpected). Details go to logs. */
export class InternalError extends DomainError {
  override name = 'InternalError';
  readonly code = 'internal';
  readonly detail: string;
  constructor(detail: string) {
    super('internal error');
    this.detail = detail;
  }
}
