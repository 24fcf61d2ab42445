import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { pack as tarPack } from 'tar-stream';
import type { RunnerConfig } from '../config.ts';
import type { Logger } from '../logs.ts';
import { parseAgentLine, type AgentRequest, type ResultEvent } from './agent-protocol.ts';
import { MARKER, SANDBOX_UID, STORE_DIR, STORE_FILE, WORKSPACE_DIR, sandboxSpec } from './sandbox-spec.ts';
import { statusCode } from './workspaces.ts';

/** How one request in a sandbox ended, before classification. */
export type Ending = 'result' | 'stream-closed' | 'timeout' | 'output_limit' | 'protocol_error' | 'aborted';

export interface Exchange {
  ending: Ending;
  result: ResultEvent | null;
  protocolError: string | null;
}

const STDERR_TAIL_BYTES = 4096;
const MiB = 1024 * 1024;

/**
 * One live sandbox container of one user. Its agent process serves one request line at a time
 * over the attached stdin and answers with NDJSON events on stdout, so a warm sandbox answers
 * the next request of the same user without creating a container.
 */
export class Sandbox {
  readonly userId: string;
  readonly container: Docker.Container;
  readonly #docker: Docker;
  readonly #config: RunnerConfig;
  readonly #log: Logger;
  readonly #stream: Duplex;
  readonly #stdout = new PassThrough();
  #stderrTail = '';
  #pending = '';
  #closed = false;
  #onLine: ((line: string) => void) | null = null;
  #onClose: (() => void) | null = null;
  #onOverflow: (() => void) | null = null;
  /** Set once the sandbox must not be reused (killed, OOM, protocol error, ...). */
  tainted = false;
  /** Docker `oom` events seen for this container when its last run ended. */
  oomEventsAtRest = 0;

  private constructor(
    docker: Docker,
    config: RunnerConfig,
    log: Logger,
    userId: string,
    container: Docker.Container,
    stream: Duplex,
  ) {
    this.#docker = docker;
    this.#config = config;
    this.#log = log;
    this.userId = userId;
    this.container = container;
    this.#stream = stream;
    const stderr = new PassThrough();
    docker.modem.demuxStream(stream, this.#stdout, stderr);
    stderr.on('data', (chunk: Buffer) => {
      this.#stderrTail = (this.#stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    stream.on('end', () => this.#markClosed());
    stream.on('close', () => this.#markClosed());
    stream.on('error', () => this.#markClosed());
    this.#stdout.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  /** create -> attach -> start. The container is removed again if any step fails. */
  static async create(
    docker: Docker,
    config: RunnerConfig,
    log: Logger,
    opts: { runId: string; userId: string; volumeName: string; agentArgv: string[] },
  ): Promise<Sandbox> {
    const container = await docker.createContainer(sandboxSpec(config, opts));
    try {
      const stream = (await container.attach({
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        hijack: true,
      })) as Duplex;
      const sandbox = new Sandbox(docker, config, log, opts.userId, container, stream);
      await container.start();
      return sandbox;
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined);
      throw err;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  get stderrTail(): string {
    return this.#stderrTail;
  }

  #markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.tainted = true;
    this.#onClose?.();
  }

  #onData(chunk: Buffer): void {
    this.#pending += chunk.toString('utf8');
    // Scan with an index and cut once: re-slicing the rest after every line is quadratic.
    let start = 0;
    let nl = this.#pending.indexOf('\n', start);
    while (nl >= 0) {
      const line = this.#pending.slice(start, nl);
      start = nl + 1;
      if (this.#onLine) this.#onLine(line);
      else if (line.trim() !== '') this.tainted = true; // output outside a request
      nl = this.#pending.indexOf('\n', start);
    }
    this.#pending = this.#pending.slice(start);
    // A line that never ends must not grow in the runner's memory past the output limit.
    if (this.#pending.length > this.#config.outputLimitBytes) {
      this.#pending = '';
      this.tainted = true;
      if (this.#onOverflow) this.#onOverflow();
      else this.container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
    }
  }

  /**
   * Sends one request and reads events until the result, a limit, the timeout or the client
   * stops it. Host-side kills taint the sandbox; the caller then destroys it.
   */
  exchange(
    request: AgentRequest,
    opts: { timeoutMs: number; signal: AbortSignal; onText?: ((delta: string) => void) | undefined },
  ): Promise<Exchange> {
    const limit = this.#config.outputLimitBytes;
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
        this.#onLine = null;
        this.#onClose = null;
        this.#onOverflow = null;
        if (ending !== 'result') {
          this.tainted = true;
          this.container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
        }
        resolve(x);
      };
      this.#onLine = (line: string) => {
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
        else if (e.type === 'result') {
          x.result = e;
          finish('result');
        }
      };
      this.#onClose = () => finish('stream-closed');
      this.#onOverflow = () => finish('output_limit');
      const timer = setTimeout(() => finish('timeout'), opts.timeoutMs);
      const onAbort = () => finish('aborted');
      if (this.#closed) return finish('stream-closed');
      if (opts.signal.aborted) return onAbort();
      opts.signal.addEventListener('abort', onAbort, { once: true });
      // A line still buffered without its newline is bounded by the output limit as well.
      if (this.#pending.length > limit) return finish('output_limit');
      this.#stream.write(JSON.stringify(request) + '\n');
    });
  }

  /**
   * Saves /workspace (a tmpfs that dies with the sandbox) into the user's volume as one tar file
   * if anything in it is newer than the last save. tar runs inside the sandbox as the sandbox
   * user; the Docker daemon writes the file into the volume. The runner copies bounded bytes and
   * never touches a path on the host. Returns the bytes saved (0: nothing had changed).
   */
  async save(runId: string): Promise<number> {
    const cap = this.#config.workspaceBytes + this.#config.workspaceInodes * 1024 + MiB;
    const script =
      `[ -z "$(find ${WORKSPACE_DIR} -newer ${MARKER} -print -quit 2>/dev/null)" ] && exit 0; ` +
      `: > ${MARKER}.next && tar -C ${WORKSPACE_DIR} -cf - . && mv -f ${MARKER}.next ${MARKER}`;
    try {
      const exec = await this.container.exec({
        Cmd: ['sh', '-c', script],
        User: `${SANDBOX_UID}:${SANDBOX_UID}`,
        AttachStdout: true,
        AttachStderr: true,
        Env: ['PATH=/usr/bin:/bin'],
      });
      const stream = (await exec.start({ hijack: true, stdin: false })) as Duplex;
      const out = new PassThrough();
      const err = new PassThrough();
      this.#docker.modem.demuxStream(stream, out, err);
      err.resume();
      const chunks: Buffer[] = [];
      let size = 0;
      let tooBig = false;
      await new Promise<void>((resolve, reject) => {
        out.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > cap) {
            tooBig = true;
            stream.destroy();
            resolve();
            return;
          }
          chunks.push(chunk);
        });
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', reject);
      });
      if (tooBig) {
        this.#log.workspaceSaveFailed(runId, this.container.id, `snapshot larger than ${cap} bytes`);
        return 0;
      }
      const info = await exec.inspect();
      // GNU tar exits 1 when a file changed while being read: the snapshot is still usable.
      if (info.ExitCode !== 0 && info.ExitCode !== 1) {
        this.#log.workspaceSaveFailed(runId, this.container.id, `tar exited with ${info.ExitCode}`);
        return 0;
      }
      if (size === 0) return 0;
      const snapshot = Buffer.concat(chunks);
      const outer = tarPack();
      outer.entry({ name: STORE_FILE, size: snapshot.length, mode: 0o644, uid: 0, gid: 0 }, snapshot);
      outer.finalize();
      const parts: Buffer[] = [];
      for await (const part of outer as AsyncIterable<Buffer>) parts.push(part);
      await this.container.putArchive(Buffer.concat(parts), { path: STORE_DIR });
      return snapshot.length;
    } catch (err) {
      this.#log.workspaceSaveFailed(
        runId,
        this.container.id,
        err instanceof Error ? err.message : String(err),
      );
      return 0;
    }
  }

  /** Whether the container recorded an OOM kill (Docker sets it once the container has exited). */
  async oomKilled(): Promise<boolean> {
    try {
      return (await this.container.inspect()).State.OOMKilled === true;
    } catch {
      return false;
    }
  }

  /** Removes the container (and so the tmpfs). Safe to call twice. */
  async destroy(): Promise<void> {
    this.tainted = true;
    this.#stream.destroy();
    try {
      await this.container.remove({ force: true, v: true });
    } catch (err) {
      if (statusCode(err) !== 404) this.#log.containerRemoveFailed(this.container.id, err);
    }
  }
}
