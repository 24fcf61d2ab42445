import { execFileSync } from 'node:child_process';
import { createSign, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A faithful stand-in for Google's token signer: a real RSA key and X.509 certificate (made by
 * openssl), served over real HTTP in the format of https://www.googleapis.com/oauth2/v1/certs,
 * and RS256-signed ID tokens shaped like those of GoogleAuth().getIdTokenClient(audience).
 */
export interface FakeGoogle {
  certsUrl: string;
  kid: string;
  sign(claims: Record<string, unknown>, opts?: { kid?: string; key?: string }): string;
  /** A token as Google would issue it for a service account, with overrides. */
  idToken(overrides?: Record<string, unknown>): string;
  otherKey: string;
  close(): Promise<void>;
}

function makeKeyAndCert(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fake-google-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=fake-google-signer',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export async function startFakeGoogle(defaults: { audience: string; email: string }): Promise<FakeGoogle> {
  const signer = makeKeyAndCert();
  const other = makeKeyAndCert();
  const kid = randomBytes(8).toString('hex');
  const server: Server = createServer((req, res) => {
    if (req.url === '/oauth2/v1/certs') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' });
      res.end(JSON.stringify({ [kid]: signer.cert }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  const sign: FakeGoogle['sign'] = (claims, opts = {}) => {
    const header = { alg: 'RS256', kid: opts.kid ?? kid, typ: 'JWT' };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256')
      .update(input)
      .sign(opts.key ?? signer.key);
    return `${input}.${b64url(signature)}`;
  };
  return {
    certsUrl: `http://127.0.0.1:${port}/oauth2/v1/certs`,
    kid,
    sign,
    otherKey: other.key,
    idToken(overrides = {}) {
      const now = Math.floor(Date.now() / 1000);
      return sign({
        iss: 'https://accounts.google.com',
        aud: defaults.audience,
        azp: '1234567890',
        sub: '1234567890',
        email: defaults.email,
        email_verified: true,
        iat: now,
        exp: now + 3600,
        ...overrides,
      });
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
