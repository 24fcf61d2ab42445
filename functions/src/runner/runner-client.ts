import {
  LineSplitter,
  NDJSON_MEDIA_TYPE,
  REPLY_MAX_CHARS,
  RUNNER_USER_HEADER,
  deleteWorkspaceResponseSchema,
  filesListSchema,
  type FilesList,
  modelsResponseSchema,
  runnerErrorBodySchema,
  runResultSchema,
  runStreamLineSchema,
  warmResponseSchema,
  type ModelsResponse,
  type RunRequestInput,
  type RunResult,
} from '@agent-platform/contract';
import { GoogleAuth } from 'google-auth-library';
import {
  FileNotFoundError,
  InternalError,
  InvalidInputError,
  RateLimitedError,
  RunnerTimeoutError,
  RunnerUnavailableError,
} from '../errors.ts';
import type { RunnerLocation } from './runner-url.ts';

export type { RunResult };
/** One run request (the runner's POST /v1/runs body, declared in the contract). */
export type RunRequest = RunRequestInput;

/**
 * Longest line of the runner's stream kept in memory: a result line holds the reply, and JSON
 * escaping can grow a character to six.
 */
const STREAM_LINE_MAX_CHARS = 6 * REPLY_MAX_CHARS + 64 * 1024;

export interface RunnerClientOptions {
  location: () => Promise<RunnerLocation>;
  timeoutMs: number;
  /** Shared secret, used only under the emulators. */
  devToken?: string | undefined;
  fetchImpl?: typeof fetch;
}

/**
 * Talks to the runner. Authenticates with a Google ID token for the runner's audience (cached
 * client per instance), or with the development secret under the emulators. Translates every
 * runner answer into a result or a domain error, here and nowhere else.
 */
export class RunnerClient {
  readonly #opts: RunnerClientOptions;
  readonly #fetch: typeof fetch;
  #idTokenClient: Promise<{ getRequestHeaders(url?: string): Promise<Headers> }> | null = null;

  constructor(opts: RunnerClientOptions) {
    this.#opts = opts;
    this.#fetch = opts.fetchImpl ?? fetch;
  }

  /**
   * One run. With `onText`, asks the runner to stream (NDJSON) and calls it for every text delta
   * as the agent produces it; the result is the same either way.
   */
  async run(req: RunRequest, onText?: (delta: string) => void): Promise<RunResult> {
    const res = await this.#send('POST', '/v1/runs', req, onText ? NDJSON_MEDIA_TYPE : undefined, req.userId);
    const streaming = (res.headers.get('content-type') ?? '').startsWith(NDJSON_MEDIA_TYPE);
    if (onText && res.ok && streaming) return this.#readStream(res, onText);
    return parseResult(await this.#json(res, true));
  }

  async #readStream(res: Response, onText: (delta: string) => void): Promise<RunResult> {
    const decoder = new TextDecoder();
    const splitter = new LineSplitter(STREAM_LINE_MAX_CHARS);
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        for (const line of splitter.push(decoder.decode(chunk, { stream: true }))) {
          if (line === null) throw new InternalError('runner streamed a line over the bound');
          if (!line.trim()) continue;
          const parsed = runStreamLineSchema.safeParse(safeJson(line));
          if (!parsed.success) throw new InternalError('runner streamed an invalid line');
          const event = parsed.data;
          if (event.type === 'text') onText(event.delta);
          else if (event.type === 'error') throw new InternalError('runner reported an error mid-stream');
          else return event.result;
        }
      }
    } catch (err) {
      if (isTimeout(err)) throw new RunnerTimeoutError();
      if (err instanceof InternalError) throw err;
      throw new RunnerUnavailableError(undefined, `stream broke: ${errorCode(err)}`);
    }
    // The stream ended without a result: the runner went away.
    throw new RunnerUnavailableError(undefined, 'stream ended without a result');
  }

  /** Starts the user's sandbox ahead of their first message (a no-op where warm reuse is off). */
  async warm(userId: string): Promise<{ warm: boolean; created: boolean }> {
    const body = await this.#call('POST', `/v1/users/${encodeURIComponent(userId)}/warm`, userId);
    const parsed = warmResponseSchema.safeParse(body);
    if (!parsed.success) throw new InternalError('runner answered an invalid warm-up');
    return parsed.data;
  }

  /** The files API (the user's workspace, through their sandbox). */
  async listFiles(userId: string): Promise<FilesList> {
    const parsed = filesListSchema.safeParse(await this.#call('GET', `${filesPath(userId)}`, userId));
    if (!parsed.success) throw new InternalError('runner answered an invalid file list');
    return parsed.data;
  }

  async readFile(userId: string, path: string): Promise<Buffer> {
    const res = await this.#send('GET', contentPath(userId, path), undefined, undefined, userId);
    if (!res.ok) await this.#fileError(res);
    return Buffer.from(await res.arrayBuffer());
  }

  async writeFile(userId: string, path: string, data: Buffer): Promise<void> {
    const res = await this.#send('PUT', contentPath(userId, path), data, undefined, userId);
    if (!res.ok) await this.#fileError(res);
    await res.body?.cancel();
  }

  async deleteFile(userId: string, path: string): Promise<void> {
    const res = await this.#send('DELETE', contentPath(userId, path), undefined, undefined, userId);
    if (!res.ok) await this.#fileError(res);
    await res.body?.cancel();
  }

  /** A files API refusal, as the domain error a client can act on. */
  async #fileError(res: Response): Promise<never> {
    const body = runnerErrorBodySchema.safeParse(await res.json().catch(() => null));
    const message = body.success ? body.data.error.message : `runner answered ${res.status}`;
    if (res.status === 404) throw new FileNotFoundError();
    if (res.status === 400 || res.status === 413) throw new InvalidInputError(message, 'path');
    throw new InternalError(`runner answered ${res.status} to a files call: ${message}`);
  }

  /** The models runs may name (MODEL_ALLOWLIST and MODEL_DEFAULT of the runner). */
  async models(): Promise<ModelsResponse> {
    const parsed = modelsResponseSchema.safeParse(await this.#call('GET', '/v1/models'));
    if (!parsed.success) throw new InternalError('runner answered an invalid model list');
    return parsed.data;
  }

  async deleteWorkspace(userId: string): Promise<boolean> {
    const body = await this.#call('DELETE', `/v1/users/${encodeURIComponent(userId)}/workspace`, userId);
    const parsed = deleteWorkspaceResponseSchema.safeParse(body);
    if (!parsed.success) throw new InternalError('runner answered an invalid workspace deletion');
    return parsed.data.deleted;
  }

  async #headers(loc: RunnerLocation): Promise<Record<string, string>> {
    if (this.#opts.devToken) return { authorization: `Bearer ${this.#opts.devToken}` };
    this.#idTokenClient ??= new GoogleAuth().getIdTokenClient(loc.audience).catch((err: unknown) => {
      this.#idTokenClient = null;
      throw err;
    });
    const headers = await (await this.#idTokenClient).getRequestHeaders(loc.url);
    const auth = headers.get('authorization');
    if (!auth) throw new InternalError('could not obtain an ID token for the runner');
    return { authorization: auth };
  }

  /**
   * Sends one request and maps capacity and gateway answers. Retries once, only when the
   * connection was refused before anything was sent (so a retry can never duplicate a run).
   */
  async #send(
    method: string,
    path: string,
    json: unknown,
    accept?: string,
    userId?: string,
  ): Promise<Response> {
    const loc = await this.#opts.location();
    const headers: Record<string, string> = {
      ...(await this.#headers(loc)),
      'content-type': 'application/json',
    };
    if (accept) headers.accept = accept;
    // A fleet's balancer keeps each user on one runner by this header (consistent hashing).
    if (userId) headers[RUNNER_USER_HEADER] = userId;
    let res: Response | undefined;
    for (let attempt = 0; attempt < 2 && !res; attempt++) {
      try {
        res = await this.#fetch(`${loc.url}${path}`, {
          method,
          headers: Buffer.isBuffer(json)
            ? { ...headers, 'content-type': 'application/octet-stream' }
            : headers,
          ...(json === undefined
            ? {}
            : { body: Buffer.isBuffer(json) ? new Uint8Array(json) : JSON.stringify(json) }),
          signal: AbortSignal.timeout(this.#opts.timeoutMs),
        });
      } catch (err) {
        if (isTimeout(err)) throw new RunnerTimeoutError();
        if (attempt === 0 && isConnectionRefused(err)) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        throw new RunnerUnavailableError(undefined, `request failed: ${errorCode(err)}`);
      }
    }
    if (!res) throw new RunnerUnavailableError(undefined, 'connection refused twice');
    // Capacity and gateway answers (often HTML from a proxy) are mapped before reading a body.
    if (res.status === 429) {
      const share = await shareFull(res);
      if (share) {
        // The runner is not full: this client's share of it is (run-gate.ts). Others go on.
        const retry = Number(res.headers.get('retry-after')) || 5;
        throw new RateLimitedError(
          share === 'address'
            ? 'messages from your network are using their share of the agent runner; try again when one has been answered'
            : 'anonymous accounts are using their share of the agent runner; try again shortly, or sign in',
          retry,
        );
      }
      throw new RunnerUnavailableError(
        'the agent runner is busy; try again in a few seconds',
        'runner answered 429',
      );
    }
    if (res.status === 507) {
      // workspaces_full: the runner refuses new users before its disk fills.
      await res.body?.cancel();
      const retry = Number(res.headers.get('retry-after')) || 300;
      throw new RateLimitedError('the agent runner has no room for a new workspace; try again later', retry);
    }
    if (res.status === 502 || res.status === 503 || res.status === 504) {
      await res.body?.cancel();
      throw new RunnerUnavailableError(undefined, `runner answered ${res.status}`);
    }
    return res;
  }

  async #json(res: Response, isRun: boolean): Promise<unknown> {
    let body: unknown;
    try {
      body = await res.json();
    } catch (err) {
      if (isTimeout(err)) throw new RunnerTimeoutError();
      throw new InternalError(`runner answered ${res.status} without JSON`);
    }
    if (res.ok) return body;
    // The one 400 a valid request can get: its agent's model left the runner's allowlist.
    const refused = runnerErrorBodySchema.safeParse(body);
    if (isRun && res.status === 400 && refused.success && refused.data.error.field === 'model') {
      throw new InvalidInputError(
        "this agent's model is not offered any more; choose another in the agent's settings",
        'model',
      );
    }
    throw new InternalError(
      `runner answered ${res.status}${isRun ? ' to a run' : ''}: ${JSON.stringify(body).slice(0, 300)}`,
    );
  }

  async #call(method: string, path: string, userId?: string): Promise<unknown> {
    return this.#json(await this.#send(method, path, undefined, undefined, userId), false);
  }
}

const filesPath = (userId: string) => `/v1/users/${encodeURIComponent(userId)}/files`;
const contentPath = (userId: string, path: string) =>
  `${filesPath(userId)}/content?path=${encodeURIComponent(path)}`;

function parseResult(body: unknown): RunResult {
  const parsed = runResultSchema.safeParse(body);
  if (!parsed.success) {
    throw new InternalError(`runner answered an invalid result: ${parsed.error.issues[0]?.message}`);
  }
  return parsed.data;
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

/** A connection error's code (ECONNRESET, UND_ERR_SOCKET, ...) or name, for logs. */
function errorCode(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return cause.code;
  return err instanceof Error ? err.name : 'unknown';
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
}

function isConnectionRefused(err: unknown): boolean {
  const cause = err instanceof Error ? (err.cause as { code?: string } | undefined) : undefined;
  return cause?.code === 'ECONNREFUSED';
}

/** Which share of the runner a 429 names (`share_full`), or null for plain overload; reads the body. */
async function shareFull(res: Response): Promise<'address' | 'anonymous' | null> {
  const parsed = runnerErrorBodySchema.safeParse(await res.json().catch(() => null));
  if (!parsed.success || parsed.data.error.code !== 'share_full') return null;
  return parsed.data.error.field === 'anonymous' ? 'anonymous' : 'address';
}
