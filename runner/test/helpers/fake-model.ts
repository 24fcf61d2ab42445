import { createServer, type IncomingMessage, type Server } from 'node:http';

/**
 * A stand-in model provider: the only one (no model can be fetched on this machine). A real HTTP
 * server on loopback speaking the OpenAI chat-completions wire format our gateway forwards to:
 * non-streaming JSON, and with `stream: true` server-sent events (`data: {chunk}` ... `data:
 * [DONE]`), with `usage` (in the JSON, and as the last chunk when `stream_options.include_usage`
 * is asked, as OpenAI does). Each answer is scripted by the test (text, tool calls, a failure, a
 * delay); every request is recorded, headers included, so a test can see what reached the
 * provider (and that the key did).
 */
export type Scripted =
  /** An answer: text and/or tool calls (arguments as JSON text), with this usage. */
  | {
      text?: string;
      toolCalls?: Array<{ name: string; arguments: string }>;
      /** This usage, reported as it is (even past the request's max_tokens: a provider over budget). */
      usage?: { input: number; output: number };
      /** Wait this long before answering (a slow provider). */
      delayMs?: number;
      /** With `stream: true`, wait this long between the pieces of the stream. */
      pieceDelayMs?: number;
    }
  /** A failure: this status and body. */
  | { status: number; body: string; contentType?: string };

export interface FakeModel {
  baseUrl: string;
  /** Requests received: method, path, authorization header, parsed body. */
  requests: Array<{ method: string; path: string; authorization: string | undefined; body: unknown }>;
  /** The content of answers when the script is empty (default: "scripted answer"). */
  answer: string;
  /**
   * Answers to give, in order: `agentScript` to the reference agent's tool-loop calls (they carry
   * `tools`), `script` to the other calls (code in the sandbox); then `answer`.
   */
  agentScript: Scripted[];
  script: Scripted[];
  /**
   * The usage reported when a scripted answer names none; its output at most the request's
   * max_tokens (or max_completion_tokens), as a real provider counts it.
   */
  usage: { input: number; output: number };
  /** Requests whose connection closed before their answer was sent whole (the caller aborted). */
  closedEarly: number;
  /** Answers only requests with this authorization (default: any). */
  requireAuthorization: string | null;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startFakeModel(): Promise<FakeModel> {
  const fake: FakeModel = {
    baseUrl: '',
    requests: [],
    answer: 'scripted answer',
    agentScript: [],
    script: [],
    usage: { input: 7, output: 3 },
    closedEarly: 0,
    requireAuthorization: null,
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
    res.on('close', () => {
      if (!res.writableFinished) fake.closedEarly++;
    });
    void (async () => {
      const text = await readBody(req);
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      fake.requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        authorization: req.headers.authorization,
        body,
      });
      if (!req.url?.endsWith('/chat/completions') || req.method !== 'POST') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'not found' } }));
        return;
      }
      if (fake.requireAuthorization !== null && req.headers.authorization !== fake.requireAuthorization) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'bad credentials', type: 'invalid_request_error' } }));
        return;
      }
      const fromAgent = typeof body === 'object' && body !== null && 'tools' in body;
      const next = (fromAgent ? fake.agentScript : fake.script).shift() ?? { text: fake.answer };
      if ('status' in next) {
        res.writeHead(next.status, { 'content-type': next.contentType ?? 'application/json' });
        res.end(next.body);
        return;
      }
      // Waits end early when the caller hangs up, as a provider stops generating then.
      const pause = (ms: number) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          res.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      if (next.delayMs) await pause(next.delayMs);
      if (res.destroyed) return;
      const b = (body ?? {}) as {
        model?: string;
        stream?: boolean;
        stream_options?: { include_usage?: boolean };
        max_tokens?: number;
        max_completion_tokens?: number;
      };
      const cap = b.max_completion_tokens ?? b.max_tokens ?? Infinity;
      const usage = next.usage ?? { ...fake.usage, output: Math.min(fake.usage.output, cap) };
      const providerUsage = {
        prompt_tokens: usage.input,
        completion_tokens: usage.output,
        total_tokens: usage.input + usage.output,
      };
      const toolCalls = (next.toolCalls ?? []).map((c, i) => ({
        index: i,
        id: `call_${i}`,
        type: 'function',
        function: { name: c.name, arguments: c.arguments },
      }));
      const base = { id: 'chatcmpl-fake', created: 1_800_000_000, model: b.model ?? 'unknown' };
      if (b.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = (delta: object, finish: string | null) =>
          `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
        for (const piece of (next.text ?? '').split(/(?<= )/)) {
          if (!piece) continue;
          res.write(chunk({ content: piece }, null));
          if (next.pieceDelayMs) await pause(next.pieceDelayMs);
          if (res.destroyed) return;
        }
        // Tool calls arrive as OpenAI streams them: name first, then the arguments in pieces.
        for (const c of toolCalls) {
          res.write(
            chunk({ tool_calls: [{ ...c, function: { name: c.function.name, arguments: '' } }] }, null),
          );
          const args = c.function.arguments;
          const half = Math.ceil(args.length / 2);
          for (const part of [args.slice(0, half), args.slice(half)]) {
            if (part)
              res.write(chunk({ tool_calls: [{ index: c.index, function: { arguments: part } }] }, null));
          }
        }
        res.write(chunk({}, toolCalls.length > 0 ? 'tool_calls' : 'stop'));
        if (b.stream_options?.include_usage) {
          res.write(
            `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage: providerUsage })}\n\n`,
          );
        }
        res.end('data: [DONE]\n\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          ...base,
          object: 'chat.completion',
          choices: [
            {
              index: 0,
              message: {
                role: 'assistant',
                content: next.text ?? null,
                ...(toolCalls.length > 0
                  ? { tool_calls: toolCalls.map(({ index: _index, ...c }) => c) }
                  : {}),
              },
              finish_reason: toolCalls.length > 0 ? 'tool_calls' : 'stop',
            },
          ],
          usage: providerUsage,
        }),
      );
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  fake.baseUrl = `http://127.0.0.1:${port}/v1`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}
