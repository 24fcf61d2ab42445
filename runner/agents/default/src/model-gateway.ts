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
  modelErrorBody,
  type AgentEvent,
  type ModelPath,
  type ModelResponseLine,
} from '@agent-platform/contract';

const RESPONSE_PREFIX = '{"type":"model_response"';
const TOO_LARGE = `a model request may have at most ${MODEL_REQUEST_MAX_BYTES} bytes`;

function answerError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(modelErrorBody(message, 'gateway_error'));
}

/** Where the lines of one model response go: an HTTP answer, or the agent's own model call. */
export interface ResponseSink {
  head(status: number, contentType: string): void;
  data(chunk: string): void;
  end(): void;
  /** The run ended before the answer did. */
  abort(message: string): void;
}

function httpSink(res: ServerResponse): ResponseSink {
  return {
    head: (status, contentType) => {
      if (!res.headersSent) res.writeHead(status, { 'content-type': contentType });
    },
    data: (chunk) => res.write(chunk),
    end: () => res.end(),
    abort: (message) => answerError(res, 503, message),
  };
}

export class ModelGateway {
  readonly #emit: (event: AgentEvent) => void;
  readonly #pending = new Map<string, ResponseSink>();
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
    for (const sink of this.#pending.values()) sink.abort('the run ended before the model answered');
    this.#pending.clear();
  }

  /**
   * A model request of the agent itself (the reference LLM agent), through the same runner
   * channel as the sandbox's HTTP clients. Only during a run.
   */
  request(method: 'GET' | 'POST', path: ModelPath, body: string | null, sink: ResponseSink): void {
    if (!this.#active) return sink.abort('the model gateway answers during a run only');
    // The runner refuses a larger model_request line as a protocol error and ends the run; the
    // agent's own requests grow with its tool loop, so they are held to the bound here too.
    if (body !== null && Buffer.byteLength(body) > MODEL_REQUEST_MAX_BYTES) return sink.abort(TOO_LARGE);
    const id = (++this.#next).toString(36);
    this.#pending.set(id, sink);
    this.#emit({ type: 'model_request', id, method, path, body });
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
    const sink = this.#pending.get(m.id);
    if (!sink) return true;
    if (m.status !== undefined) sink.head(m.status, m.contentType ?? 'application/json');
    if (typeof m.chunk === 'string' && m.chunk.length > 0) sink.data(m.chunk);
    if (m.done) {
      sink.end();
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
        answerError(res, 413, TOO_LARGE);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (refused) return;
      const body = Buffer.concat(chunks).toString('utf8');
      this.request(method, path as ModelPath, body || null, httpSink(res));
    });
  }
}
