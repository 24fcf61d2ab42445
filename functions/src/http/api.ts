import { clientIp } from './client-ip.ts';
import {
  FUNCTION_TIMEOUT_S,
  REST_BODY_MAX_BYTES,
  decodeEmulatorAppCheckToken,
  SSE_EVENTS,
  SSE_MEDIA_TYPE,
  agentIdInputSchema,
  conversationIdInputSchema,
  createAgentInputSchema,
  filePathInputSchema,
  updateAgentInputSchema,
  getConversationInputSchema,
  listConversationsInputSchema,
  sendMessageInputSchema,
} from '@agent-platform/contract';
import express, { type NextFunction, type Request, type Response } from 'express';
import { onRequest } from 'firebase-functions/v2/https';
import type { FunctionsConfig } from '../config.ts';
import { config, deps } from '../deps.ts';
import { AppCheckRequiredError, InvalidInputError, NotSignedInError } from '../errors.ts';
import { log } from '../logs.ts';
import { parseInput } from './parse-input.ts';
import { toHttpError } from './translate.ts';

/**
 * The REST API for clients that do not use the Firebase SDK. Identity comes only from a verified
 * Firebase ID token (`Authorization: Bearer`); the old trusted X-User-Id header is gone.
 */
export function createApi(cfg: () => FunctionsConfig = config): express.Express {
  const app = express();
  app.disable('x-powered-by');

  app.use((req, res, next) => {
    const origin = req.headers.origin;
    if (origin) {
      let allowed: string[];
      try {
        allowed = cfg().corsOrigins;
      } catch (err) {
        const out = toHttpError(err, 'api');
        res.status(out.status).set(out.headers).json(out.body);
        return;
      }
      if (!allowed.includes(origin)) {
        res.status(403).json({ error: { code: 'permission-denied', message: 'origin not allowed' } });
        return;
      }
      res.set({
        'access-control-allow-origin': origin,
        vary: 'Origin',
        'access-control-allow-headers': 'authorization, content-type, x-firebase-appcheck',
        'access-control-allow-methods': 'GET, POST, PATCH, DELETE, OPTIONS',
        'access-control-max-age': '3600',
      });
      if (req.method === 'OPTIONS') {
        res.status(204).end();
        return;
      }
    }
    next();
  });

  const health = (_req: Request, res: Response) => {
    res.json({ status: 'ok', service: 'api-server' });
  };
  app.get('/health', health);
  app.get('/api/health', health);

  app.use('/api', express.json({ limit: REST_BODY_MAX_BYTES }));

  /**
   * With ENFORCE_APP_CHECK, a REST call must carry a valid App Check token, as the callables do:
   * verified by the Admin SDK (deployed), decoded only under the emulator (as firebase-functions
   * does for the callables there; contract/src/app-check.ts).
   */
  const requireAppCheck = async (req: Request, route: string): Promise<void> => {
    const c = cfg();
    if (!c.enforceAppCheck) return;
    const token = req.headers['x-firebase-appcheck'];
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) {
      throw new AppCheckRequiredError();
    }
    if (c.emulator) {
      if (!decodeEmulatorAppCheckToken(token)) throw new AppCheckRequiredError();
      return;
    }
    try {
      await deps().appCheck.verifyToken(token);
    } catch (err) {
      log.appCheckRejected(route, err);
      throw new AppCheckRequiredError();
    }
  };

  /** The signed-in caller: their uid, and whether the account is anonymous. */
  const callerOf = async (req: Request, route: string): Promise<Caller> => {
    const m = /^Bearer ([^\s]+)$/.exec(req.headers.authorization ?? '');
    if (!m?.[1]) throw new NotSignedInError();
    await requireAppCheck(req, route);
    try {
      // checkRevoked: a token of a disabled user or one whose sessions were revoked is refused
      // (one more Auth lookup per REST call).
      const token = await deps().auth.verifyIdToken(m[1], true);
      return { uid: token.uid, anonymous: token.firebase.sign_in_provider === 'anonymous' };
    } catch (err) {
      // The caller gets unauthenticated, whatever the reason; the reason's code goes to the log.
      log.tokenRejected(route, err);
      throw new NotSignedInError();
    }
  };

  const route =
    (name: string, handler: (uid: string, req: Request, caller: Caller) => Promise<unknown>) =>
    async (req: Request, res: Response) => {
      try {
        const caller = await callerOf(req, name);
        res.json(await handler(caller.uid, req, caller));
      } catch (err) {
        const out = toHttpError(err, name);
        res.status(out.status).set(out.headers).json(out.body);
      }
    };

  // Input is validated before any client is built (deps()), so bad input is always invalid-argument.
  const send = (caller: Caller, req: Request, onText?: (delta: string) => void) => {
    const input = parseInput(sendMessageInputSchema(cfg().maxMessageChars), req.body);
    return deps().send.sendMessage(caller.uid, input, onText, {
      ip: clientIp(req),
      anonymous: caller.anonymous,
    });
  };
  const sendRoute = route('POST /api/conversation', (_uid, req, caller) => send(caller, req));
  app.post('/api/conversation', async (req, res) => {
    if (!wantsSse(req.headers.accept)) return sendRoute(req, res);
    // Server-Sent Events: `delta` events as the agent writes, then one `result` (or `error`).
    // Errors before the first event are ordinary JSON answers with their status.
    const start = () => {
      if (res.headersSent) return;
      res
        .status(200)
        .set({ 'content-type': SSE_MEDIA_TYPE, 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      res.flushHeaders();
    };
    const event = (name: string, data: unknown) => {
      start();
      res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    try {
      const caller = await callerOf(req, 'POST /api/conversation (stream)');
      const result = await send(caller, req, (delta) => event(SSE_EVENTS.delta, { delta }));
      event(SSE_EVENTS.result, result);
      res.end();
    } catch (err) {
      const out = toHttpError(err, 'POST /api/conversation (stream)');
      if (res.headersSent) {
        event(SSE_EVENTS.error, out.body.error);
        res.end();
      } else {
        res.status(out.status).set(out.headers).json(out.body);
      }
    }
  });
  app.get(
    '/api/conversations',
    route('GET /api/conversations', (uid, req) => {
      const input = parseInput(listConversationsInputSchema, {
        ...(req.query.limit !== undefined ? { limit: Number(req.query.limit) } : {}),
        ...(typeof req.query.cursor === 'string' ? { cursor: req.query.cursor } : {}),
      });
      return deps().conversations.listConversations(uid, input.limit, input.cursor);
    }),
  );
  app.get(
    '/api/conversations/:id',
    route('GET /api/conversations/:id', (uid, req) => {
      const input = parseInput(getConversationInputSchema, {
        conversationId: req.params.id,
        ...(req.query.limit !== undefined ? { limit: Number(req.query.limit) } : {}),
        ...(typeof req.query.cursor === 'string' ? { cursor: req.query.cursor } : {}),
      });
      return deps().conversations.getConversation(uid, input.conversationId, input.limit, input.cursor);
    }),
  );
  app.delete(
    '/api/conversations/:id',
    route('DELETE /api/conversations/:id', async (uid, req) => {
      const input = parseInput(conversationIdInputSchema, {
        conversationId: req.params.id,
      });
      await deps().conversations.deleteConversation(uid, input.conversationId);
      return { deleted: true };
    }),
  );

  // Agents: the same bodies as the createAgent, updateAgent, deleteAgent and listAgents callables.
  app.get(
    '/api/agents',
    route('GET /api/agents', (uid) => deps().agents.listAgents(uid)),
  );
  app.post(
    '/api/agents',
    route('POST /api/agents', (uid, req) =>
      deps().agents.createAgent(uid, parseInput(createAgentInputSchema, req.body)),
    ),
  );
  app.patch(
    '/api/agents/:id',
    route('PATCH /api/agents/:id', (uid, req) => {
      const body: unknown = req.body;
      const fields = typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {};
      return deps().agents.updateAgent(
        uid,
        parseInput(updateAgentInputSchema, { ...fields, agentId: req.params.id }),
      );
    }),
  );
  app.delete(
    '/api/agents/:id',
    route('DELETE /api/agents/:id', (uid, req) =>
      deps().agents.deleteAgent(uid, parseInput(agentIdInputSchema, { agentId: req.params.id }).agentId),
    ),
  );
  app.get(
    '/api/models',
    route('GET /api/models', () => deps().agents.listModels()),
  );
  // Workspace files: the listing as JSON, a file's content as raw bytes both ways.
  const pathOf = (req: Request): string => parseInput(filePathInputSchema, { path: req.query.path }).path;
  app.get(
    '/api/files',
    route('GET /api/files', (uid) => deps().files.list(uid)),
  );
  app.get('/api/files/content', async (req, res) => {
    try {
      const path = pathOf(req);
      const { uid } = await callerOf(req, 'GET /api/files/content');
      const data = await deps().files.read(uid, path);
      res.set({ 'content-type': 'application/octet-stream', 'cache-control': 'no-store' }).send(data);
    } catch (err) {
      const out = toHttpError(err, 'GET /api/files/content');
      res.status(out.status).set(out.headers).json(out.body);
    }
  });
  app.put(
    '/api/files/content',
    route('PUT /api/files/content', (uid, req) => {
      const path = pathOf(req);
      // The functions framework has read the body already: a Buffer for non-JSON types.
      const raw: unknown = Buffer.isBuffer(req.body) ? req.body : (req as { rawBody?: unknown }).rawBody;
      const data = Buffer.isBuffer(raw) ? raw : Buffer.alloc(0);
      return deps().files.write(uid, path, data);
    }),
  );
  app.delete(
    '/api/files/content',
    route('DELETE /api/files/content', (uid, req) => deps().files.remove(uid, pathOf(req))),
  );
  app.get(
    '/api/usage',
    route('GET /api/usage', (uid) => deps().agents.getUsage(uid)),
  );

  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: { code: 'not-found', message: 'no such route' } });
  });
  // Body parser errors (invalid JSON, too large) arrive here.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const type =
      typeof err === 'object' && err !== null && 'type' in err ? (err as { type: unknown }).type : null;
    const domain =
      type === 'entity.too.large'
        ? new InvalidInputError('the request body is too large')
        : type === 'entity.parse.failed'
          ? new InvalidInputError('the request body is not valid JSON')
          : err;
    const out = toHttpError(domain, 'api');
    res
      .status(type === 'entity.too.large' ? 413 : out.status)
      .set(out.headers)
      .json(out.body);
  });
  return app;
}

/** True when the client asked for Server-Sent Events (Accept: text/event-stream). */
/** A REST caller, as its ID token says. */
interface Caller {
  uid: string;
  anonymous: boolean;
}

function wantsSse(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((t) => t.trim().toLowerCase().startsWith(SSE_MEDIA_TYPE));
}

// The timeout is the budget's outermost function layer (contract/src/timeouts.ts).
export const api = onRequest({ memory: '256MiB', timeoutSeconds: FUNCTION_TIMEOUT_S }, createApi());
