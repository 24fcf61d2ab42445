import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { CRC32C } from '@google-cloud/storage';

/**
 * A stand-in for Cloud Storage (no Cloud Storage emulator can start offline here: the Firebase
 * Storage emulator downloads a rules jar at start). A real HTTP server on loopback speaking the
 * JSON API calls the runner's store makes through @google-cloud/storage, unchanged but for its
 * endpoint: object metadata (GET .../o/NAME), media download (?alt=media, with `x-goog-hash`
 * crc32c and md5 so the client validates what it read), simple and multipart upload
 * (/upload/storage/v1/b/B/o, with `md5Hash` and `crc32c` in the answer so the client validates
 * what it wrote), delete, list by prefix, and generation preconditions (`ifGenerationMatch`, 0:
 * the object must not exist) with 412 as Cloud Storage answers. Objects live in memory.
 */
export interface FakeObject {
  data: Buffer;
  generation: number;
  /** Computed once at upload, as Cloud Storage stores them. */
  md5: string;
  crc32c: string;
}

export interface FakeGcs {
  endpoint: string;
  objects: Map<string, FakeObject>;
  /** Requests seen, "METHOD path" with the query. */
  requests: string[];
  /** Answers the next N uploads with 503 (a flaky store). */
  failUploads: number;
  /** Flips a byte of the next N downloads, keeping the stored hashes (corruption in transit). */
  corruptDownloads: number;
  close(): Promise<void>;
}

let generationClock = Date.now() * 1000;
const nextGeneration = () => ++generationClock;

function hashes(data: Buffer): { md5: string; crc32c: string } {
  const crc = new CRC32C();
  crc.update(data);
  return { md5: createHash('md5').update(data).digest('base64'), crc32c: crc.toString() };
}

function resource(bucket: string, name: string, o: FakeObject): Record<string, unknown> {
  const h = o;
  return {
    kind: 'storage#object',
    id: `${bucket}/${name}/${o.generation}`,
    name,
    bucket,
    generation: String(o.generation),
    metageneration: '1',
    contentType: 'application/x-tar',
    size: String(o.data.length),
    md5Hash: h.md5,
    crc32c: h.crc32c,
    storageClass: 'STANDARD',
  };
}

function error(res: ServerResponse, code: number, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { code, message, errors: [{ message, reason: message }] } }));
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** The media part of a multipart/related upload (metadata JSON first, then the media). */
function mediaOf(raw: Buffer, contentType: string): Buffer | null {
  const m = /boundary="?([^";]+)"?/.exec(contentType);
  if (!m) return null;
  const delimiter = Buffer.from(`--${m[1]}`);
  const parts: Buffer[] = [];
  let at = raw.indexOf(delimiter);
  while (at !== -1) {
    const next = raw.indexOf(delimiter, at + delimiter.length);
    if (next === -1) break;
    parts.push(raw.subarray(at + delimiter.length, next));
    at = next;
  }
  const media = parts[1];
  if (!media) return null;
  const headersEnd = media.indexOf('\r\n\r\n');
  if (headersEnd === -1) return null;
  // The part ends with the CRLF before the next delimiter.
  return media.subarray(headersEnd + 4, media.length - 2);
}

export async function startFakeGcs(): Promise<FakeGcs> {
  const fake: FakeGcs = {
    endpoint: '',
    objects: new Map(),
    requests: [],
    failUploads: 0,
    corruptDownloads: 0,
    close: async () => undefined,
  };
  const precondition = (key: string, q: URLSearchParams): boolean => {
    const want = q.get('ifGenerationMatch');
    if (want === null) return true;
    const have = fake.objects.get(key)?.generation ?? 0;
    return Number(want) === have;
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const q = url.searchParams;
      fake.requests.push(`${req.method} ${url.pathname}${url.search}`);
      const raw = await body(req);
      const upload = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname);
      const object = /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(url.pathname);
      const list = /^\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname);
      if (upload && req.method === 'POST') {
        const bucket = decodeURIComponent(upload[1]!);
        const name = q.get('name');
        if (!name) return error(res, 400, 'Required parameter: name');
        if (fake.failUploads > 0) {
          fake.failUploads--;
          return error(res, 503, 'backendError');
        }
        const key = `${bucket}/${name}`;
        if (!precondition(key, q)) return error(res, 412, 'conditionNotMet');
        const type = q.get('uploadType');
        const data =
          type === 'multipart'
            ? mediaOf(raw, req.headers['content-type'] ?? '')
            : type === 'media'
              ? raw
              : null;
        if (!data) return error(res, 400, 'unsupported upload');
        const stored = Buffer.from(data);
        const o = { data: stored, generation: nextGeneration(), ...hashes(stored) };
        fake.objects.set(key, o);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(resource(bucket, name, o)));
        return;
      }
      if (object) {
        const bucket = decodeURIComponent(object[1]!);
        const name = decodeURIComponent(object[2]!);
        const key = `${bucket}/${name}`;
        const o = fake.objects.get(key);
        const wanted = q.get('generation');
        if (!o || (wanted !== null && Number(wanted) !== o.generation)) {
          return error(res, 404, `No such object: ${key}`);
        }
        if (req.method === 'DELETE') {
          if (!precondition(key, q)) return error(res, 412, 'conditionNotMet');
          fake.objects.delete(key);
          res.writeHead(204);
          res.end();
          return;
        }
        if (req.method === 'GET' && q.get('alt') === 'media') {
          const h = o;
          res.writeHead(200, {
            'content-type': 'application/x-tar',
            'content-length': String(o.data.length),
            'x-goog-hash': `crc32c=${h.crc32c},md5=${h.md5}`,
            'x-goog-generation': String(o.generation),
            'x-goog-stored-content-encoding': 'identity',
          });
          let data = o.data;
          if (fake.corruptDownloads > 0 && data.length > 0) {
            fake.corruptDownloads--;
            data = Buffer.from(data);
            data[data.length >> 1]! ^= 0xff;
          }
          res.end(data);
          return;
        }
        if (req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(resource(bucket, name, o)));
          return;
        }
      }
      if (list && req.method === 'GET') {
        const bucket = decodeURIComponent(list[1]!);
        const prefix = `${bucket}/${q.get('prefix') ?? ''}`;
        const items = [...fake.objects.entries()]
          .filter(([k]) => k.startsWith(prefix))
          .map(([k, o]) => resource(bucket, k.slice(bucket.length + 1), o));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'storage#objects', items }));
        return;
      }
      error(res, 404, `not served by the stand-in: ${req.method} ${url.pathname}`);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  fake.endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}
