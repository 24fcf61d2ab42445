import type { Duplex } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { TIMEOUT_MARGINS, type AgentRequest } from '@agent-platform/contract';
import type Docker from 'dockerode';
import { pack as tarPack } from 'tar-stream';
import { snapshotCapBytes, type RunnerConfig } from '../config.ts';
import type { Logger } from '../logs.ts';
import { AgentSession } from './agent-session.ts';
import type { Exchange, ExchangeOptions, ExecOptions, ExecResult, SandboxHandle } from './backend.ts';
import type { DeadlineCall } from './deadline.ts';
import { DockerDemuxer } from './docker-demux.ts';
import { statusCode } from './docker-status.ts';
import type { OomWatch } from './oom-watch.ts';
import { execInSandbox } from './sandbox-exec.ts';
import { STORE_DIR, STORE_FILE, WORKSPACE_DIR } from './sandbox-layout.ts';
import { sandboxSpec, type SandboxSpecInput } from './sandbox-spec.ts';
import type { Snapshot, WorkspaceStore } from './workspace-store.ts';

const STDERR_TAIL_BYTES = 4096;
/**
 * File times come from the kernel's coarse clock, up to a tick (4-10 ms) behind the precise clock
 * of Date.now(): a file written just after the runner took its time can carry an earlier mtime.
 * Comparing against a time this much earlier never misses one; at worst a file written in the
 * last 100 ms before a save is saved once more. (Seen as a flaky missing file before the slack.)
 */
const MTIME_SLACK_MS = 100;
/** The whole workspace save (find, tar, upload): the budget's margin for sandbox work. */
const SAVE_TIMEOUT_MS = TIMEOUT_MARGINS.sandboxGraceMs;

/** What a DockerSandbox needs from its backend. */
export interface SandboxDeps {
  docker: Docker;
  config: RunnerConfig;
  log: Logger;
  oom: OomWatch;
  /** Docker calls with deadlines (and metrics). */
  call: DeadlineCall;
  /** Where the user's workspace persists between sandboxes. */
  store: WorkspaceStore;
}

/** A tar holding one file, the snapshot, as the daemon unpacks it into the store directory. */
function storeArchive({ chunks, size }: Snapshot): NodeJS.ReadableStream {
  const outer = tarPack();
  const entry = outer.entry({ name: STORE_FILE, size, mode: 0o644, uid: 0, gid: 0 });
  for (const chunk of chunks) entry.write(chunk);
  entry.end(() => outer.finalize());
  return outer as unknown as NodeJS.ReadableStream;
}

/**
 * One live sandbox container of one user (the Docker SandboxHandle). Its agent process serves
 * one request line at a time over the attached stdin and answers with NDJSON events on stdout,
 * so a warm sandbox answers the next request of the same user without creating a container.
 */
export class DockerSandbox implements SandboxHandle {
  readonly userId: string;
  readonly #container: Docker.Container;
  readonly #config: RunnerConfig;
  readonly #log: Logger;
  readonly #oom: OomWatch;
  readonly #call: DeadlineCall;
  readonly #stream: Duplex;
  readonly #session: AgentSession;
  readonly #store: WorkspaceStore;
  /** The store's generation of the snapshot this sandbox restored or last saved (0: none). */
  #generation = 0;
  #stderrTail = '';
  /** When /workspace was last saved or restored (epoch ms); files newer than this are unsaved. */
  #savedAtMs = Date.now();
  /** Paused (or a pause was asked for and not undone). */
  #frozen = false;
  /** The last pause call, settled either way (thaw and destroy wait for it). */
  #pausing: Promise<void> = Promise.resolve();

  private constructor(deps: SandboxDeps, userId: string, container: Docker.Container, stream: Duplex) {
    this.#config = deps.config;
    this.#log = deps.log;
    this.#oom = deps.oom;
    this.#call = deps.call;
    this.#store = deps.store;
    this.userId = userId;
    this.#container = container;
    this.#stream = stream;
    this.#session = new AgentSession(deps.config.outputLimitBytes, {
      write: (line) => this.#stream.write(line),
      kill: () => this.#kill(),
    });
    // A decoder keeps a multi-byte character that straddles two frames whole.
    const decoder = new StringDecoder('utf8');
    const demux = new DockerDemuxer(
      (payload) => this.#session.data(decoder.write(payload)),
      (payload) => {
        this.#session.stderr(payload.length);
        this.#stderrTail =
          payload.length >= STDERR_TAIL_BYTES
            ? payload.subarray(-STDERR_TAIL_BYTES).toString('utf8')
            : (this.#stderrTail + payload.toString('utf8')).slice(-STDERR_TAIL_BYTES);
      },
    );
    stream.on('data', (chunk: Buffer) => demux.push(chunk));
    const close = () => this.#session.close();
    stream.on('end', close);
    stream.on('close', close);
    stream.on('error', close);
  }

  /** create -> attach -> start. The container is removed again if any step fails. */
  static async create(deps: SandboxDeps, opts: SandboxSpecInput): Promise<DockerSandbox> {
    // A store that keeps snapshots elsewhere (WORKSPACE_STORE=gcs) is read while the container is
    // created, and the snapshot put into the sandbox's own store volume before start (the entry
    // script restores it from there).
    const loading = deps.store.load(opts.userId);
    loading.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
    const container = await deps.call(
      deps.docker.createContainer(sandboxSpec(deps.config, opts)),
      'creating a sandbox',
    );
    try {
      const stored = await loading;
      if (stored.data) {
        await deps.call(
          container.putArchive(storeArchive({ chunks: [stored.data], size: stored.data.length }), {
            path: STORE_DIR,
          }),
          'restoring the workspace from the store',
        );
      }
      const stream = (await deps.call(
        container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true }),
        'attaching to a sandbox',
      )) as Duplex;
      const sandbox = new DockerSandbox(deps, opts.userId, container, stream);
      sandbox.#generation = stored.generation;
      await deps.call(container.start(), 'starting a sandbox');
      // The tmpfs is mounted by now and a restore keeps the archived mtimes: only what changes
      // from here on is unsaved.
      sandbox.#savedAtMs = Date.now();
      return sandbox;
    } catch (err) {
      await deps
        .call(container.remove({ force: true, v: true }), 'removing a failed sandbox')
        .catch(() => undefined);
      throw err;
    }
  }

  get id(): string {
    return this.#container.id;
  }

  isHealthy(): boolean {
    return this.#session.isHealthy();
  }

  unhealthyReason(): string | null {
    return this.#session.unhealthyReason();
  }

  markUnhealthy(reason: string): void {
    this.#session.markUnhealthy(reason);
  }

  stderrTail(): string {
    return this.#stderrTail;
  }

  oomEvents(): number {
    return this.#oom.count(this.id);
  }

  exchange(request: AgentRequest, opts: ExchangeOptions): Promise<Exchange> {
    return this.#session.exchange(request, opts);
  }

  #kill(): void {
    this.#container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
  }

  /**
   * Saves /workspace (a tmpfs that dies with the sandbox) into the workspace store as one tar
   * file if anything in it changed since the last save. tar runs inside the sandbox as the
   * sandbox user and writes to stdout only; the store keeps the bytes (the Docker daemon writes
   * them into the user's volume, or they go to the fleet's bucket). The runner copies bounded
   * bytes and never touches a path on the host. Returns the bytes saved (0: nothing had changed,
   * or the save failed and was logged).
   *
   * Nothing the sandbox user can replace takes part: the time of the last save is the runner's
   * (`find -newermt`; a restore keeps the archived mtimes), not a marker file in the sandbox's
   * /tmp (a FIFO put there held the save, the run and its slot for ever). The whole save has one
   * deadline and follows the client's abort; a save that does not finish (its tar stopped with
   * SIGSTOP, a gVisor sandbox that died under it) leaves the sandbox unhealthy, so it is removed
   * before the answer.
   */
  async save(runId: string, signal: AbortSignal): Promise<number | 'conflict'> {
    const cap = snapshotCapBytes(this.#config.workspaceBytes, this.#config.workspaceInodes);
    const since = ((this.#savedAtMs - MTIME_SLACK_MS) / 1000).toFixed(3);
    const script =
      `[ -z "$(find ${WORKSPACE_DIR} -newermt @${since} -print -quit 2>/dev/null)" ] && exit 0; ` +
      `exec tar -C ${WORKSPACE_DIR} -cf - .`;
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(SAVE_TIMEOUT_MS)]);
    const startedAtMs = Date.now();
    try {
      const snapshot = await execInSandbox(this.#container, this.#call, {
        name: 'the save exec',
        argv: ['sh', '-c', script],
        capBytes: cap,
        signal: deadline,
      });
      if (snapshot === 'too big') {
        this.#log.workspaceSaveFailed(runId, this.id, `snapshot larger than ${cap} bytes`);
        return 0;
      }
      // GNU tar exits 1 when a file changed while being read: the snapshot is still usable.
      if (snapshot.exitCode !== 0 && snapshot.exitCode !== 1) {
        this.#log.workspaceSaveFailed(runId, this.id, `tar exited with ${snapshot.exitCode}`);
        return 0;
      }
      if (snapshot.size === 0) return 0;
      const left = Math.max(1, SAVE_TIMEOUT_MS - (Date.now() - startedAtMs));
      const saved = await this.#store.save(
        this.userId,
        snapshot,
        this.#generation,
        (snap, timeoutMs, sig) => this.#putSnapshot(snap, timeoutMs, sig),
        left,
        deadline,
      );
      if (saved === 'conflict') {
        // Another runner served this user meanwhile and saved a newer snapshot: this one must
        // not replace it. The sandbox's files are stale now; the next run restores the newer.
        this.#log.workspaceSaveFailed(runId, this.id, 'a newer snapshot of this workspace was saved');
        this.markUnhealthy('its workspace is older than the stored one');
        return 'conflict';
      }
      this.#generation = saved;
      // Changes made while tar was reading are newer than this, so the next save takes them.
      this.#savedAtMs = startedAtMs;
      return snapshot.size;
    } catch (err) {
      const why = signal.aborted
        ? 'the client went away'
        : deadline.aborted
          ? `the save took longer than ${SAVE_TIMEOUT_MS} ms`
          : err instanceof Error
            ? err.message
            : String(err);
      this.#log.workspaceSaveFailed(runId, this.id, why);
      // What happened inside is unknown (a process may hold the save's tar): never reuse it.
      this.markUnhealthy(`workspace save failed: ${why}`);
      return 0;
    }
  }

  /**
   * One copy of the snapshot in memory (its chunks), streamed into the outer tar that the daemon
   * unpacks into the store volume (before: the chunks, their concatenation and the packed
   * archive, about three copies).
   */
  async #putSnapshot(snapshot: Snapshot, timeoutMs: number, signal: AbortSignal): Promise<void> {
    await this.#call(
      this.#container.putArchive(storeArchive(snapshot), { path: STORE_DIR, abortSignal: signal }),
      'writing the workspace snapshot',
      timeoutMs,
      signal,
    );
  }

  async exec(argv: string[], opts: ExecOptions): Promise<ExecResult> {
    const out = await execInSandbox(this.#container, this.#call, {
      name: 'an exec',
      argv,
      capBytes: opts.maxOutBytes,
      signal: opts.signal,
      stdin: opts.stdin,
    });
    if (out === 'too big') return { exitCode: -1, stdout: Buffer.alloc(0), truncated: true };
    return { exitCode: out.exitCode, stdout: Buffer.concat(out.chunks, out.size), truncated: false };
  }

  /** Whether the container recorded an OOM kill (Docker sets it once the container has exited). */
  async oomKilled(): Promise<boolean> {
    try {
      return (await this.#call(this.#container.inspect(), 'inspecting a sandbox')).State.OOMKilled === true;
    } catch {
      return false;
    }
  }

  /** The container's exit code; the caller bounds how long it waits. */
  waitExit(): Promise<number | null> {
    return this.#container.wait().then(
      (r: { StatusCode?: number }) => r.StatusCode ?? null,
      () => null,
    );
  }

  async freeze(): Promise<void> {
    const op = this.#call(this.#container.pause(), 'pausing an idle sandbox');
    this.#pausing = op.then(
      () => undefined,
      () => undefined,
    );
    this.#frozen = true; // until thawed: a pause that failed half-way is undone before removal
    await op;
  }

  async thaw(): Promise<void> {
    await this.#pausing;
    await this.#call(this.#container.unpause(), 'unpausing a sandbox');
    this.#frozen = false;
  }

  /** Removes the container (and so the tmpfs). Safe to call twice. */
  async destroy(): Promise<void> {
    this.#session.markUnhealthy('removed');
    this.#stream.destroy();
    if (this.#frozen) {
      // gVisor does not remove a paused sandbox (`docker rm -f` failed after 10 s here): unpause
      // first. runc would manage, but one path for both. A failure here (not paused after all)
      // is left to the removal below.
      await this.#pausing;
      await this.#call(this.#container.unpause(), 'unpausing a sandbox').catch(() => undefined);
      this.#frozen = false;
    }
    try {
      await this.#call(this.#container.remove({ force: true, v: true }), 'removing a sandbox');
    } catch (err) {
      if (statusCode(err) !== 404) this.#log.containerRemoveFailed(this.id, err);
    } finally {
      this.#oom.forget(this.id);
    }
  }
}
