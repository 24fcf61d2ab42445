import type { AgentComponent, CreatedAgent } from './agent-protocol.ts';

/** How a sandbox run ended. Failures of the sandbox are data, not exceptions. */
export type RunStatus = 'ok' | 'error' | 'timeout' | 'oom' | 'output_limit';

/** Where the time of one run went, in milliseconds. */
export interface RunTimings {
  queueMs: number;
  createMs: number;
  agentMs: number;
  saveMs: number;
  cleanupMs: number;
}

/** The body of `200` from POST /v1/runs. */
export interface RunResult {
  runId: string;
  status: RunStatus;
  text: string;
  component: AgentComponent | null;
  agent: CreatedAgent | null;
  exitCode: number | null;
  durationMs: number;
  timings: RunTimings;
}
