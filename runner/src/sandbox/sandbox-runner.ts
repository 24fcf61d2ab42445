import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { pack as tarPack } from 'tar-stream';
import type { RunnerConfig } from '../config.ts';
import { ClientGoneError, NotReadyError } from '../errors.ts';
import type { Logger } from '../logs.ts';
import {
  parseAgentLine,
  type AgentComponent,
  type AgentRequest,
  type CreatedAgent,
  type HistoryEntry,
  type ResultEvent,
} from './agent-protocol.ts';
import type { RunStatus } from './run-result.ts';
import { SANDBOX_UID, STORE_DIR, STORE_FILE, WORKSPACE_DIR, sandboxSpec } from './sandbox-spec.ts';
import { Workspaces, statusCode } from './workspaces.ts';

export interface SandboxRunInput {
  runId: string;
  userId: string;
  conversationId: string;
  message: string;
  history: HistoryEntry[];
  timeoutMs: number;
  /** Aborted when the client goes away: the run is killed and its sandbox removed. */
  signal: AbortSignal;
  /** Called for each text delta as the agent produces it. */
  onText?: (delta: string) => void;
}

export interface SandboxOutcome {
  status: RunStatus;
  text: string;
  component: AgentComponent | null;
  agent: CreatedAgent | null;
  exitCode: number | null;
  containerId: string | null;
  timings: { createMs: number; agentMs: number; saveMs: number; cleanupMs: number };
}

type Ending = 'exited' | 'stream-closed' | 'timeout' | 'output_limit' | 'protocol_error' | 'aborted';

const STDERR_TAIL_BYTES = 4096;
/** After the agent has exited, how long the entry script may take to finish. */
const EXIT_GRACE_MS = 5_000;

const now = () => performance.now();
const MiB = 1024 * 1024;

/**
 * Runs one request in a fresh sandbox: create -> attach -> start -> write request -> read
 * events -> save workspace -> close stdin -> wait -> inspect -> remove (always, in finally).
 */
export class SandboxRunner {
  readonly #docker: Docker;
  readonly #config: RunnerConfig;
  readonly #log: Logger;
  readonly #workspaces: Workspaces;
  readonly #active = new Map<string, string>(); // runId -> containerId
  #agentArgv: Promise<string[]> | null = null;

  constructor(docker: Docker, config: RunnerConfig, log: Logger, workspaces: Workspaces) {
    this.#docker = docker;
    this.#config = config;
    this.#log = log;
    this.#workspaces = workspaces;
  }

  /** Container ids of runs in progress (the reaper leaves these alone). */
  activeContainerIds(): Set<string> {
    return new Set(this.#active.values());
  }

  /** The agent image's command, read once per runner process. */
  agentArgv(): Promise<string[]> {
    this.#agentArgv ??= this.#readAgentArgv().catch((err: unknown) => {
      this.#agentArgv = null; // retry on the next run, e.g. once the image has been built
      throw err;
    });
    return this.#agentArgv;
  }

  async #readAgentArgv(): Promise<string[]> {
    let info: Docker.ImageInspectInfo;
    try {
      info = await this.#docker.getImage(this.#config.agentImage).inspect();
    } catch (err) {
      if (statusCode(err) === 404) {
        throw new NotReadyError(
          `agent image ${this.#config.agentImage} not found (build it with npm run images)`,
        );
      }
      throw new NotReadyError('the Docker engine did not answer');
    }
    const argv = [...(info.Config.Entrypoint ?? []), ...(info.Config.Cmd ?? [])];
    if (argv.length === 0) throw new NotReadyError(`agent image ${this.#config.agentImage} has no command`);
    return argv;
  }

  async run(input: SandboxRunInput): Promise<SandboxOutcome> {
    const t0 = now();
    const agentArgv = await this.agentArgv();
    const volumeName = await this.#workspaces.ensure(input.userId);
    let container: Docker.Container | null = null;
    const timings = { createMs: 0, agentMs: 0, saveMs: 0, cleanupMs: 0 };
    try {
      container = await this.#docker.createContainer(
        sandboxSpec(this.#config, { runId: input.runId, userId: input.userId, volumeName, agentArgv }),
      );
      this.#active.set(input.runId, container.id);
      const stream = (await container.attach({
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        hijack: true,
      })) as Duplex;
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      this.#docker.modem.demuxStream(stream, stdout, stderr);
      stream.on('end', () => {
        stdout.end();
        stderr.end();
      });
      await container.start();
      timings.createMs = now() - t0;
      if (input.signal.aborted) throw new ClientGoneError('client disconnected');

      const request: AgentRequest = {
        protocol: 1,
        runId: input.runId,
        userId: input.userId,
        conversationId: input.conversationId,
        message: input.message,
        history: input.history,
      };
      stream.write(JSON.stringify(request) + '\n');

      const tAgent = now();
      const collected = await this.#collect(container, stdout, stderr, input);
      timings.agentMs = now() - tAgent;
      if (collected.ending === 'aborted') throw new ClientGoneError('client disconnected');

      if (collected.ending === 'exited' && collected.workspaceChanged) {
        const tSave = now();
        await this.#saveWorkspace(container, input.runId);
        timings.saveMs = now() - tSave;
      }
      stream.end(); // closes the sandbox's stdin: the entry script exits
      const state = await this.#finish(container, collected.ending);
      const outcome = classify(this.#config, input.timeoutMs, collected, state);
      if (collected.protocolError) {
        this.#log.agentOutputInvalid(input.runId, container.id, collected.protocolError);
      }
      if (collected.stderrTail) this.#log.agentStderr(input.runId, container.id, collected.stderrTail);
      return { ...outcome, containerId: container.id, timings };
    } finally {
      if (container) {
        const tClean = now();
        await this.#remove(container);
        this.#active.delete(input.runId);
        timings.cleanupMs = now() - tClean;
      }
    }
  }

  /** Reads the agent's events until it exits, the stream ends, or a limit or the client stops it. */
  #collect(
    container: Docker.Container,
    stdout: PassThrough,
    stderr: PassThrough,
    input: SandboxRunInput,
  ): Promise<Collected> {
    const limit = this.#config.outputLimitBytes;
    return new Promise<Collected>((resolve) => {
      const c: Collected = {
        ending: 'stream-closed',
        result: null,
        agentExitCode: null,
        workspaceChanged: false,
        protocolError: null,
        stderrTail: '',
      };
      let bytes = 0;
      let pending = '';
      let done = false;
      const finish = (ending: Ending) => {
        if (done) return;
        done = true;
        c.ending = ending;
        clearTimeout(timer);
        input.signal.removeEventListener('abort', onAbort);
        stdout.removeAllListeners('data');
        if (ending !== 'exited' && ending !== 'stream-closed') {
          container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
        }
        resolve(c);
      };
      const onLine = (line: string) => {
        if (line.trim() === '') return;
        const parsed = parseAgentLine(line);
        if ('error' in parsed) {
          // The run's answer is lost anyway; stopping here also bounds the runner's CPU (a flood
          // of short invalid lines cost ~4 s of event-loop time per MiB when parsed one by one).
          c.protocolError = parsed.error;
          finish('protocol_error');
          return;
        }
        const e = parsed.event;
        if (e.type === 'text') input.onText?.(e.delta);
        else if (e.type === 'result') c.result = e;
        else {
          c.agentExitCode = e.code;
          c.workspaceChanged = e.workspaceChanged ?? true;
          finish('exited');
        }
      };
      stdout.on('data', (chunk: Buffer) => {
        if (done) return;
        bytes += chunk.length;
        if (bytes > limit) {
          finish('output_limit');
          return;
        }
        pending += chunk.toString('utf8');
        // Scan with an index and cut once: re-slicing the rest after every line is quadratic.
        let start = 0;
        let nl = pending.indexOf('\n', start);
        while (nl >= 0 && !done) {
          onLine(pending.slice(start, nl));
          start = nl + 1;
          nl = pending.indexOf('\n', start);
        }
        pending = pending.slice(start);
      });
      stdout.on('end', () => {
        if (!done && pending.length > 0) onLine(pending);
        finish('stream-closed');
      });
      stderr.on('data', (chunk: Buffer) => {
        c.stderrTail = (c.stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
      });
      const timer = setTimeout(() => finish('timeout'), input.timeoutMs);
      const onAbort = () => finish('aborted');
      if (input.signal.aborted) onAbort();
      else input.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Saves /workspace (a tmpfs that dies with the sandbox) into the user's volume as one tar file.
   * tar runs inside the sandbox as the sandbox user; the Docker daemon writes the file into the
   * volume. The runner only copies bytes, up to a bound, and never touches paths on the host.
   */
  async #saveWorkspace(container: Docker.Container, runId: string): Promise<void> {
    const cap = this.#config.workspaceBytes + this.#config.workspaceInodes * 1024 + MiB;
    try {
      const exec = await container.exec({
        Cmd: ['tar', '-C', WORKSPACE_DIR, '-cf', '-', '.'],
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
        this.#log.workspaceSaveFailed(runId, container.id, `snapshot larger than ${cap} bytes`);
        return;
      }
      const info = await exec.inspect();
      // GNU tar exits 1 when a file changed while being read: the snapshot is still usable.
      if (info.ExitCode !== 0 && info.ExitCode !== 1) {
        this.#log.workspaceSaveFailed(runId, container.id, `tar exited with ${info.ExitCode}`);
        return;
      }
      const snapshot = Buffer.concat(chunks);
      const outer = tarPack();
      outer.entry({ name: STORE_FILE, size: snapshot.length, mode: 0o644, uid: 0, gid: 0 }, snapshot);
      outer.finalize();
      const parts: Buffer[] = [];
      for await (const part of outer as AsyncIterable<Buffer>) parts.push(part);
      await container.putArchive(Buffer.concat(parts), { path: STORE_DIR });
    } catch (err) {
      this.#log.workspaceSaveFailed(runId, container.id, err instanceof Error ? err.message : String(err));
    }
  }

  async #finish(container: Docker.Container, ending: Ending): Promise<ContainerEnd> {
    const waited = container.wait().then(
      (r: { StatusCode?: number }) => r.StatusCode ?? null,
      () => null,
    );
    const timeout = new Promise<'late'>((r) => setTimeout(() => r('late'), EXIT_GRACE_MS).unref());
    let exitCode = await Promise.race([waited, timeout]);
    if (exitCode === 'late') {
      await container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
      exitCode = await waited;
    }
    let oomKilled = false;
    try {
      const info = await container.inspect();
      oomKilled = info.State.OOMKilled === true;
    } catch {
      // The container is gone already; treat as no OOM information.
    }
    return { exitCode, oomKilled, killedByUs: ending !== 'exited' && ending !== 'stream-closed' };
  }

  async #remove(container: Docker.Container): Promise<void> {
    try {
      await container.remove({ force: true, v: true });
    } catch (err) {
      if (statusCode(err) === 404) return;
      this.#log.containerRemoveFailed(container.id, err);
    }
  }
}

interface Collected {
  ending: Ending;
  result: ResultEvent | null;
  agentExitCode: number | null;
  workspaceChanged: boolean;
  protocolError: string | null;
  stderrTail: string;
}

interface ContainerEnd {
  exitCode: number | null;
  oomKilled: boolean;
  killedByUs: boolean;
}

type Classified = Omit<SandboxOutcome, 'containerId' | 'timings'>;

/** Turns what happened into a run result. The order matters: host-side kills win. */
function classify(config: RunnerConfig, timeoutMs: number, c: Collected, end: ContainerEnd): Classified {
  const exitCode = c.agentExitCode ?? end.exitCode;
  const fail = (status: RunStatus, text: string): Classified => ({
    status,
    text,
    component: null,
    agent: null,
    exitCode,
  });
  if (c.ending === 'timeout') {
    return fail('timeout', `The run took longer than ${timeoutMs} ms and was stopped.`);
  }
  if (c.ending === 'output_limit') {
    return fail(
      'output_limit',
      `The agent's output exceeded ${config.outputLimitBytes} bytes; the run was stopped.`,
    );
  }
  if (end.oomKilled) {
    const mib = Math.round(config.sandbox.memoryBytes / MiB);
    return fail('oom', `The sandbox ran out of memory (limit ${mib} MiB) and was stopped.`);
  }
  if (c.protocolError) return fail('error', `The agent's output was malformed: ${c.protocolError}.`);
  if (!c.result) {
    return fail(
      'error',
      exitCode === null
        ? 'The agent ended without a result.'
        : `The agent ended without a result (exit code ${exitCode}).`,
    );
  }
  return {
    status: c.result.status === 'error' ? 'error' : 'ok',
    text: c.result.text,
    component: c.result.component ?? null,
    agent: c.result.agent ?? null,
    exitCode,
  };
}
