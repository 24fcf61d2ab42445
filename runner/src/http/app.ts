import express, { type ErrorRequestHandler, type Response } from 'express';
import type Docker from 'dockerode';
import type { RunnerConfig } from '../config.ts';
import { ClientGoneError, InvalidRequestError, RunnerError } from '../errors.ts';
import type { Logger } from '../logs.ts';
import { requireAuth, type Authenticator } from '../auth/authenticate.ts';
import { runRequestSchema, userIdSchema } from '../runs/run-request.ts';
import type { RunService } from '../runs/run-service.ts';
import { runtimeProblem, type SandboxRunner } from '../sandbox/sandbox-runner.ts';

export interface AppDeps {
  config: RunnerConfig;
  docker: Docker;
  auth: Authenticator;
  runs: RunService;
  sandboxes: SandboxRunner;
  log: Logger;
}

/** The runner's HTTP API. Errors are translated to status codes here and nowhere else. */
export function createApp(deps: AppDeps): express.Express {
  const { config, docker, auth, runs, sandboxes, log } = deps;
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
    res.json({ status: 'ok', service: 'runner' });
  });

  app.get('/readyz', async (_req, res) => {
    try {
      await docker.ping();
    } catch {
      res.status(503).json({ status: 'unavailable', reason: 'the Docker engine does not answer' });
      return;
    }
    try {
      await docker.getImage(config.agentImage).inspect();
    } catch {
      res.status(503).json({ status: 'unavailable', reason: `agent image ${config.agentImage} not found` });
      return;
    }
    const problem = await runtimeProblem(docker, config.sandbox.runtime);
    if (problem) {
      res.status(503).json({ status: 'unavailable', reason: problem });
      return;
    }
    res.json({ status: 'ready', agentImage: config.agentImage, runtime: config.sandbox.runtime });
  });

  const authed = express.Router();
  authed.use(requireAuth(auth, log));
  authed.use(express.json({ limit: config.maxBodyBytes, type: () => true }));
  const runSchema = runRequestSchema(config);

  authed.post('/v1/runs', async (req, res) => {
    if (!req.is('application/json')) {
      throw new InvalidRequestError('the body must be JSON (Content-Type: application/json)');
    }
    const parsed = runSchema.safeParse(req.body);
    if (!parsed.success) throw fromZod(parsed.error);
    const signal = clientSignal(res);
    // Warm the image command so a missing image is a 503, not a run result.
    await sandboxes.agentArgv();
    if (!wantsNdjson(req.headers.accept)) {
      const result = await runs.run(parsed.data, signal);
      if (signal.aborted) return;
      res.json(result);
      return;
    }
    // Streaming: the agent's text deltas as they happen, then the run result, one JSON object
    // per line. Errors before the first line (400, 401, 429, 503) are ordinary JSON answers;
    // the status line is only sent once the run has its turn and produces something.
    const start = () => {
      if (res.headersSent) return;
      res.status(200).set({ 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      res.flushHeaders();
    };
    const result = await runs.run(parsed.data, signal, (delta) => {
      start();
      res.write(JSON.stringify({ type: 'text', delta }) + '\n');
    });
    if (signal.aborted) return;
    start();
    res.end(JSON.stringify({ type: 'result', result }) + '\n');
  });

  authed.post('/v1/users/:userId/warm', async (req, res) => {
    const userId = userIdSchema.safeParse(req.params.userId);
    if (!userId.success) throw new InvalidRequestError('userId: must be 1-128 of [A-Za-z0-9_-]', 'userId');
    await sandboxes.agentArgv();
    res.json(await runs.prewarm(userId.data, clientSignal(res)));
  });

  authed.delete('/v1/users/:userId/workspace', async (req, res) => {
    const userId = userIdSchema.safeParse(req.params.userId);
    if (!userId.success) throw new InvalidRequestError('userId: must be 1-128 of [A-Za-z0-9_-]', 'userId');
    const existed = await runs.deleteWorkspace(userId.data, clientSignal(res));
    res.json({ deleted: existed });
  });

  app.use(authed);

  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'not_found', message: 'no such route' } });
  });

  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    if (res.headersSent) {
      // Mid-stream: say so on the stream (the client then knows the run did not finish).
      if (!(err instanceof ClientGoneError) && res.getHeader('content-type') === 'application/x-ndjson') {
        log.unexpected('streaming run', err);
        res.end(
          JSON.stringify({ type: 'error', error: { code: 'internal', message: 'internal error' } }) + '\n',
        );
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
      res.status(body.status).json({ error: body.error });
      return;
    }
    if (err instanceof RunnerError) {
      if ('retryAfterSeconds' in err && typeof err.retryAfterSeconds === 'number') {
        res.set('Retry-After', String(err.retryAfterSeconds));
      }
      const field = err instanceof InvalidRequestError && err.field ? { field: err.field } : {};
      res.status(err.httpStatus).json({ error: { code: err.code, message: err.message, ...field } });
      return;
    }
    log.unexpected('request handler', err);
    res.status(500).json({ error: { code: 'internal', message: 'internal error' } });
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
function bodyParserError(err: unknown): { status: number; error: { code: string; message: string } } | null {
  if (typeof err !== 'object' || err === null || !('type' in err)) return null;
  const type = (err as { type: unknown }).type;
  if (type === 'entity.too.large') {
    return { status: 413, error: { code: 'body_too_large', message: 'the request body is too large' } };
  }
  if (type === 'entity.parse.failed') {
    return { status: 400, error: { code: 'invalid_json', message: 'the request body is not valid JSON' } };
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return { status: 415, error: { code: 'unsupported_encoding', message: 'unsupported body encoding' } };
  }
  return null;
}
