/**
 * Runs a render at most once per interval, the first request at once and the last one never
 * dropped: rendering the whole streamed reply on every chunk made a long stream quadratic.
 * No DOM: unit-tested in Node.
 */
export class RenderThrottle {
  readonly #render: () => void;
  readonly #intervalMs: number;
  readonly #nowMs: () => number;
  #lastMs = Number.NEGATIVE_INFINITY;
  #timer: ReturnType<typeof setTimeout> | null = null;

  /** `nowMs`: a monotonic clock (default performance.now). */
  constructor(render: () => void, intervalMs: number, nowMs: () => number = () => performance.now()) {
    this.#render = render;
    this.#intervalMs = intervalMs;
    this.#nowMs = nowMs;
  }

  /** Renders now, or once the interval since the last render has passed (requests meanwhile fold into it). */
  request(): void {
    if (this.#timer !== null) return;
    const waitMs = this.#lastMs + this.#intervalMs - this.#nowMs();
    if (waitMs <= 0) this.#run();
    else this.#timer = setTimeout(() => this.#run(), waitMs);
  }

  #run(): void {
    this.#timer = null;
    this.#lastMs = this.#nowMs();
    this.#render();
  }
}
