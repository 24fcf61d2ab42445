import { createServer, type IncomingMessage, type Server } from 'node:http';

/**
 * A stand-in model provider: the only one (no model can be fetched on this machine). A real HTTP
 * server on loopback speaking the OpenAI chat-completions wire format our gateway forwards to:
 * non-streaming JSON, and with `stream: true` server-sent events (`data: {chunk}` ... `data:
 * [DONE]`). Each answer is scripted by the test; every request is recorded, headers included, so
 * a test can see what reached the provider (and that the key did).
 */
export interface FakeModel {
  baseUrl: string;
  /** Requests received: method, path, authorization header, parsed body. */
  requests: Array<{ method: string; path: string; authorization: string | undefined; body: unknown }>;
  /** The content of the next answers (default: "scripted answer"). */
  answer: string;
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
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
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
      if (req.url !== '/v1/chat/completions' || req.method !== 'POST') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'not found' } }));
        return;
      }
      const b = (body ?? {}) as { model?: string; stream?: boolean };
      const base = { id: 'chatcmpl-fake', created: 1_800_000_000, model: b.model ?? 'unknown' };
      if (b.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const piece of fake.answer.split(/(?<= )/)) {
          const chunk = {
            ...base,
            object: 'chat.completion.chunk',
            choices: [{ index: 0, delta: { content: piece }, finish_reason: null }],
          };
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        }
        res.write(
          `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
        );
        res.end('data: [DONE]\n\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          ...base,
          object: 'chat.completion',
          choices: [
            { index: 0, message: { role: 'assistant', content: fake.answer }, finish_reason: 'stop' },
          ],
          usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
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
