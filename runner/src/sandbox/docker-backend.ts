import type Docker from 'dockerode';
import type { RunnerConfig } from '../config.ts';
import { NotReadyError } from '../errors.ts';
import type { Logger } from '../logs.ts';
import type { ListedSandbox, Readiness, SandboxBackend, SandboxHandle } from './backend.ts';
import { deadlineCaller, type CallObserver, type DeadlineCall } from './deadline.ts';
import { DockerSandbox } from './docker-sandbox.ts';
import { statusCode } from './docker-status.ts';
import { GcsWorkspaceStore } from './gcs-store.ts';
import { LABEL_RUN_ID, sandboxFilter } from './labels.ts';
import { OomWatch } from './oom-watch.ts';
import { VolumeWorkspaceStore } from './volume-store.ts';
import type { WorkspaceStore } from './workspace-store.ts';

/**
 * How long a readiness check's answer is reused, ready or not. Runs ask before each request and
 * /readyz is public: three Docker round-trips per call would cost the warm path more than the run
 * itself and let anyone make the runner hammer its engine. A change is seen within a second.
 */
const READY_REUSE_MS = 1_000;
/**
 * Deadline of each Docker call of a readiness check: a stalled engine turns /readyz (and runs) to
 * 503 after this, instead of holding them for a whole platform-call deadline.
 */
const READY_CALL_TIMEOUT_MS = 2_000;

/** The SandboxBackend on a Docker engine (dockerode reads DOCKER_HOST like the docker CLI). */
export class DockerBackend implements SandboxBackend {
  readonly #docker: Docker;
  readonly #config: RunnerConfig;
  readonly #log: Logger;
  /** Users' workspaces between sandboxes: Docker volumes, or WORKSPACE_STORE=gcs. */
  readonly #store: WorkspaceStore;
  readonly #oom: OomWatch;
  /** Every Docker call goes through it: a deadline, and the metrics see its outcome. */
  readonly #call: DeadlineCall;
  /** The agent image's command, from the last successful readiness check. */
  #agentArgv: string[] | null = null;
  /** The runtime sandboxes use (SANDBOX_RUNTIME, `auto` resolved), from the last check. */
  #runtime: string | null = null;
  #last: { readiness: Readiness; atMs: number } | null = null;
  #checking: Promise<Readiness> | null = null;
  /**
   * Sandboxes the last listing found paused (the reaper unpauses them before removal). Replaced
   * by each listing, so it holds no id of a container long gone.
   */
  #pausedSeen = new Set<string>();

  constructor(docker: Docker, config: RunnerConfig, log: Logger, observer?: CallObserver) {
    this.#docker = docker;
    this.#config = config;
    this.#log = log;
    this.#call = deadlineCaller(observer);
    this.#store = config.workspaceStore
      ? new GcsWorkspaceStore(
          config.workspaceStore.bucket,
          config.snapshotMaxBytes,
          this.#call,
          config.workspaceStore.endpoint,
        )
      : new VolumeWorkspaceStore(docker, config.runnerId, config.maxWorkspaces, this.#call);
    this.#oom = new OomWatch(docker, config.runnerId, log, this.#call);
  }

  start(): Promise<void> {
    return this.#oom.start();
  }

  stop(): void {
    this.#oom.stop();
  }

  async create(opts: { runId: string; userId: string }): Promise<SandboxHandle> {
    const [{ agentArgv, runtime }, volumeName] = await Promise.all([
      this.#argv(),
      this.#store.volumeFor(opts.userId),
    ]);
    return DockerSandbox.create(
      {
        docker: this.#docker,
        config: this.#config,
        log: this.#log,
        oom: this.#oom,
        call: this.#call,
        store: this.#store,
      },
      { ...opts, volumeName, agentArgv, runtime },
    );
  }

  async #argv(): Promise<{ agentArgv: string[]; runtime: string }> {
    if (!this.#agentArgv || !this.#runtime) {
      const r = await this.ready();
      if (!r.ready) throw new NotReadyError(r.reason);
    }
    if (!this.#agentArgv || !this.#runtime) throw new NotReadyError('the agent image is not ready');
    return { agentArgv: this.#agentArgv, runtime: this.#runtime };
  }

  ready(): Promise<Readiness> {
    if (this.#last && performance.now() - this.#last.atMs < READY_REUSE_MS) {
      return Promise.resolve(this.#last.readiness);
    }
    // Concurrent callers share one check.
    this.#checking ??= this.#check()
      .then((readiness) => {
        this.#last = { readiness, atMs: performance.now() };
        return readiness;
      })
      .finally(() => (this.#checking = null));
    return this.#checking;
  }

  async #check(): Promise<Readiness> {
    const image = this.#config.agentImage;
    const requested = this.#config.sandbox.runtime;
    const notReady = (reason: string): Readiness => ({ ready: false, reason });
    try {
      await this.#call(this.#docker.ping(), 'pinging the Docker engine', READY_CALL_TIMEOUT_MS);
    } catch {
      return notReady('the Docker engine does not answer');
    }
    let info: Docker.ImageInspectInfo;
    try {
      info = await this.#call(
        this.#docker.getImage(image).inspect(),
        'inspecting the agent image',
        READY_CALL_TIMEOUT_MS,
      );
    } catch (err) {
      if (statusCode(err) === 404)
        return notReady(`agent image ${image} not found (build it with npm run images)`);
      return notReady('the Docker engine did not answer');
    }
    const argv = [...(info.Config.Entrypoint ?? []), ...(info.Config.Cmd ?? [])];
    if (argv.length === 0) return notReady(`agent image ${image} has no command`);
    let runtimes: Record<string, unknown>;
    try {
      const engine = (await this.#call(
        this.#docker.info(),
        'reading the engine info',
        READY_CALL_TIMEOUT_MS,
      )) as {
        Runtimes?: Record<string, unknown>;
      };
      runtimes = engine.Runtimes ?? {};
    } catch {
      return notReady('the Docker engine did not answer');
    }
    // Without the event stream an OOM kill would go unreported (an engine that restarted closes it;
    // the watch reconnects at once, and until then the runner takes no run).
    if (!this.#oom.watching) return notReady("not yet watching the Docker engine's oom events");
    const runtime = resolveRuntime(requested, Object.keys(runtimes));
    if (!(runtime in runtimes)) {
      return notReady(
        `the Docker engine has no runtime "${runtime}" (SANDBOX_RUNTIME); it has: ${Object.keys(runtimes).join(', ')}`,
      );
    }
    if (runtime !== this.#runtime) this.#log.runtimeChosen(runtime, requested, Object.keys(runtimes));
    this.#runtime = runtime;
    this.#agentArgv = argv;
    return { ready: true, agentImage: image, runtime };
  }

  async listSandboxes(): Promise<ListedSandbox[]> {
    const list = await this.#call(
      this.#docker.listContainers({ all: true, filters: sandboxFilter(this.#config.runnerId) }),
      'listing sandboxes',
    );
    this.#pausedSeen = new Set(list.filter((c) => c.State === 'paused').map((c) => c.Id));
    return list.map((c) => ({
      id: c.Id,
      createdAtMs: c.Created * 1000,
      runId: c.Labels[LABEL_RUN_ID] ?? null,
    }));
  }

  async removeSandbox(id: string): Promise<boolean> {
    if (this.#pausedSeen.delete(id)) {
      // A frozen sandbox left by a previous process: gVisor removes it only once unpaused.
      await this.#call(this.#docker.getContainer(id).unpause(), 'unpausing a sandbox').catch(() => undefined);
    }
    try {
      await this.#call(this.#docker.getContainer(id).remove({ force: true, v: true }), 'removing a sandbox');
      return true;
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw err;
    } finally {
      this.#oom.forget(id);
    }
  }

  removeWorkspace(userId: string): Promise<boolean> {
    return this.#store.delete(userId);
  }
}

/**
 * SANDBOX_RUNTIME=auto is gVisor's runsc when the engine has it registered, else runc; any other
 * value is used as it is (and must be one of the engine's runtimes).
 */
export function resolveRuntime(requested: string, available: readonly string[]): string {
  if (requested !== 'auto') return requested;
  return available.includes('runsc') ? 'runsc' : 'runc';
}
