import type { AgentRequest } from '@agent-platform/contract';
import { AgentSession } from '../../src/sandbox/agent-session.ts';
import type {
  Exchange,
  ExchangeOptions,
  ListedSandbox,
  Readiness,
  SandboxBackend,
  SandboxHandle,
} from '../../src/sandbox/backend.ts';

/**
 * A SandboxBackend in plain TypeScript for the engine's unit tests: no Docker, no timers of its
 * own beyond setImmediate. Each sandbox speaks the real agent protocol through the same
 * AgentSession as a Docker sandbox; what its "agent" does is chosen by the request's message:
 *
 *   ok | anything else   answers `echo: <message>` (workspace unchanged)
 *   write                answers ok and says the workspace changed (save returns 100 bytes)
 *   write-conflict       as write, but the store holds a newer snapshot (save returns conflict)
 *   error-result         answers with status error
 *   extras               answers with a created agent and a card component
 *   silent               never answers (the run times out)
 *   oom                  an OOM kill: the agent dies, exit 137, OOMKilled
 *   oom-after            answers ok, then an OOM event arrives after the run
 *   exit:<code>          the agent exits with <code> without a result
 *   garbage              writes a line that is not JSON
 *   flood                writes text events past any output limit
 *   long-line            writes one line without newline past any output limit
 */
export class InMemoryBackend implements SandboxBackend {
  readonly outputLimitBytes: number;
  readiness: Readiness = { ready: true, agentImage: 'memory', runtime: 'memory' };
  /** Delay of create, in ms (a slow platform). */
  createDelayMs = 0;
  /** When set, create fails with it. */
  createError: Error | null = null;
  readonly sandboxes: InMemorySandbox[] = [];
  readonly workspaces = new Set<string>();
  /** Containers this runner does not know (left by a previous process). */
  readonly orphans = new Map<string, number>();
  started = false;
  #next = 0;

  constructor(outputLimitBytes = 4096) {
    this.outputLimitBytes = outputLimitBytes;
  }

  /** Sandboxes not removed yet. */
  live(): InMemorySandbox[] {
    return this.sandboxes.filter((s) => !s.destroyed);
  }

  async create(opts: { runId: string; userId: string }): Promise<SandboxHandle> {
    if (this.createError) throw this.createError;
    this.workspaces.add(opts.userId);
    // Like a container, it is listed from the start, while it is still starting.
    const s = new InMemorySandbox(`mem-${++this.#next}`, opts.userId, opts.runId, this.outputLimitBytes);
    this.sandboxes.push(s);
    if (this.createDelayMs > 0) await new Promise((r) => setTimeout(r, this.createDelayMs));
    if (s.destroyed) throw new Error('the sandbox was removed while it started');
    return s;
  }

  async ready(): Promise<Readiness> {
    return this.readiness;
  }

  async listSandboxes(): Promise<ListedSandbox[]> {
    const live = this.live().map((s) => ({ id: s.id, createdAtMs: s.createdAtMs, runId: s.runId }));
    const orphans = [...this.orphans].map(([id, createdAtMs]) => ({ id, createdAtMs, runId: null }));
    return [...live, ...orphans];
  }

  async removeSandbox(id: string): Promise<boolean> {
    if (this.orphans.delete(id)) return true;
    const s = this.live().find((x) => x.id === id);
    if (!s) return false;
    await s.destroy();
    return true;
  }

  async removeWorkspace(userId: string): Promise<boolean> {
    return this.workspaces.delete(userId);
  }

  async start(): Promise<void> {
    this.started = true;
  }

  stop(): void {
    this.started = false;
  }
}

export class InMemorySandbox implements SandboxHandle {
  readonly id: string;
  readonly userId: string;
  readonly runId: string;
  readonly createdAtMs = Date.now();
  readonly requests: AgentRequest[] = [];
  destroyed = false;
  saves = 0;
  /** Paused (the cgroup freezer): an exchange while frozen is a bug the tests catch. */
  frozen = false;
  freezes = 0;
  /** When set, freeze or thaw fails with it (a platform that does not answer). */
  freezeError: Error | null = null;
  thawError: Error | null = null;
  #session: AgentSession;
  #oomEvents = 0;
  #oomKilled = false;
  #exitCode: number | null = null;
  #exited: Promise<number | null>;
  #exit!: (code: number | null) => void;
  /** The store holds a newer snapshot: the next save that has something to save is a conflict. */
  saveConflict = false;
  #changed = false;

  constructor(id: string, userId: string, runId: string, outputLimitBytes: number) {
    this.id = id;
    this.userId = userId;
    this.runId = runId;
    this.#exited = new Promise((r) => (this.#exit = r));
    this.#session = new AgentSession(outputLimitBytes, {
      write: (line) => setImmediate(() => this.#serve(JSON.parse(line) as AgentRequest)),
      kill: () => this.#die(137),
    });
  }

  #out(...lines: string[]): void {
    this.#session.data(lines.map((l) => l + '\n').join(''));
  }

  #die(code: number): void {
    if (this.#exitCode !== null) return;
    this.#exitCode = code;
    this.#exit(code);
    setImmediate(() => this.#session.close());
  }

  #serve(request: AgentRequest): void {
    if (this.#exitCode !== null) return;
    this.requests.push(request);
    const m = request.message;
    const result = (extra: Record<string, unknown> = {}) =>
      JSON.stringify({ type: 'result', text: `echo: ${m}`, workspaceChanged: false, ...extra });
    if (m === 'silent') return;
    if (m === 'write' || m === 'write-conflict') {
      this.#changed = true;
      if (m === 'write-conflict') this.saveConflict = true;
      return this.#out(result({ workspaceChanged: true }));
    }
    if (m === 'error-result') return this.#out(result({ status: 'error' }));
    if (m === 'extras') {
      return this.#out(
        result({
          agent: { name: 'Made', description: 'made by the run', instructions: 'none' },
          component: { type: 'card', title: 'a card', body: 'its body' },
        }),
      );
    }
    if (m === 'oom') {
      this.#oomEvents++;
      this.#oomKilled = true;
      return this.#die(137);
    }
    if (m === 'oom-after') {
      this.#out(result());
      setImmediate(() => this.#oomEvents++);
      return;
    }
    if (m.startsWith('exit:')) return this.#die(Number(m.slice(5)));
    if (m === 'garbage') return this.#out('hello');
    if (m === 'flood') {
      const line = JSON.stringify({ type: 'text', delta: 'x'.repeat(100) });
      return this.#out(...Array.from({ length: 1000 }, () => line));
    }
    if (m === 'long-line') return this.#session.data('x'.repeat(1_000_000));
    this.#out(JSON.stringify({ type: 'text', delta: 'echo: ' }), result());
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
  exchange(request: AgentRequest, opts: ExchangeOptions): Promise<Exchange> {
    if (this.frozen) throw new Error('exchange with a frozen sandbox');
    return this.#session.exchange(request, opts);
  }
  async freeze(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    if (this.freezeError) throw this.freezeError;
    this.frozen = true;
    this.freezes++;
  }
  /** Like `docker unpause`, it fails on a sandbox that is not frozen. */
  async thaw(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    if (this.thawError) throw this.thawError;
    if (!this.frozen) throw new Error('not frozen');
    this.frozen = false;
  }
  exec(): Promise<never> {
    return Promise.reject(new Error('exec is not simulated in memory'));
  }

  async save(): Promise<number | 'conflict'> {
    if (this.frozen) {
      // As in Docker: no exec in a paused container; the save fails and the sandbox is not reused.
      this.#session.markUnhealthy('workspace save failed: frozen');
      return 0;
    }
    this.saves++;
    if (this.saveConflict) {
      this.#session.markUnhealthy('its workspace is older than the stored one');
      return 'conflict';
    }
    const bytes = this.#changed ? 100 : 0;
    this.#changed = false;
    return bytes;
  }
  waitExit(): Promise<number | null> {
    return this.#exited;
  }
  async oomKilled(): Promise<boolean> {
    return this.#oomKilled;
  }
  oomEvents(): number {
    return this.#oomEvents;
  }
  /** The kernel OOM-killed a process of the sandbox; the sandbox goes on (an `oom` event). */
  oomKillChild(): void {
    this.#oomEvents++;
  }
  stderrTail(): string {
    return '';
  }
  async destroy(): Promise<void> {
    this.#session.markUnhealthy('removed');
    this.destroyed = true;
    this.#die(137);
  }
}
