import {
  ID_RULE,
  FILE_MAX_BYTES,
  NDJSON_MEDIA_TYPE,
  RUNNER_USER_HEADER,
  filePathSchema,
  type FilesList,
  idSchema,
  runRequestSchema,
  type DeleteWorkspaceResponse,
  type ModelsResponse,
  type RunnerErrorBody,
  type RunnerErrorCode,
  type RunResult,
  type RunStreamLine,
} from '@agent-platform/contract';
import express, { type ErrorRequestHandler, type Response } from 'express';
import type { RunnerConfig } from '../config.ts';
import {
  ClientGoneError,
  InvalidRequestError,
  NotReadyError,
  RunnerError,
  ShareFullError,
} from '../errors.ts';
import type { Logger } from '../logs.ts';
import type { Metrics } from '../metrics.ts';
import type { ModelGateway } from '../models/model-gateway.ts';
import { requireAuth, type Authenticator } from '../auth/authenticate.ts';
import { deleteFile, listFiles, readFile, writeFile } from '../runs/files.ts';
import type { RunService } from '../runs/run-service.ts';
import type { SandboxEngine } from '../sandbox/engine.ts';

export interface AppDeps {
  config: RunnerConfig;
  auth: Authenticator;
  runs: RunService;
  engine: SandboxEngine;
  /** The model gateway runs may use (null: none); checks a run's model and lists the models. */
  models: ModelGateway | null;
  log: Logger;
  /** Served at GET /metrics (behind authentication) when given. */
  metrics?: Metrics;
}

const errorBody = (code: RunnerErrorCode, message: string, field?: string): RunnerErrorBody => ({
  error: { code, message, ...(field ? { field } : {}) },
});
const streamLine = (line: RunStreamLine): string => JSON.stringify(line) + '\n';

/**
 * A fleet's balancer routes on RUNNER_USER_HEADER: a request whose header names another user than
 * the one it acts for would land on that user's runner, so it is refused (the header is optional
 * for a lone runner).
 */
function sameUser(header: string | string[] | undefined, userId: string): void {
  if (header === undefined) return;
  if (header !== userId) {
    throw new InvalidRequestError(
      `the ${RUNNER_USER_HEADER} header names another user than the request`,
      'userId',
    );
  }
}

/** The runner's HTTP API. Errors are translated to status codes here and nowhere else. */
export function createApp(deps: AppDeps): express.Express {
  const { config, auth, runs, engine, models, log, metrics } = deps;
  /** Throws NotReadyError (503) unless the engine can serve runs. */
  const requireReady = async (): Promise<void> => {
    const r = await engine.ready();
    if (!r.ready) throw new NotReadyError(r.reason);
  };
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  if (config.logRequests) {
    app.use((req, res, next) => {
      const t0 = performance.now();
      res.on('finish', () =>
        log.request(req.method, req.path, res.statusCode, Math.round(performance.now() - t0)),
      );
      next();
    });
  }

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', service: 'runner', runnerId: config.runnerId });
  });

  // Public for load balancers and health checks, which need only the status code; the reason,
  // the image and the runtime are for authenticated callers (operators, the functions).
  app.get('/readyz', async (req, res) => {
    const [r, detailed] = await Promise.all([
      engine.ready(),
      req.headers.authorization
        ? auth.verify(req.headers.authorization).then(
            () => true,
            () => false,
          )
        : false,
    ]);
    if (!r.ready) {
      res
        .status(503)
        .json(detailed ? { status: 'unavailable', reason: r.reason } : { status: 'unavailable' });
      return;
    }
    res.json(
      detailed ? { status: 'ready', agentImage: r.agentImage, runtime: r.runtime } : { status: 'ready' },
    );
  });

  const authed = express.Router();
  authed.use(requireAuth(auth, log));
  // Every body is JSON but a file's content (PUT .../files/content, raw bytes, parsed there).
  const isFileUpload = (req: { method?: string; url?: string }) =>
    req.method === 'PUT' && /\/files\/content(\?|$)/.test(req.url ?? '');
  authed.use(express.json({ limit: config.maxBodyBytes, type: (req) => !isFileUpload(req) }));
  const runSchema = runRequestSchema(config);

  // Prometheus text format, behind the same authentication as the API: the numbers describe
  // users' activity, so they are not public.
  if (metrics) {
    authed.get('/metrics', async (_req, res) => {
      res.set('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
    });
  }

  authed.post('/v1/runs', async (req, res) => {
    if (!req.is('application/json')) {
      throw new InvalidRequestError('the body must be JSON (Content-Type: application/json)');
    }
    const parsed = runSchema.safeParse(req.body);
    if (!parsed.success) throw fromZod(parsed.error);
    sameUser(req.headers[RUNNER_USER_HEADER], parsed.data.userId);
    const model = parsed.data.model;
    const refusal = model === undefined ? null : (models?.refusal(model) ?? null);
    if (refusal) throw new InvalidRequestError(`model: ${refusal}`, 'model');
    const signal = clientSignal(res);
    // A missing image or runtime is a 503, not a run result.
    await requireReady();
    if (!wantsNdjson(req.headers.accept)) {
      const result: RunResult = await runs.run(parsed.data, signal);
      if (signal.aborted) return;
      res.json(result);
      return;
    }
    // Streaming: the agent's text deltas as they happen, then the run result, one JSON object
    // per line. Errors before the first line (400, 401, 429, 503) are ordinary JSON answers;
    // the status line is only sent once the run has its turn and produces something.
    const start = () => {
      if (res.headersSent) return;
      res.status(200).set({ 'content-type': NDJSON_MEDIA_TYPE, 'cache-control': 'no-store' });
      res.flushHeaders();
    };
    const result = await runs.run(parsed.data, signal, (delta) => {
      start();
      res.write(streamLine({ type: 'text', delta }));
    });
    if (signal.aborted) return;
    start();
    res.end(streamLine({ type: 'result', result }));
  });

  // The files API over a user's workspace (issue 11), in the user's turn and sandbox.
  const fileUser = (req: express.Request): string => {
    const userId = idSchema.safeParse(req.params.userId);
    if (!userId.success) throw new InvalidRequestError(`userId: ${ID_RULE}`, 'userId');
    sameUser(req.headers[RUNNER_USER_HEADER], userId.data);
    return userId.data;
  };
  const filePath = (req: express.Request): string => {
    const parsed = filePathSchema.safeParse(req.query.path);
    if (!parsed.success)
      throw new InvalidRequestError(`path: ${parsed.error.issues[0]?.message ?? 'invalid'}`, 'path');
    return parsed.data;
  };
  authed.get('/v1/users/:userId/files', async (req, res) => {
    const userId = fileUser(req);
    await requireReady();
    const list: FilesList = await runs.files(userId, clientSignal(res), async (s, signal) => ({
      value: await listFiles(s, signal),
      changed: false,
    }));
    res.json(list);
  });
  authed.get('/v1/users/:userId/files/content', async (req, res) => {
    const userId = fileUser(req);
    const path = filePath(req);
    await requireReady();
    const data = await runs.files(userId, clientSignal(res), async (s, signal) => ({
      value: await readFile(s, path, signal),
      changed: false,
    }));
    res.set('content-type', 'application/octet-stream').send(data);
  });
  authed.put(
    '/v1/users/:userId/files/content',
    express.raw({ type: () => true, limit: FILE_MAX_BYTES }),
    async (req, res) => {
      const userId = fileUser(req);
      const path = filePath(req);
      const data = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      await requireReady();
      await runs.files(userId, clientSignal(res), async (s, signal) => {
        await writeFile(s, path, data, signal);
        return { value: undefined, changed: true };
      });
      res.json({ path, size: data.length });
    },
  );
  authed.delete('/v1/users/:userId/files/content', async (req, res) => {
    const userId = fileUser(req);
    const path = filePath(req);
    await requireReady();
    await runs.files(userId, clientSignal(res), async (s, signal) => {
      await deleteFile(s, path, signal);
      return { value: undefined, changed: true };
    });
    res.json({ deleted: true });
  });

  // The models runs may name, for the functions' agent settings (no provider call).
  authed.get('/v1/models', (_req, res) => {
    const body: ModelsResponse = {
      configured: Boolean(models?.settings.baseUrl),
      models: models?.models() ?? [],
      default: models?.settings.defaultModel ?? null,
    };
    res.json(body);
  });

  authed.post('/v1/users/:userId/warm', async (req, res) => {
    const userId = idSchema.safeParse(req.params.userId);
    if (!userId.success) throw new InvalidRequestError(`userId: ${ID_RULE}`, 'userId');
    sameUser(req.headers[RUNNER_USER_HEADER], userId.data);
    await requireReady();
    res.json(await runs.prewarm(userId.data, clientSignal(res)));
  });

  authed.delete('/v1/users/:userId/workspace', async (req, res) => {
    const userId = idSchema.safeParse(req.params.userId);
    if (!userId.success) throw new InvalidRequestError(`userId: ${ID_RULE}`, 'userId');
    sameUser(req.headers[RUNNER_USER_HEADER], userId.data);
    const body: DeleteWorkspaceResponse = {
      deleted: await runs.deleteWorkspace(userId.data, clientSignal(res)),
    };
    res.json(body);
  });

  app.use(authed);

  app.use((_req, res) => {
    res.status(404).json(errorBody('not_found', 'no such route'));
  });

  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    if (res.headersSent) {
      // Mid-stream: say so on the stream (the client then knows the run did not finish).
      if (!(err instanceof ClientGoneError) && res.getHeader('content-type') === NDJSON_MEDIA_TYPE) {
        log.unexpected('streaming run', err);
        res.end(streamLine({ type: 'error', error: { code: 'internal', message: 'internal error' } }));
        return;
      }
      res.destroy();
      return;
    }
    if (err instanceof ClientGoneError) {
      res.destroy();
      return;
    }
    const body = bodyParserError(err);
    if (body) {
      res.status(body.status).json(errorBody(body.code, body.message));
      return;
    }
    if (err instanceof RunnerError) {
      if ('retryAfterSeconds' in err && typeof err.retryAfterSeconds === 'number') {
        res.set('Retry-After', String(err.retryAfterSeconds));
      }
      const field =
        err instanceof InvalidRequestError
          ? err.field
          : err instanceof ShareFullError
            ? err.share
            : undefined;
      res.status(err.httpStatus).json(errorBody(err.code, err.message, field));
      return;
    }
    log.unexpected('request handler', err);
    res.status(500).json(errorBody('internal', 'internal error'));
  };
  app.use(onError);
  return app;
}

/** True when the client asked for NDJSON streaming (Accept: application/x-ndjson). */
function wantsNdjson(accept: string | undefined): boolean {
  return /(^|,)\s*application\/x-ndjson\s*(;|,|$)/i.test(accept ?? '');
}

/** An AbortSignal that fires when the client disconnects before the response is sent. */
function clientSignal(res: Response): AbortSignal {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}

function fromZod(error: { issues: Array<{ path: PropertyKey[]; message: string }> }): InvalidRequestError {
  const issue = error.issues[0];
  if (!issue) return new InvalidRequestError('invalid request');
  const field = issue.path.map(String).join('.');
  if (!field) return new InvalidRequestError(`the body must be a JSON object: ${issue.message}`);
  return new InvalidRequestError(`${field}: ${issue.message}`, field);
}

/** Translates body-parser's errors (they carry `type`). */
function bodyParserError(err: unknown): { status: number; code: RunnerErrorCode; message: string } | null {
  if (typeof err !== 'object' || err === null || !('type' in err)) return null;
  const type = (err as { type: unknown }).type;
  if (type === 'entity.too.large') {
    return { status: 413, code: 'body_too_large', message: 'the request body is too large' };
  }
  if (type === 'entity.parse.failed') {
    return { status: 400, code: 'invalid_json', message: 'the request body is not valid JSON' };
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return { status: 415, code: 'unsupported_encoding', message: 'unsupported body encoding' };
  }
  return null;
}
