import type { AgentDoc, HistoryEntry, RunClient } from '@agent-platform/contract';
import type { RunRequest, RunResult, RunnerClient } from '../runner/runner-client.ts';

/** One turn of a conversation, as it is run: everything the run needs, and no Firestore handle. */
export interface Turn {
  uid: string;
  conversationId: string;
  message: string;
  /** The messages before this one, bounded (history.ts). */
  history: HistoryEntry[];
  /** The conversation's agent (null: the runner's default agent). */
  agent: AgentDoc | null;
  /** Tokens the run's model calls may use (admission.ts). */
  tokenBudget: number;
  /** Whom it is for, for the runner's fair shares of its slots. */
  client: RunClient;
}

/** Runs a turn and gives its result; a failure of the run's machinery is thrown (a DomainError). */
export type RunTurn = (turn: Turn, onText?: (delta: string) => void) => Promise<RunResult>;

/** The runner's request for a turn (POST /v1/runs); the agent's model only when it names one. */
export function runRequest(turn: Turn, runTimeoutMs: number): RunRequest {
  const { agent } = turn;
  return {
    userId: turn.uid,
    conversationId: turn.conversationId,
    message: turn.message,
    history: turn.history,
    timeoutMs: runTimeoutMs,
    tokenBudget: turn.tokenBudget,
    client: turn.client,
    ...(agent
      ? {
          agent: { name: agent.name, instructions: agent.instructions, tools: agent.tools },
          ...(agent.model ? { model: agent.model } : {}),
        }
      : {}),
  };
}

/** Turns run by the runner, while the caller waits (and streams). */
export function runnerTurn(runner: RunnerClient, runTimeoutMs: number): RunTurn {
  return (turn, onText) => runner.run(runRequest(turn, runTimeoutMs), onText);
}
