import { settleBy } from '@agent-platform/contract';

/** Operations in progress (leases, give-backs), so a shutdown can wait for them to settle. */
export class InFlight {
  readonly #ops = new Set<Promise<void>>();

  /** Keeps `op` until it settles, either way. */
  track(op: Promise<unknown>): void {
    const settled = op.then(
      () => undefined,
      () => undefined,
    );
    this.#ops.add(settled);
    void settled.finally(() => this.#ops.delete(settled));
  }

  /** Resolves when the operations in flight now have settled, or after `ms`. */
  async settled(ms: number): Promise<void> {
    await settleBy(Promise.all([...this.#ops]), AbortSignal.timeout(ms));
  }
}
