import { createServer, type Server } from 'node:http';

/**
 * A stand-in for Google's metadata server (it exists only on Google Cloud VMs): real HTTP on
 * loopback, answering the two requests google-auth-library makes on a VM, the availability
 * probe (GET /computeMetadata/v1/instance) and the default service account's access token, with
 * the `Metadata-Flavor: Google` header both ways, as the real one does. Point the runner at it
 * with GCE_METADATA_HOST (which google-auth-library's gcp-metadata reads).
 */
export interface FakeMetadata {
  host: string;
  token: string;
  /** Paths requested, and whether each carried `Metadata-Flavor: Google`. */
  requests: Array<{ path: string; flavored: boolean }>;
  close(): Promise<void>;
}

export async function startFakeMetadata(token: string): Promise<FakeMetadata> {
  const fake: FakeMetadata = { host: '', token, requests: [], close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const flavored = req.headers['metadata-flavor'] === 'Google';
    fake.requests.push({ path, flavored });
    if (!flavored) {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('Missing Metadata-Flavor:Google header.');
      return;
    }
    const headers = { 'metadata-flavor': 'Google' };
    if (path === '/computeMetadata/v1/instance' || path === '/computeMetadata/v1/instance/') {
      res.writeHead(200, { ...headers, 'content-type': 'application/text' });
      res.end('attributes/\nhostname\nid\nservice-accounts/\nzone\n');
    } else if (path === '/computeMetadata/v1/instance/service-accounts/default/token') {
      res.writeHead(200, { ...headers, 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: fake.token, expires_in: 3599, token_type: 'Bearer' }));
    } else {
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  fake.host = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}
