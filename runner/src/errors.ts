import type { RunnerErrorCode } from '@agent-platform/contract';

/**
 * The runner's error vocabulary. Each maps to one HTTP status in http/app.ts and nowhere else.
 * Sandbox outcomes (timeout, oom, ...) are not errors: they are RunResult statuses.
 */
export abstract class RunnerError extends Error {
  abstract readonly code: RunnerErrorCode;
  abstract readonly httpStatus: number;
}

/** A request field is missing or invalid. */
export class InvalidRequestError extends RunnerError {
  override name = 'InvalidRequestError';
  readonly code = 'invalid_request';
  readonly httpStatus = 400;
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field;
  }
}

export class UnauthenticatedError extends RunnerError {
  override name = 'UnauthenticatedError';
  readonly code = 'unauthenticated';
  readonly httpStatus = 401;
}

/** Too many runs queued, for this user or overall; the client should retry later. */
export class OverloadedError extends RunnerError {
  override name = 'OverloadedError';
  readonly code = 'overloaded';
  readonly httpStatus = 429;
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * A run waited the queue's time while its client's share of the slots was full: one address's
 * (`address`) or the anonymous accounts' (`anonymous`). Other clients still find room.
 */
export class ShareFullError extends RunnerError {
  override name = 'ShareFullError';
  readonly code = 'share_full';
  readonly httpStatus = 429;
  readonly retryAfterSeconds: number;
  readonly share: 'address' | 'anonymous';
  constructor(share: 'address' | 'anonymous', message: string, retryAfterSeconds: number) {
    super(message);
    this.share = share;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The runner holds as many workspaces as its disk budget allows: no new user fits now. */
export class WorkspacesFullError extends RunnerError {
  override name = 'WorkspacesFullError';
  readonly code = 'workspaces_full';
  readonly httpStatus = 507;
  readonly retryAfterSeconds = 300;
  constructor(maxCount: number) {
    super(
      `this runner holds its maximum of ${maxCount} workspaces (WORKSPACES_DISK_BYTES); a new user's workspace cannot be created now`,
    );
  }
}

/** The Docker engine or the agent image is not available. */
export class NotReadyError extends RunnerError {
  override name = 'NotReadyError';
  readonly code = 'not_ready';
  readonly httpStatus = 503;
}

/** A call to the container platform did not answer in time (a stalled engine: 503). */
export class DeadlineError extends RunnerError {
  override name = 'DeadlineError';
  readonly code = 'not_ready';
  readonly httpStatus = 503;
}

/** A file of the workspace that does not exist. */
export class FileNotFoundError extends RunnerError {
  override name = 'FileNotFoundError';
  readonly code = 'not_found';
  readonly httpStatus = 404;
  constructor() {
    super('no such file in the workspace');
  }
}

/** A file larger than the files API carries. */
export class FileTooLargeError extends RunnerError {
  override name = 'FileTooLargeError';
  readonly code = 'body_too_large';
  readonly httpStatus = 413;
}

/** Another runner saved a newer snapshot of this workspace meanwhile (a fleet's rebalance): retry. */
export class WorkspaceBusyError extends RunnerError {
  override name = 'WorkspaceBusyError';
  readonly code = 'not_ready';
  readonly httpStatus = 503;
  constructor() {
    super('another runner saved a newer version of this workspace meanwhile; try again');
  }
}

/** The fleet's workspace store (Cloud Storage) could not be read or gave a bad snapshot: retry. */
export class WorkspaceStoreError extends RunnerError {
  override name = 'WorkspaceStoreError';
  readonly code = 'not_ready';
  readonly httpStatus = 503;
  constructor(detail: string) {
    super(`the workspace store could not be read: ${detail}`);
  }
}

/** The client went away before the run finished. */
export class ClientGoneError extends Error {
  override name = 'ClientGoneError';
}
