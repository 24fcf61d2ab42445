import { createHash } from 'node:crypto';
import * as logger from 'firebase-functions/logger';

/**
 * Every log line the functions write lives here (the runner's runner/src/logs.ts is the model), so
 * messages stay consistent and nothing logs a secret or a raw user id by accident. One structured
 * entry per call; Cloud Logging reads `severity` and `message`. The sink is injectable for tests.
 */
export type Severity = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';

export interface LogSink {
  write(severity: Severity, message: string, fields: Record<string, unknown>): void;
}

const firebaseSink: LogSink = {
  write(severity, message, fields) {
    logger.write({ severity, message, ...fields });
  },
};

/** A stable, non-reversible stand-in for a user id in logs (first 16 hex of its SHA-256). */
export function userHash(uid: string): string {
  return createHash('sha256').update(uid, 'utf8').digest('hex').slice(0, 16);
}

/** What one sendMessage call did, logged once when it ends (callable or REST, streamed or not). */
export interface MessageHandled {
  uid: string;
  conversationId: string | null;
  /** The user's message (null when it was not stored, or for a replay). */
  messageId: string | null;
  /** The agent's reply (null when the call failed). */
  replyId: string | null;
  runId: string | null;
  /** The run's status, or the error code the caller got. */
  status: string;
  ms: number;
  streamed: boolean;
  /** A retry answered from its requestId's record. */
  replay: boolean;
  warm: boolean | null;
  /** Why the runner was unavailable (a status, a connection error's code), when it was. */
  detail?: string;
}

export class Logger {
  readonly #sink: LogSink;
  constructor(sink: LogSink = firebaseSink) {
    this.#sink = sink;
  }

  messageHandled(m: MessageHandled): void {
    const { uid, ...rest } = m;
    this.#sink.write('INFO', 'message handled', { user: userHash(uid), ...rest });
  }
  /**
   * A REST call's ID token was refused (expired, revoked, malformed...). Only firebase-admin's
   * error code is kept: its message can quote the token.
   */
  tokenRejected(route: string, err: unknown): void {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'unknown';
    this.#sink.write('INFO', 'REST call with a refused ID token', { route, code });
  }
  appCheckRejected(route: string, err: unknown): void {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'unknown';
    this.#sink.write('INFO', 'REST call with a refused App Check token', { route, code });
  }
  configInvalid(problems: string[]): void {
    this.#sink.write('ERROR', 'functions refused to start: invalid configuration', { problems });
  }
  internalError(where: string, detail: string): void {
    this.#sink.write('ERROR', `${where}: ${detail}`, { where });
  }
  unexpected(where: string, err: unknown): void {
    this.#sink.write('ERROR', `${where}: unexpected error`, { where, error: describe(err) });
  }
  /** A message could not be marked failed: its sender got an error, but the message stays pending. */
  markFailedFailed(uid: string, conversationId: string, messageId: string, err: unknown): void {
    this.#sink.write('ERROR', 'could not mark a message failed', {
      user: userHash(uid),
      conversationId,
      messageId,
      error: describe(err),
    });
  }
  /** Firestore refused a reply (or its request record): the message is marked failed instead. */
  replyNotStored(uid: string, conversationId: string, messageId: string, err: unknown): void {
    this.#sink.write('ERROR', 'a reply could not be stored', {
      user: userHash(uid),
      conversationId,
      messageId,
      error: describe(err),
    });
  }
  /** A run created an agent past the user's cap (or the count failed): not stored. */
  agentNotCreated(uid: string, conversationId: string, runId: string, why: string): void {
    this.#sink.write('WARNING', 'agent not created', { user: userHash(uid), conversationId, runId, why });
  }
  /** An agent's component outside the vocabulary (or malformed) was not stored. */
  componentDropped(uid: string, conversationId: string, runId: string, why: string): void {
    this.#sink.write('WARNING', 'component dropped', { user: userHash(uid), conversationId, runId, why });
  }
  /** A deleted account's workspace and documents are gone. */
  userDataDeleted(uid: string, workspace: boolean, ms: number): void {
    this.#sink.write('INFO', 'deleted account: data removed', { user: userHash(uid), workspace, ms });
  }
  userDataNotDeleted(uid: string, err: unknown): void {
    this.#sink.write('ERROR', 'deleted account: data not removed', {
      user: userHash(uid),
      error: describe(err),
    });
  }
  /** A stored document does not match its contract schema: it is left out, or the call refused. */
  documentInvalid(uid: string, collection: string, id: string, problem: string): void {
    this.#sink.write('ERROR', 'a stored document does not match the contract', {
      user: userHash(uid),
      collection,
      id,
      problem,
    });
  }
  /** A pending message whose function died (lease expired) was marked failed by the sweep. */
  leaseExpired(uid: string, conversationId: string, messageId: string): void {
    this.#sink.write('WARNING', 'pending message expired', {
      user: userHash(uid),
      conversationId,
      messageId,
    });
  }
  /** An inactive user's workspace was deleted (WORKSPACE_IDLE_DAYS). */
  workspaceExpired(uid: string): void {
    this.#sink.write('INFO', 'idle workspace deleted', { user: userHash(uid) });
  }
  /** A call outlived its lease and a retry took its message over: its outcome is not stored. */
  outcomeDropped(uid: string, conversationId: string, messageId: string): void {
    this.#sink.write('WARNING', 'outcome dropped: a retry owns the message', {
      user: userHash(uid),
      conversationId,
      messageId,
    });
  }
  /** The conversation was deleted while its message was in flight: nothing is left pending. */
  conversationGoneMidSend(uid: string, conversationId: string, messageId: string): void {
    this.#sink.write('INFO', 'conversation deleted while a message was in flight', {
      user: userHash(uid),
      conversationId,
      messageId,
    });
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** The functions' logger (one per instance). */
export const log = new Logger();
