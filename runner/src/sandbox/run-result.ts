import type { AgentComponent, CreatedAgent } from './agent-protocol.ts';

/** How a sandbox run ended. Failures of the sandbox are data, not exceptions. */
export type RunStatus = 'ok' | 'error' | 'timeout' | 'oom' | 'output_limit';

/** Where the time of one run went, in milliseconds. */
export interface RunTimings {
  /** Waiting for the user's turn and a global slot. */
  queueMs: number;
  /** Creating and starting the sandbox (0 when warm). */
  createMs: number;
  /** From sending the request to the agent's result. */
  agentMs: number;
  /** Saving /workspace into the user's volume (0 when the run changed nothing). */
  saveMs: number;
}

/** The body of `200` from POST /v1/runs. */
export interface RunResult {
  runId: string;
  status: RunStatus;
  text: string;
  component: AgentComponent | null;
  agent: CreatedAgent | null;
  /** 0 when the agent answered, 137 when the host killed the sandbox, else the agent's exit code. */
  exitCode: number | null;
  durationMs: number;
  /** Whether a warm sandbox served the run. */
  warm: boolean;
  timings: RunTimings;
}
