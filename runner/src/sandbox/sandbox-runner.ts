import type Docker from 'dockerode';
import type { RunnerConfig } from '../config.ts';
import { ClientGoneError, NotReadyError } from '../errors.ts';
import type { Logger } from '../logs.ts';
import type { AgentComponent, AgentRequest, CreatedAgent, HistoryEntry } from './agent-protocol.ts';
import type { OomWatch } from './oom-watch.ts';
import type { RunStatus } from './run-result.ts';
import { Sandbox, type Exchange } from './sandbox.ts';
import type { SandboxPool } from './sandbox-pool.ts';
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
  onText?: ((delta: string) => void) | undefined;
}

export interface SandboxOutcome {
  status: RunStatus;
  text: string;
  component: AgentComponent | null;
  agent: CreatedAgent | null;
  exitCode: number | null;
  containerId: string;
  warm: boolean;
  timings: { createMs: number; agentMs: number; saveMs: number };
}

const now = () => performance.now();
const MiB = 1024 * 1024;
/** Exit code reported when the host killed the sandbox (SIGKILL). */
const KILLED = 137;

/**
 * Runs one request: takes the user's warm sandbox or creates one (create -> attach -> start),
 * exchanges one request line for the agent's events, saves the workspace if the run changed it,
 * classifies the outcome, and hands the sandbox back to the pool (warm) or removes it.
 */
export class SandboxRunner {
  readonly #docker: Docker;
  readonly #config: RunnerConfig;
  readonly #log: Logger;
  readonly #workspaces: Workspaces;
  readonly #pool: SandboxPool;
  readonly #oom: OomWatch;
  #agentArgv: Promise<string[]> | null = null;

  constructor(
    docker: Docker,
    config: RunnerConfig,
    log: Logger,
    deps: { workspaces: Workspaces; pool: SandboxPool; oom: OomWatch },
  ) {
    this.#docker = docker;
    this.#config = config;
    this.#log = log;
    this.#workspaces = deps.workspaces;
    this.#pool = deps.pool;
    this.#oom = deps.oom;
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
    const problem = await runtimeProblem(this.#docker, this.#config.sandbox.runtime);
    if (problem) throw new NotReadyError(problem);
    return argv;
  }

  async #create(userId: string, runId: string): Promise<Sandbox> {
    const [agentArgv, volumeName] = await Promise.all([this.agentArgv(), this.#workspaces.ensure(userId)]);
    const s = await Sandbox.create(this.#docker, this.#config, this.#log, {
      runId,
      userId,
      volumeName,
      agentArgv,
    });
    this.#pool.adopt(s);
    return s;
  }

  /** Makes sure the user has a warm sandbox (caller holds the user's turn). */
  async prewarm(userId: string, runId: string): Promise<{ warm: boolean; created: boolean }> {
    if (!this.#pool.enabled) return { warm: false, created: false };
    if (this.#pool.hasSandbox(userId)) return { warm: true, created: false };
    const s = await this.#create(userId, runId);
    await this.#pool.giveBack(s);
    return { warm: true, created: true };
  }

  async run(input: SandboxRunInput): Promise<SandboxOutcome> {
    const t0 = now();
    let sandbox = await this.#pool.takeWarm(input.userId);
    if (sandbox && this.#oom.count(sandbox.container.id) > sandbox.oomEventsAtRest) {
      // An OOM kill reported after its run had ended: replace the sandbox.
      sandbox.tainted = true;
      await this.#pool.giveBack(sandbox);
      sandbox = null;
    }
    const warm = sandbox !== null;
    sandbox ??= await this.#create(input.userId, input.runId);
    const createMs = warm ? 0 : now() - t0;
    const s = sandbox;
    try {
      const oomBefore = this.#oom.count(s.container.id);
      const request: AgentRequest = {
        protocol: 1,
        runId: input.runId,
        userId: input.userId,
        conversationId: input.conversationId,
        message: input.message,
        history: input.history,
      };
      const tAgent = now();
      const x = await s.exchange(request, {
        timeoutMs: input.timeoutMs,
        signal: input.signal,
        onText: input.onText,
      });
      const agentMs = now() - tAgent;
      if (x.ending === 'aborted') throw new ClientGoneError('client disconnected');

      // Only a run that ran code can change the workspace or hit the memory limit; the agent
      // says so (a lie only costs its own user). Saving before answering means an answered run is
      // persisted, and gives Docker's `oom` event time to arrive.
      let saveMs = 0;
      if (x.ending === 'result' && x.result?.workspaceChanged !== false) {
        const tSave = now();
        const bytes = await s.save(input.runId);
        saveMs = now() - tSave;
        if (bytes > 0) this.#log.workspaceSaved(input.runId, s.container.id, bytes, Math.round(saveMs));
      }
      let exitCode: number | null = x.ending === 'result' ? 0 : KILLED;
      let oom = this.#oom.count(s.container.id) > oomBefore;
      if (x.ending === 'stream-closed') {
        const end = await this.#exited(s);
        exitCode = end.exitCode;
        oom ||= end.oomKilled;
      }
      if (oom) s.tainted = true; // removed now; the next run gets a fresh sandbox
      s.oomEventsAtRest = this.#oom.count(s.container.id);
      if (x.protocolError) this.#log.agentOutputInvalid(input.runId, s.container.id, x.protocolError);
      if (s.stderrTail) this.#log.agentStderr(input.runId, s.container.id, s.stderrTail);
      // Kept warm (instant) or, if tainted or warm reuse is off, removed before answering.
      await this.#pool.giveBack(s);
      return {
        ...classify(this.#config, input.timeoutMs, x, oom, exitCode),
        containerId: s.container.id,
        warm,
        timings: { createMs, agentMs, saveMs },
      };
    } catch (err) {
      s.tainted = true;
      await this.#pool.giveBack(s);
      throw err;
    }
  }

  /** The agent process ended on its own: the container has exited or is about to. */
  async #exited(s: Sandbox): Promise<{ exitCode: number | null; oomKilled: boolean }> {
    const waited = s.container.wait().then(
      (r: { StatusCode?: number }) => r.StatusCode ?? null,
      () => null,
    );
    const late = new Promise<'late'>((r) => setTimeout(() => r('late'), 5_000).unref());
    const exitCode = await Promise.race([waited, late]);
    return { exitCode: exitCode === 'late' ? null : exitCode, oomKilled: await s.oomKilled() };
  }
}

/** Why SANDBOX_RUNTIME cannot be used on this engine, or null if it can. */
export async function runtimeProblem(docker: Docker, runtime: string): Promise<string | null> {
  let runtimes: Record<string, unknown>;
  try {
    runtimes = ((await docker.info()) as { Runtimes?: Record<string, unknown> }).Runtimes ?? {};
  } catch {
    return 'the Docker engine did not answer';
  }
  if (runtime in runtimes) return null;
  return `the Docker engine has no runtime "${runtime}" (SANDBOX_RUNTIME); it has: ${Object.keys(runtimes).join(', ')}`;
}

type Classified = Omit<SandboxOutcome, 'containerId' | 'timings' | 'warm'>;

/** Turns what happened into a run result. The order matters: host-side kills win. */
function classify(
  config: RunnerConfig,
  timeoutMs: number,
  x: Exchange,
  oom: boolean,
  exitCode: number | null,
): Classified {
  const fail = (status: RunStatus, text: string): Classified => ({
    status,
    text,
    component: null,
    agent: null,
    exitCode,
  });
  if (x.ending === 'timeout')
    return fail('timeout', `The run took longer than ${timeoutMs} ms and was stopped.`);
  if (x.ending === 'output_limit') {
    return fail(
      'output_limit',
      `The agent's output exceeded ${config.outputLimitBytes} bytes; the run was stopped.`,
    );
  }
  if (oom) {
    const mib = Math.round(config.sandbox.memoryBytes / MiB);
    return fail('oom', `The sandbox ran out of memory (limit ${mib} MiB) and was stopped.`);
  }
  if (x.protocolError) return fail('error', `The agent's output was malformed: ${x.protocolError}.`);
  if (!x.result) {
    return fail(
      'error',
      exitCode === null
        ? 'The agent ended without a result.'
        : `The agent ended without a result (exit code ${exitCode}).`,
    );
  }
  return {
    status: x.result.status === 'error' ? 'error' : 'ok',
    text: x.result.text,
    component: x.result.component ?? null,
    agent: x.result.agent ?? null,
    exitCode,
  };
}
