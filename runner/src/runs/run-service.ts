import { randomUUID } from 'node:crypto';
import {
  AGENT_PROTOCOL_VERSION,
  REPLY_MAX_CHARS,
  type AgentRequest,
  type AgentTool,
  type RunRequest,
  type RunResult,
  type WarmResponse,
} from '@agent-platform/contract';
import type { RunnerConfig } from '../config.ts';
import type { RunGate, RunShare } from '../concurrency/run-gate.ts';
import { DeadlineError, WorkspaceBusyError } from '../errors.ts';
import type { Logger } from '../logs.ts';
import type { Metrics } from '../metrics.ts';
import type { ModelGateway } from '../models/model-gateway.ts';
import type { SandboxHandle } from '../sandbox/backend.ts';
import type { SandboxEngine } from '../sandbox/engine.ts';
import type { SandboxOutcome } from '../sandbox/sandbox-run.ts';
import { runModels } from './run-models.ts';

/** One files API operation, sandbox creation and save included, at most. */
const FILE_OP_TIMEOUT_MS = 20_000;

/** Added to the reply of a run whose workspace save lost to a newer one (WORKSPACE_STORE=gcs). */
export const WORKSPACE_CONFLICT_NOTE =
  '\n\n[workspace not saved: another runner saved a newer version of this workspace meanwhile]';

/** A run request that names nobody (a direct caller of the runner API): no share applies. */
const NO_CLIENT: RunShare = { addressKey: null, anonymous: false };

/**
 * What of an agent's result its tool list allows: a created agent needs `create_agent`, a
 * component `show_component`. Decided here, outside the sandbox, from the run request: code in
 * the sandbox can write protocol lines of its own (docs/security.md), and the agent's own
 * honesty is no bound.
 */
export function allowedByTools(
  req: Pick<RunRequest, 'agent'>,
  outcome: Pick<SandboxOutcome, 'agent' | 'component'>,
): { agent: SandboxOutcome['agent']; component: SandboxOutcome['component']; dropped: string[] } {
  const tools: readonly AgentTool[] | null = req.agent ? req.agent.tools : null; // null: every tool
  const may = (tool: AgentTool) => tools === null || tools.includes(tool);
  const dropped: string[] = [];
  if (outcome.agent && !may('create_agent')) dropped.push('agent');
  if (outcome.component && !may('show_component')) dropped.push('component');
  return {
    agent: dropped.includes('agent') ? null : outcome.agent,
    component: dropped.includes('component') ? null : outcome.component,
    dropped,
  };
}

export interface RunServiceDeps {
  config: RunnerConfig;
  gate: RunGate;
  engine: SandboxEngine;
  /** Serves the model requests of code in sandboxes (null: answered 503). */
  models: ModelGateway | null;
  log: Logger;
  metrics?: Metrics | undefined;
}

/**
 * Admission (the gate) plus execution (the engine) plus the run's bookkeeping: the request line
 * for the agent, its use of the model gateway, and the answer.
 */
export class RunService {
  readonly #config: RunnerConfig;
  readonly #gate: RunGate;
  readonly #engine: SandboxEngine;
  readonly #models: ModelGateway | null;
  readonly #log: Logger;
  readonly #metrics: Metrics | undefined;

  constructor(deps: RunServiceDeps) {
    this.#config = deps.config;
    this.#gate = deps.gate;
    this.#engine = deps.engine;
    this.#models = deps.models;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
  }

  async run(req: RunRequest, signal: AbortSignal, onText?: (delta: string) => void): Promise<RunResult> {
    const runId = randomUUID();
    const t0 = performance.now();
    const release = await this.#gate.acquire(req.userId, signal, req.client ?? NO_CLIENT);
    const queueMs = performance.now() - t0;
    const timeoutMs = req.timeoutMs ?? this.#config.runTimeoutMs;
    const models = runModels(this.#models, req, runId, timeoutMs, signal);
    try {
      const request: AgentRequest = {
        protocol: AGENT_PROTOCOL_VERSION,
        runId,
        userId: req.userId,
        conversationId: req.conversationId,
        message: req.message,
        history: req.history,
        model: models.model,
        agent: req.agent ?? null,
      };
      const outcome = await this.#engine.run({
        request,
        timeoutMs,
        signal,
        onText,
        onModelRequest: models.onModelRequest,
      });
      const usage = await models.finish();
      const allowed = allowedByTools(req, outcome);
      if (allowed.dropped.length > 0) this.#log.forbiddenByTools(runId, allowed.dropped);
      const durationMs = Math.round(performance.now() - t0);
      this.#log.runFinished({
        runId,
        userId: req.userId,
        containerId: outcome.containerId,
        status: outcome.status,
        durationMs,
        exitCode: outcome.exitCode,
        warm: outcome.warm,
        ...(usage.calls > 0 ? { usage } : {}),
      });
      this.#metrics?.runFinished(outcome.status, durationMs, outcome.warm);
      const r = (ms: number) => Math.round(ms * 10) / 10;
      return {
        runId,
        status: outcome.status,
        text: outcome.saveLost
          ? (outcome.text + WORKSPACE_CONFLICT_NOTE).slice(0, REPLY_MAX_CHARS)
          : outcome.text,
        component: allowed.component,
        agent: allowed.agent,
        exitCode: outcome.exitCode,
        durationMs,
        warm: outcome.warm,
        timings: {
          queueMs: r(queueMs),
          createMs: r(outcome.timings.createMs),
          agentMs: r(outcome.timings.agentMs),
          saveMs: r(outcome.timings.saveMs),
        },
        usage,
        runnerId: this.#config.runnerId,
      };
    } catch (err) {
      this.#log.runFailed(runId, null, err);
      throw err;
    } finally {
      // Every ending aborts and charges the calls still in flight (at once when the result
      // came first: finish() is idempotent); the slot is held until they have settled.
      await models.finish();
      release();
    }
  }

  /** Starts the user's sandbox ahead of their first message (no-op if one is warm or busy). */
  prewarm(userId: string, signal: AbortSignal): Promise<WarmResponse> {
    return this.#inTurn(userId, signal, () => this.#engine.prewarm(userId, randomUUID(), signal));
  }

  /**
   * A files API operation on the user's workspace, in their turn (after their running run, so it
   * sees that run's files), in their sandbox; `changed` saves the workspace afterwards. Bounded
   * like a run: FILE_OP_TIMEOUT_MS and the client's signal.
   */
  files<T>(
    userId: string,
    signal: AbortSignal,
    op: (s: SandboxHandle, signal: AbortSignal) => Promise<{ value: T; changed: boolean }>,
  ): Promise<T> {
    return this.#inTurn(userId, signal, async () => {
      const runId = randomUUID();
      const lease = await this.#engine.lease({ userId, runId, signal, timeoutMs: FILE_OP_TIMEOUT_MS });
      try {
        const { value, changed } = await op(lease.sandbox, lease.signal);
        // A fleet's rebalance: another runner saved this workspace meanwhile (503, retry).
        if (changed && (await lease.sandbox.save(runId, lease.signal)) === 'conflict') {
          throw new WorkspaceBusyError();
        }
        await lease.release();
        return value;
      } catch (err) {
        const unfinished = lease.signal.aborted || err instanceof DeadlineError;
        await lease.release(unfinished ? 'a file operation did not finish' : undefined);
        throw err;
      }
    });
  }

  /** Deletes a user's workspace (and their warm sandbox) once any run of theirs has finished. */
  deleteWorkspace(userId: string, signal: AbortSignal): Promise<boolean> {
    return this.#inTurn(userId, signal, () => this.#engine.deleteWorkspace(userId));
  }

  /** Runs `fn` in the user's turn (the gate: after their earlier operations, within a slot). */
  async #inTurn<T>(userId: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    const release = await this.#gate.acquire(userId, signal);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
