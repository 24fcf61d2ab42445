import { LineSplitter, parseAgentLine, type AgentRequest } from '@agent-platform/contract';
import type { Ending, Exchange, ExchangeOptions } from './backend.ts';

/** What an AgentSession needs from the sandbox it talks to. */
export interface AgentIo {
  /** Writes one request line to the agent's stdin. */
  write(line: string): void;
  /** Kills the sandbox from the host (fire and forget). */
  kill(): void;
}

interface Active {
  line(line: string): void;
  overflow(): void;
  closed(): void;
}

/**
 * The runner's side of the agent protocol over one sandbox's stdin/stdout, independent of the
 * container platform: splits stdout into lines (the contract's LineSplitter, bounded by the
 * output limit), hands them to the one exchange in progress, and owns the sandbox's health. A
 * sandbox whose exchange ended any other way than with a result is killed and never reused.
 */
export class AgentSession {
  readonly #outputLimitBytes: number;
  readonly #io: AgentIo;
  readonly #splitter: LineSplitter;
  #active: Active | null = null;
  #closed = false;
  #unhealthy: string | null = null;

  constructor(outputLimitBytes: number, io: AgentIo) {
    this.#outputLimitBytes = outputLimitBytes;
    this.#io = io;
    // A line that never ends must not grow in the runner's memory past the output limit.
    this.#splitter = new LineSplitter(outputLimitBytes);
  }

  get closed(): boolean {
    return this.#closed;
  }

  isHealthy(): boolean {
    return this.#unhealthy === null;
  }

  unhealthyReason(): string | null {
    return this.#unhealthy;
  }

  markUnhealthy(reason: string): void {
    this.#unhealthy ??= reason;
  }

  /** Feeds decoded stdout text. */
  data(text: string): void {
    for (const line of this.#splitter.push(text)) {
      if (line === null) {
        this.markUnhealthy('output line over the limit');
        if (this.#active) this.#active.overflow();
        else this.#io.kill();
      } else if (this.#active) {
        this.#active.line(line);
      } else if (line.trim() !== '') {
        this.markUnhealthy('output outside a request');
      }
    }
  }

  /** The stdout stream ended (the agent or its sandbox is gone). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.markUnhealthy('stream closed');
    this.#active?.closed();
  }

  /**
   * Sends one request and reads events until the result, a limit, the timeout or the client
   * stops it. Any other ending than a result kills the sandbox from the host.
   */
  exchange(request: AgentRequest, opts: ExchangeOptions): Promise<Exchange> {
    const limit = this.#outputLimitBytes;
    return new Promise<Exchange>((resolve) => {
      const x: Exchange = { ending: 'stream-closed', result: null, protocolError: null };
      let bytes = 0;
      let done = false;
      const finish = (ending: Ending) => {
        if (done) return;
        done = true;
        x.ending = ending;
        clearTimeout(timer);
        opts.signal.removeEventListener('abort', onAbort);
        this.#active = null;
        if (ending !== 'result') {
          this.markUnhealthy(`run ended by ${ending}`);
          this.#io.kill();
        }
        resolve(x);
      };
      const onLine = (line: string) => {
        bytes += Buffer.byteLength(line) + 1;
        if (bytes > limit) return finish('output_limit');
        if (line.trim() === '') return;
        const parsed = parseAgentLine(line);
        if ('error' in parsed) {
          // The answer is lost anyway; stopping here also bounds the runner's CPU (a flood of
          // short invalid lines cost ~4 s of event-loop time per MiB when parsed one by one).
          x.protocolError = parsed.error;
          return finish('protocol_error');
        }
        const e = parsed.event;
        if (e.type === 'text') opts.onText?.(e.delta);
        else {
          x.result = e;
          finish('result');
        }
      };
      const timer = setTimeout(() => finish('timeout'), opts.timeoutMs);
      const onAbort = () => finish('aborted');
      if (this.#closed) return finish('stream-closed');
      if (opts.signal.aborted) return onAbort();
      opts.signal.addEventListener('abort', onAbort, { once: true });
      this.#active = {
        line: onLine,
        overflow: () => finish('output_limit'),
        closed: () => finish('stream-closed'),
      };
      this.#io.write(JSON.stringify(request) + '\n');
    });
  }
}
