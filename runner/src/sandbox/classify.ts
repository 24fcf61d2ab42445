import type { AgentComponent, CreatedAgent, RunStatus } from '@agent-platform/contract';
import type { Exchange } from './backend.ts';

const MiB = 1024 * 1024;

/** What a run's result says about how it ended (the rest of RunResult is bookkeeping). */
export interface Classified {
  status: RunStatus;
  text: string;
  component: AgentComponent | null;
  agent: CreatedAgent | null;
  exitCode: number | null;
}

/** The limits named in the texts of failed runs. */
export interface ClassifyLimits {
  outputLimitBytes: number;
  memoryBytes: number;
}

/** Turns what happened into a run result. The order matters: host-side kills win. */
export function classify(
  limits: ClassifyLimits,
  timeoutMs: number,
  x: Exchange,
  oom: boolean,
  exitCode: number | null,
): Classified {
  const fail = (status: RunStatus, text: string): Classified => ({
    status,
    text,
    component: null,
    agent: null,
    exitCode,
  });
  if (x.ending === 'timeout')
    return fail('timeout', `The run took longer than ${timeoutMs} ms and was stopped.`);
  if (x.ending === 'output_limit') {
    return fail(
      'output_limit',
      `The agent's output exceeded ${limits.outputLimitBytes} bytes; the run was stopped.`,
    );
  }
  if (oom) {
    const mib = Math.round(limits.memoryBytes / MiB);
    return fail('oom', `The sandbox ran out of memory (limit ${mib} MiB) and was stopped.`);
  }
  if (x.protocolError) return fail('error', `The agent's output was malformed: ${x.protocolError}.`);
  if (!x.result) {
    return fail(
      'error',
      exitCode === null
        ? 'The agent ended without a result.'
        : `The agent ended without a result (exit code ${exitCode}).`,
    );
  }
  return {
    status: x.result.status === 'error' ? 'error' : 'ok',
    text: x.result.text,
    component: x.result.component ?? null,
    agent: x.result.agent ?? null,
    exitCode,
  };
}
