import type { SandboxHandle } from './backend.ts';

/** What an operation asks of the engine to hold a user's sandbox. */
export interface LeaseRequest {
  userId: string;
  /** Names the sandbox if one is created (its label, for the reaper). */
  runId: string;
  /** The client's: when it aborts, the lease ends with ClientGoneError (or its holder stops). */
  signal: AbortSignal;
  /** The whole lease, getting the sandbox included, at most (none: only the client's signal). */
  timeoutMs?: number | undefined;
}

/**
 * One user's sandbox, held by one operation (a run, a files operation, a prewarm) from the pool
 * until release. Getting it (warm and thawed, or created) and giving it back are bounded by the
 * lease's deadline; what is still in flight then goes on in the background (the engine's drain
 * waits for it).
 */
export interface SandboxLease {
  readonly sandbox: SandboxHandle;
  /** The sandbox was warm (no container was created). */
  readonly warm: boolean;
  /** Time spent creating the sandbox (0 when warm). */
  readonly createMs: number;
  /** The lease's deadline: the client's signal and the lease's timeoutMs. */
  readonly signal: AbortSignal;
  /**
   * Gives the sandbox back: kept warm if it is healthy, else removed; `unhealthy` (a reason)
   * means it must not be reused. Waits for that until the lease's deadline. The first call
   * counts; never rejects.
   */
  release(unhealthy?: string): Promise<void>;
}
