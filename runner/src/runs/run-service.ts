import { randomUUID } from 'node:crypto';
import type { RunnerConfig } from '../config.ts';
import type { RunGate } from '../concurrency/run-gate.ts';
import type { Logger } from '../logs.ts';
import type { RunResult } from '../sandbox/run-result.ts';
import type { SandboxPool } from '../sandbox/sandbox-pool.ts';
import type { SandboxRunner } from '../sandbox/sandbox-runner.ts';
import type { Workspaces } from '../sandbox/workspaces.ts';
import type { RunRequest } from './run-request.ts';

/** Admission (gate) plus execution (sandbox) plus the run's bookkeeping. */
export class RunService {
  readonly #config: RunnerConfig;
  readonly #gate: RunGate;
  readonly #sandboxes: SandboxRunner;
  readonly #pool: SandboxPool;
  readonly #workspaces: Workspaces;
  readonly #log: Logger;

  constructor(
    config: RunnerConfig,
    gate: RunGate,
    deps: { sandboxes: SandboxRunner; pool: SandboxPool; workspaces: Workspaces },
    log: Logger,
  ) {
    this.#config = config;
    this.#gate = gate;
    this.#sandboxes = deps.sandboxes;
    this.#pool = deps.pool;
    this.#workspaces = deps.workspaces;
    this.#log = log;
  }

  async run(req: RunRequest, signal: AbortSignal, onText?: (delta: string) => void): Promise<RunResult> {
    const runId = randomUUID();
    const t0 = performance.now();
    const release = await this.#gate.acquire(req.userId, signal);
    const queueMs = performance.now() - t0;
    try {
      const outcome = await this.#sandboxes.run({
        runId,
        userId: req.userId,
        conversationId: req.conversationId,
        message: req.message,
        history: req.history,
        timeoutMs: req.timeoutMs ?? this.#config.runTimeoutMs,
        signal,
        onText,
      });
      const durationMs = Math.round(performance.now() - t0);
      this.#log.runFinished({
        runId,
        userId: req.userId,
        containerId: outcome.containerId,
        status: outcome.status,
        durationMs,
        exitCode: outcome.exitCode,
        warm: outcome.warm,
      });
      const r = (ms: number) => Math.round(ms * 10) / 10;
      return {
        runId,
        status: outcome.status,
        text: outcome.text,
        component: outcome.component,
        agent: outcome.agent,
        exitCode: outcome.exitCode,
        durationMs,
        warm: outcome.warm,
        timings: {
          queueMs: r(queueMs),
          createMs: r(outcome.timings.createMs),
          agentMs: r(outcome.timings.agentMs),
          saveMs: r(outcome.timings.saveMs),
        },
      };
    } catch (err) {
      this.#log.runFailed(runId, null, err);
      throw err;
    } finally {
      release();
    }
  }

  /** Starts the user's sandbox ahead of their first message (no-op if one is warm or busy). */
  async prewarm(userId: string, signal: AbortSignal): Promise<{ warm: boolean; created: boolean }> {
    const release = await this.#gate.acquire(userId, signal);
    try {
      return await this.#sandboxes.prewarm(userId, randomUUID());
    } finally {
      release();
    }
  }

  /** Deletes a user's workspace (and their warm sandbox) once any run of theirs has finished. */
  async deleteWorkspace(userId: string, signal: AbortSignal): Promise<boolean> {
    const release = await this.#gate.acquire(userId, signal);
    try {
      await this.#pool.discard(userId, 'workspace deleted');
      const existed = await this.#workspaces.remove(userId);
      this.#log.workspaceDeleted(userId);
      return existed;
    } finally {
      release();
    }
  }
}
