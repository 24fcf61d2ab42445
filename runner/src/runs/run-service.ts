import { randomUUID } from 'node:crypto';
import type { RunRequest, RunResult, WarmResponse } from '@agent-platform/contract';
import type { RunnerConfig } from '../config.ts';
import type { RunGate } from '../concurrency/run-gate.ts';
import type { Logger } from '../logs.ts';
import type { Metrics } from '../metrics.ts';
import type { SandboxHandle } from '../sandbox/backend.ts';
import type { SandboxEngine } from '../sandbox/engine.ts';

/** One files API operation, sandbox creation and save included, at most. */
const FILE_OP_TIMEOUT_MS = 20_000;

/** Admission (the gate) plus execution (the engine) plus the run's bookkeeping. */
export class RunService {
  readonly #config: RunnerConfig;
  readonly #gate: RunGate;
  readonly #engine: SandboxEngine;
  readonly #log: Logger;
  readonly #metrics: Metrics | undefined;

  constructor(config: RunnerConfig, gate: RunGate, engine: SandboxEngine, log: Logger, metrics?: Metrics) {
    this.#config = config;
    this.#gate = gate;
    this.#engine = engine;
    this.#log = log;
    this.#metrics = metrics;
  }

  async run(req: RunRequest, signal: AbortSignal, onText?: (delta: string) => void): Promise<RunResult> {
    const runId = randomUUID();
    const t0 = performance.now();
    const release = await this.#gate.acquire(req.userId, signal);
    const queueMs = performance.now() - t0;
    try {
      const outcome = await this.#engine.run({
        runId,
        userId: req.userId,
        conversationId: req.conversationId,
        message: req.message,
        history: req.history,
        timeoutMs: req.timeoutMs ?? this.#config.runTimeoutMs,
        model: req.model ?? null,
        tokenBudget: req.tokenBudget,
        agent: req.agent ?? null,
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
        ...(outcome.usage.calls > 0 ? { usage: outcome.usage } : {}),
      });
      this.#metrics?.runFinished(outcome.status, durationMs, outcome.warm);
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
        usage: outcome.usage,
        runnerId: this.#config.runnerId,
      };
    } catch (err) {
      this.#log.runFailed(runId, null, err);
      throw err;
    } finally {
      release();
    }
  }

  /** Starts the user's sandbox ahead of their first message (no-op if one is warm or busy). */
  async prewarm(userId: string, signal: AbortSignal): Promise<WarmResponse> {
    const release = await this.#gate.acquire(userId, signal);
    try {
      return await this.#engine.prewarm(userId, randomUUID());
    } finally {
      release();
    }
  }

  /**
   * A files API operation on the user's workspace, in their turn (after their running run, so it
   * sees that run's files), in their sandbox; `changed` saves the workspace afterwards.
   */
  async files<T>(
    userId: string,
    signal: AbortSignal,
    op: (s: SandboxHandle, signal: AbortSignal) => Promise<{ value: T; changed: boolean }>,
  ): Promise<T> {
    const release = await this.#gate.acquire(userId, signal);
    try {
      return await this.#engine.withSandbox(userId, randomUUID(), FILE_OP_TIMEOUT_MS, signal, op);
    } finally {
      release();
    }
  }

  /** Deletes a user's workspace (and their warm sandbox) once any run of theirs has finished. */
  async deleteWorkspace(userId: string, signal: AbortSignal): Promise<boolean> {
    const release = await this.#gate.acquire(userId, signal);
    try {
      return await this.#engine.deleteWorkspace(userId);
    } finally {
      release();
    }
  }
}
