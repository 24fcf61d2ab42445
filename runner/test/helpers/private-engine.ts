import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { AGENT_IMAGE, docker as hostDocker } from './runner-process.ts';

/**
 * A Docker engine of the test's own: a second real dockerd (its own data root, exec root,
 * containerd, socket and network namespace, the host engine's runtimes) that a test may stop,
 * kill and restart without touching the machine's engine. It starts with the agent image loaded
 * from the machine's engine. stop() ends it by PID and removes its directory.
 */
export class PrivateEngine {
  readonly dir: string;
  readonly socketPath: string;
  readonly docker: Docker;
  #child: ChildProcess | null = null;
  #log = '';

  private constructor(dir: string) {
    this.dir = dir;
    this.socketPath = join(dir, 'docker.sock');
    this.docker = new Docker({ socketPath: this.socketPath });
  }

  get dockerHost(): string {
    return `unix://${this.socketPath}`;
  }

  /** What the engine wrote (for a failing test's message). */
  get log(): string {
    return this.#log.slice(-4000);
  }

  static async start(): Promise<PrivateEngine> {
    const engine = new PrivateEngine(mkdtempSync('/tmp/ape-'));
    let runtimes: unknown = {};
    try {
      runtimes =
        (JSON.parse(readFileSync('/etc/docker/daemon.json', 'utf8')) as { runtimes?: unknown }).runtimes ??
        {};
    } catch {
      // no daemon.json: runc only
    }
    writeFileSync(join(engine.dir, 'daemon.json'), JSON.stringify({ runtimes }));
    try {
      await engine.#launch();
      // The agent image, from the machine's engine (offline: it cannot be pulled).
      const image = await hostDocker.getImage(AGENT_IMAGE).get();
      await new Promise<void>((resolve, reject) => {
        engine.docker.loadImage(image, {}, (err, stream?: NodeJS.ReadableStream) => {
          if (err || !stream) return reject(err ?? new Error('no load stream'));
          engine.docker.modem.followProgress(stream, (e) => (e ? reject(e) : resolve()));
        });
      });
      return engine;
    } catch (err) {
      await engine.stop();
      throw err;
    }
  }

  async #launch(): Promise<void> {
    const d = this.dir;
    // In a network namespace of its own: started with --bridge=none, dockerd deletes the host's
    // docker0 (the machine's engine then cannot build images: "could not find bridge docker0").
    // Sandboxes use no network, so the private engine needs none of the host's.
    const child = spawn(
      'unshare',
      [
        '--net',
        '--',
        'dockerd',
        `--host=unix://${this.socketPath}`,
        `--data-root=${join(d, 'data')}`,
        `--exec-root=${join(d, 'exec')}`,
        `--pidfile=${join(d, 'docker.pid')}`,
        `--config-file=${join(d, 'daemon.json')}`,
        '--bridge=none',
        '--iptables=false',
        '--ip-masq=false',
        '--shutdown-timeout=1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (c: Buffer) => (this.#log += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (this.#log += c.toString()));
    this.#child = child;
    for (let i = 0; i < 150; i++) {
      if (child.exitCode !== null) throw new Error(`dockerd exited:\n${this.log}`);
      try {
        await this.docker.ping();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`dockerd did not answer in 15 s:\n${this.log}`);
  }

  /** Stops the engine (SIGTERM: it stops its containers) and waits for it to exit. */
  async #terminate(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }

  /** Restarts the engine as a crash or an upgrade would: its containers stop, then it comes back. */
  async restart(): Promise<void> {
    await this.#terminate('SIGTERM');
    await this.#launch();
  }

  /** Removes what runs in it, stops it and deletes its directory. */
  async stop(): Promise<void> {
    if (this.#child) {
      const all = await this.docker.listContainers({ all: true }).catch(() => []);
      await Promise.all(
        all.map((c) =>
          this.docker
            .getContainer(c.Id)
            .remove({ force: true, v: true })
            .catch(() => undefined),
        ),
      );
      await this.#terminate('SIGTERM');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
