import { rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** The engine the proxy forwards to: DOCKER_HOST (a unix socket) or Docker's default socket. */
const ENGINE_SOCKET = process.env.DOCKER_HOST?.startsWith('unix://')
  ? process.env.DOCKER_HOST.slice('unix://'.length)
  : '/var/run/docker.sock';

/** An HTTP request line at the start of a chunk from the client ("POST /v1.41/containers/..."). */
const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.[01]\r\n/;

interface Link {
  client: net.Socket;
  engine: net.Socket;
  /** Bytes held while frozen, in order, with their direction. */
  held: Array<{ toEngine: boolean; chunk: Buffer }>;
  /** This connection hit a freeze rule: it stays stalled until thaw(). */
  stalled: boolean;
}

/**
 * A real unix-socket proxy between the runner (DOCKER_HOST=unix://<socketPath>) and the Docker
 * engine that can stall the engine for the runner, as a hung dockerd would: `freezeAll()` stops
 * every byte in both directions (and holds new connections), `freezeRequests(re)` stalls just the
 * connections whose next request line matches (e.g. /\/exec\// stalls the workspace save and
 * nothing else). `thaw()` delivers what was held and lets everything flow again. Nothing here
 * answers for the engine: every byte that passes is the real engine's.
 */
export class FreezableDockerProxy {
  readonly socketPath: string;
  /** Request lines seen, in order ("POST /v1.41/containers/create?name=..."). */
  readonly requests: string[] = [];
  readonly #server: net.Server;
  readonly #links = new Set<Link>();
  #frozen = false;
  #rule: RegExp | null = null;

  private constructor(socketPath: string, server: net.Server) {
    this.socketPath = socketPath;
    this.#server = server;
  }

  /** DOCKER_HOST for the runner. */
  get dockerHost(): string {
    return `unix://${this.socketPath}`;
  }

  static async start(): Promise<FreezableDockerProxy> {
    const socketPath = join(tmpdir(), `docker-proxy-${randomBytes(6).toString('hex')}.sock`);
    const server = net.createServer();
    const proxy = new FreezableDockerProxy(socketPath, server);
    server.on('connection', (client) => proxy.#accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, resolve);
    });
    return proxy;
  }

  #accept(client: net.Socket): void {
    const engine = net.connect(ENGINE_SOCKET);
    const link: Link = { client, engine, held: [], stalled: false };
    this.#links.add(link);
    const close = () => {
      client.destroy();
      engine.destroy();
      this.#links.delete(link);
    };
    client.on('error', close);
    engine.on('error', close);
    client.on('close', close);
    engine.on('close', close);
    client.on('data', (chunk: Buffer) => {
      const m = REQUEST_LINE.exec(chunk.subarray(0, 16_384).toString('latin1'));
      if (m) {
        this.requests.push(`${m[1]} ${m[2]}`);
        if (this.#rule?.test(`${m[1]} ${m[2]}`)) link.stalled = true;
      }
      this.#pass(link, true, chunk);
    });
    engine.on('data', (chunk: Buffer) => this.#pass(link, false, chunk));
  }

  #pass(link: Link, toEngine: boolean, chunk: Buffer): void {
    if (this.#frozen || link.stalled || link.held.length > 0) {
      link.held.push({ toEngine, chunk });
      return;
    }
    (toEngine ? link.engine : link.client).write(chunk);
  }

  /** Stalls everything, both ways, until thaw(). */
  freezeAll(): void {
    this.#frozen = true;
  }

  /** Stalls each connection from its next request whose "METHOD /path" matches `rule`. */
  freezeRequests(rule: RegExp): void {
    this.#rule = rule;
  }

  /** Delivers what was held, in order, and lets everything flow. */
  thaw(): void {
    this.#frozen = false;
    this.#rule = null;
    for (const link of this.#links) {
      link.stalled = false;
      const held = link.held.splice(0);
      for (const { toEngine, chunk } of held) (toEngine ? link.engine : link.client).write(chunk);
    }
  }

  /** Connections stalled now (a rule matched them). */
  get stalledCount(): number {
    let n = 0;
    for (const link of this.#links) if (link.stalled) n++;
    return n;
  }

  async close(): Promise<void> {
    for (const link of this.#links) {
      link.client.destroy();
      link.engine.destroy();
    }
    this.#links.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
  }
}
