import { settleBy, type AgentRequest } from '@agent-platform/contract';
import { ClientGoneError } from '../errors.ts';
import type { Logger } from '../logs.ts';
import type { ExchangeOptions, SandboxHandle } from './backend.ts';
import { classify, type Classified, type ClassifyLimits } from './classify.ts';
import type { SandboxLease } from './sandbox-lease.ts';

export interface SandboxRunInput {
  /** The request line for the agent; its runId and userId name the run and whose sandbox it is. */
  request: AgentRequest;
  timeoutMs: number;
  /** Aborted when the client goes away: the run is killed and its sandbox removed. */
  signal: AbortSignal;
  /** Called for each text delta as the agent produces it. */
  onText?: ExchangeOptions['onText'];
  /** Answers the model requests of code in the sandbox (absent: they are answered 503). */
  onModelRequest?: ExchangeOptions['onModelRequest'];
}

export interface SandboxOutcome extends Classified {
  containerId: string;
  warm: boolean;
  timings: { createMs: number; agentMs: number; saveMs: number };
  /**
   * The run's workspace was not saved: another runner saved a newer snapshot of it meanwhile
   * (WORKSPACE_STORE=gcs). The answer should say so.
   */
  saveLost: boolean;
}

const now = () => performance.now();
/** Exit code reported when the host killed the sandbox (SIGKILL). */
const KILLED = 137;
/**
 * How long to wait for the exit code of an agent whose stream closed on its own. The stream can
 * close a moment before the platform records the exit; a sandbox that never reports one (a hung
 * engine) must not hold the run, so after this the exit code is unknown (null).
 */
export const LATE_EXIT_WAIT_MS = 5_000;

/**
 * One request in a leased sandbox: the exchange, the save of /workspace, and what happened,
 * classified. Throws ClientGoneError when the client went away; the caller releases the lease.
 */
export async function runInSandbox(
  lease: SandboxLease,
  input: SandboxRunInput,
  limits: ClassifyLimits,
  log: Logger,
): Promise<SandboxOutcome> {
  const s = lease.sandbox;
  const runId = input.request.runId;
  const oomBefore = s.oomEvents();
  const tAgent = now();
  const x = await s.exchange(input.request, {
    timeoutMs: input.timeoutMs,
    signal: input.signal,
    onText: input.onText,
    onModelRequest: input.onModelRequest,
  });
  const agentMs = now() - tAgent;
  if (x.ending === 'aborted') throw new ClientGoneError('client disconnected');

  // Only a run that ran code can change the workspace or hit the memory limit; the agent says so
  // (a lie only costs its own user). Saving before answering means an answered run is persisted,
  // and gives the platform's `oom` event time to arrive.
  let saveMs = 0;
  let saveLost = false;
  if (x.ending === 'result' && x.result?.workspaceChanged !== false) {
    const tSave = now();
    const bytes = await s.save(runId, lease.signal);
    saveMs = now() - tSave;
    if (input.signal.aborted) throw new ClientGoneError('client disconnected');
    if (bytes === 'conflict') saveLost = true;
    else if (bytes > 0) log.workspaceSaved(runId, s.id, bytes, Math.round(saveMs));
  }
  let exitCode: number | null = x.ending === 'result' ? 0 : KILLED;
  let oom = s.oomEvents() > oomBefore;
  if (x.ending === 'stream-closed') {
    const end = await exited(s);
    exitCode = end.exitCode;
    oom ||= end.oomKilled;
  }
  if (oom) s.markUnhealthy('out of memory'); // removed now; the next run gets a fresh sandbox
  if (x.protocolError) log.agentOutputInvalid(runId, s.id, x.protocolError);
  const stderrTail = s.stderrTail();
  if (stderrTail) log.agentStderr(runId, s.id, stderrTail);
  return {
    ...classify(limits, input.timeoutMs, x, oom, exitCode),
    containerId: s.id,
    warm: lease.warm,
    timings: { createMs: lease.createMs, agentMs, saveMs },
    saveLost,
  };
}

/** The agent process ended on its own: the sandbox has exited or is about to. */
async function exited(s: SandboxHandle): Promise<{ exitCode: number | null; oomKilled: boolean }> {
  const exit = await settleBy(s.waitExit(), AbortSignal.timeout(LATE_EXIT_WAIT_MS));
  return { exitCode: exit.settled ? exit.value : null, oomKilled: await s.oomKilled() };
}
