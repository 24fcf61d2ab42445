import type { ModelUsage } from '@agent-platform/contract';
/**
 * Every log line the runner writes lives here, so messages stay consistent and nothing logs a
 * secret by accident. One JSON object per line (Cloud Logging reads `severity` and `message`).
 * Lines about a container always carry its id and run id.
 */
export type Severity = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';

export interface LogSink {
  write(line: string): void;
}

const stdoutSink: LogSink = { write: (line) => process.stdout.write(line + '\n') };

export class Logger {
  readonly #sink: LogSink;
  constructor(sink: LogSink = stdoutSink) {
    this.#sink = sink;
  }

  #emit(severity: Severity, message: string, fields: Record<string, unknown> = {}): void {
    this.#sink.write(JSON.stringify({ severity, message, time: new Date().toISOString(), ...fields }));
  }

  started(port: number, host: string, config: Record<string, unknown>): void {
    this.#emit('INFO', `runner listening on ${host}:${port}`, { port, config });
  }
  configInvalid(problems: string[]): void {
    this.#emit('ERROR', 'runner refused to start: invalid configuration', { problems });
  }
  request(method: string, path: string, status: number, ms: number): void {
    this.#emit('INFO', 'request', { method, path, status, ms });
  }
  authRejected(reason: string, path: string): void {
    this.#emit('WARNING', 'authentication rejected', { reason, path });
  }
  runFinished(fields: {
    runId: string;
    userId: string;
    containerId: string | null;
    status: string;
    durationMs: number;
    exitCode: number | null;
    warm: boolean;
    /** The run's model usage, when it made model calls (counts only, never content). */
    usage?: ModelUsage;
  }): void {
    this.#emit('INFO', 'run finished', fields);
  }
  /** A result named what its agent's tools forbid (a forged line, or an agent that ignores them). */
  forbiddenByTools(runId: string, dropped: string[]): void {
    this.#emit('WARNING', "run result beyond its agent's tools; dropped", { runId, dropped });
  }
  runFailed(runId: string, containerId: string | null, err: unknown): void {
    this.#emit('ERROR', 'run failed in the runner', { runId, containerId, error: describe(err) });
  }
  agentStderr(runId: string, containerId: string, tail: string): void {
    this.#emit('DEBUG', 'agent stderr', { runId, containerId, stderrTail: tail });
  }
  agentOutputInvalid(runId: string, containerId: string, problem: string): void {
    this.#emit('WARNING', 'agent output invalid', { runId, containerId, problem });
  }
  workspaceSaveFailed(runId: string, containerId: string, reason: string): void {
    this.#emit('WARNING', 'workspace not saved', { runId, containerId, reason });
  }
  containerRemoveFailed(containerId: string, err: unknown): void {
    this.#emit('WARNING', 'container removal failed; the reaper will retry', {
      containerId,
      error: describe(err),
    });
  }
  reaped(containerIds: string[], reason: 'startup' | 'periodic' | 'shutdown'): void {
    if (containerIds.length > 0) this.#emit('INFO', 'reaped orphaned sandboxes', { containerIds, reason });
  }
  oomWatchSubscribed(): void {
    this.#emit('DEBUG', 'watching Docker oom events');
  }
  oomWatchFailed(err: unknown): void {
    this.#emit('WARNING', 'cannot watch Docker oom events; retrying', { error: describe(err) });
  }
  /**
   * A provider reported more tokens for a call than the gateway held for it (its prompt estimated
   * at 4 bytes a token, plus the cap it sent): the run may pass its budget by the difference.
   */
  modelOverReserved(fields: {
    runId: string | null;
    model: string;
    reservedTokens: number;
    inputTokens: number;
    outputTokens: number;
  }): void {
    this.#emit('WARNING', 'model provider reported more tokens than reserved', fields);
  }
  workspaceSaved(runId: string, containerId: string, bytes: number, ms: number): void {
    this.#emit('INFO', 'workspace saved', { runId, containerId, bytes, ms });
  }
  sandboxRetired(containerId: string, userId: string, reason: string): void {
    this.#emit('INFO', 'sandbox removed', { containerId, userId, reason });
  }
  reaperFailed(err: unknown): void {
    this.#emit('WARNING', 'reaper pass failed', { error: describe(err) });
  }
  workspaceDeleted(userId: string): void {
    this.#emit('INFO', 'workspace deleted', { userId });
  }
  unexpected(where: string, err: unknown): void {
    this.#emit('ERROR', `unexpected error in ${where}`, { error: describe(err) });
  }
  memoryPressure(availableBytes: number, reserveBytes: number, evicted: number): void {
    this.#emit('WARNING', 'host memory below the reserve: idle sandboxes removed', {
      availableBytes,
      reserveBytes,
      evicted,
    });
  }
  runtimeChosen(runtime: string, requested: string, available: string[]): void {
    this.#emit('INFO', `sandboxes run under ${runtime}`, { runtime, requested, available });
  }
  draining(deadlineMs: number): void {
    this.#emit('INFO', 'draining: no new runs; waiting for the runs in flight', { deadlineMs });
  }
  shuttingDown(signal: string): void {
    this.#emit('INFO', `shutting down on ${signal}`);
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
