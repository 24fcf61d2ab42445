import { NO_MODEL_USAGE, type ModelUsage } from '@agent-platform/contract';
import { newModelRun, type ModelGateway } from '../models/model-gateway.ts';
import type { ExchangeOptions } from '../sandbox/backend.ts';

/** One run's use of the model gateway. */
export interface RunModels {
  /** The model the run's agent should use (null: none configured, the agent answers offline). */
  model: string | null;
  /** Serves the model requests of code in the sandbox (absent: no gateway, they are answered 503). */
  onModelRequest: ExchangeOptions['onModelRequest'];
  /**
   * Ends the run's model use (its result, timeout, abort, protocol error, a dead sandbox: every
   * ending): refuses new calls, aborts those in flight at the provider, charges them, and gives
   * the final usage. Until it resolves the usage is not final (issue 18: calls still in flight
   * when a run ended were never counted).
   */
  finish(): Promise<ModelUsage>;
}

/**
 * A run's model and budget (from its request, within the runner's) and the handler of its model
 * requests, each bounded by the client's signal and the run's timeout.
 */
export function runModels(
  models: ModelGateway | null,
  req: { model?: string | null | undefined; tokenBudget?: number | undefined },
  runId: string,
  timeoutMs: number,
  signal: AbortSignal,
): RunModels {
  if (!models) {
    return { model: null, onModelRequest: undefined, finish: () => Promise.resolve({ ...NO_MODEL_USAGE }) };
  }
  const run = newModelRun(models.settings, req.model ?? null, req.tokenBudget, runId);
  // Made on the first model request: most runs make none, and the warm path stays as it was.
  let deadline: AbortSignal | null = null;
  const modelDeadline = () => (deadline ??= AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]));
  return {
    model: models.modelFor(run),
    onModelRequest: (request, reply) => void models.serve(request, reply, run, modelDeadline()),
    finish: () => run.finish(),
  };
}
