import {
  LineSplitter,
  modelErrorLine,
  parseAgentLine,
  type AgentRequest,
  type ModelResponseLine,
} from '@agent-platform/contract';
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
  /** Bytes the agent wrote to stderr; they count against the run's output limit too. */
  stderr(bytes: number): void;
  overflow(): void;
  closed(): void;
}

/**
 * stderr an idle sandbox may write before it is killed (the entry script's restore warning is
 * written before the first request). stdout outside a request is never legitimate.
 */
const IDLE_STDERR_BYTES = 4096;

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
  /** stderr bytes written while no request was in progress. */
  #idleStderrBytes = 0;
  /** Killed for output while idle: nothing it writes is read any more. */
  #killedIdle = false;

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

  /**
   * Feeds decoded stdout text. Output while no request is in progress (a background process
   * writing to the agent's stdout, e.g. through /proc/$PPID/fd/1) kills the sandbox at once: it
   * is never read further, so one user cannot make the runner scan a flood for everyone.
   */
  data(text: string): void {
    if (this.#killedIdle) return;
    if (!this.#active) {
      if (text.trim() === '') return;
      return this.#killIdle('output outside a request');
    }
    for (const line of this.#splitter.push(text)) {
      if (!this.#active) {
        if (line !== null && line.trim() === '') continue;
        return this.#killIdle('output outside a request');
      }
      if (line === null) {
        this.markUnhealthy('output line over the limit');
        this.#active.overflow();
      } else {
        this.#active.line(line);
      }
    }
  }

  /** Counts stderr bytes: against the run's output limit, or against a small idle allowance. */
  stderr(bytes: number): void {
    if (this.#killedIdle) return;
    if (this.#active) return this.#active.stderr(bytes);
    this.#idleStderrBytes += bytes;
    if (this.#idleStderrBytes > IDLE_STDERR_BYTES) this.#killIdle('stderr flood outside a request');
  }

  #killIdle(reason: string): void {
    this.#killedIdle = true;
    this.markUnhealthy(reason);
    this.#io.kill();
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
        else if (e.type === 'model_request') {
          const reply = (response: ModelResponseLine) => {
            if (!done) this.#io.write(JSON.stringify(response) + '\n');
          };
          if (opts.onModelRequest) opts.onModelRequest(e, reply);
          else {
            reply(modelErrorLine(e.id, 503, 'unavailable', 'no model gateway'));
          }
        } else {
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
        stderr: (n) => {
          bytes += n;
          if (bytes > limit) finish('output_limit');
        },
        overflow: () => finish('output_limit'),
        closed: () => finish('stream-closed'),
      };
      this.#io.write(JSON.stringify(request) + '\n');
    });
  }
}
