/**
 * The agent's side of the model gateway (contract/src/protocol.ts): an HTTP server on the
 * sandbox's loopback that turns each request of code in the sandbox into a `model_request` line
 * on stdout and writes the runner's `model_response` lines (read from stdin) back as the HTTP
 * answer. It answers only while a run is in progress: between runs the runner reads nothing, and
 * a line written then would end the sandbox.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  MODEL_GATEWAY_PORT,
  MODEL_PATHS,
  MODEL_REQUEST_MAX_BYTES,
  type AgentEvent,
  type ModelPath,
  type ModelResponseLine,
} from '@agent-platform/contract';

const RESPONSE_PREFIX = '{"type":"model_response"';

function answerError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { message, type: 'gateway_error' } }));
}

export class ModelGateway {
  readonly #emit: (event: AgentEvent) => void;
  readonly #pending = new Map<string, ServerResponse>();
  #active = false;
  #next = 0;

  constructor(emit: (event: AgentEvent) => void) {
    this.#emit = emit;
  }

  /** Starts listening; a failure to listen is reported on stderr and leaves the agent working. */
  listen(): void {
    const server = createServer((req, res) => this.#handle(req, res));
    server.on('error', (err) => process.stderr.write(`agent: model gateway: ${err.message}\n`));
    server.listen(MODEL_GATEWAY_PORT, '127.0.0.1');
    server.unref();
  }

  /** A run starts: requests are forwarded from now on. */
  begin(): void {
    this.#active = true;
  }

  /** The run ends (before its result is written): what is still waiting gets a 503. */
  end(): void {
    this.#active = false;
    for (const res of this.#pending.values())
      answerError(res, 503, 'the run ended before the model answered');
    this.#pending.clear();
  }

  /** A line read from stdin: true when it was a model response (then it is handled here). */
  route(line: string): boolean {
    if (!line.startsWith(RESPONSE_PREFIX)) return false;
    let m: ModelResponseLine;
    try {
      m = JSON.parse(line) as ModelResponseLine;
    } catch {
      return true;
    }
    const res = this.#pending.get(m.id);
    if (!res) return true;
    if (!res.headersSent) {
      res.writeHead(m.status ?? 502, { 'content-type': m.contentType ?? 'application/json' });
    }
    if (typeof m.chunk === 'string' && m.chunk.length > 0) res.write(m.chunk);
    if (m.done) {
      res.end();
      this.#pending.delete(m.id);
    }
    return true;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (!this.#active) return answerError(res, 503, 'the model gateway answers during a run only');
    if (!(MODEL_PATHS as readonly string[]).includes(path)) {
      return answerError(res, 404, `the model gateway serves ${MODEL_PATHS.join(' and ')}`);
    }
    const method = req.method === 'GET' ? 'GET' : req.method === 'POST' ? 'POST' : null;
    if (!method) return answerError(res, 405, 'GET or POST only');
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > MODEL_REQUEST_MAX_BYTES) {
        refused = true;
        answerError(res, 413, `a model request may have at most ${MODEL_REQUEST_MAX_BYTES} bytes`);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (refused) return;
      if (!this.#active) return answerError(res, 503, 'the model gateway answers during a run only');
      const id = (++this.#next).toString(36);
      this.#pending.set(id, res);
      const body = Buffer.concat(chunks).toString('utf8');
      this.#emit({ type: 'model_request', id, method, path: path as ModelPath, body: body || null });
    });
  }
}
