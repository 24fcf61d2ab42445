import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

/**
 * scripts/lib/engine.sh, which lets `npm start` and .ci/run set up a bare machine. Installing
 * Debian packages or a second system engine cannot happen inside a test, so apt-get, docker and
 * dockerd are shims on PATH that record their calls; what is tested is our script's decisions.
 */
const dir = mkdtempSync(join(tmpdir(), 'engine-sh-'));
after(() => rmSync(dir, { recursive: true, force: true }));
chmodSync(dir, 0o755); // the shims also run as a user without root
const calls = join(dir, 'calls.log');

function shim(name: string, body: string): void {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/bash\necho "${name} $*" >> ${calls}\n${body}\n`);
  chmodSync(file, 0o755);
}

function run(
  script: string,
  opts: { user?: number } = {},
): { status: number | null; out: string; calls: string[] } {
  writeFileSync(calls, '');
  chmodSync(calls, 0o666);
  const cmd = `source scripts/lib/engine.sh\n${script}`;
  const argv =
    opts.user !== undefined
      ? ['setpriv', `--reuid=${opts.user}`, `--regid=${opts.user}`, '--clear-groups', 'bash', '-c', cmd]
      : ['bash', '-c', cmd];
  const r = spawnSync(argv[0]!, argv.slice(1), {
    env: { PATH: `${dir}:/usr/bin:/bin`, HOME: dir },
    encoding: 'utf8',
  });
  return {
    status: r.status,
    out: r.stdout + r.stderr,
    calls: readFileSync(calls, 'utf8').split('\n').filter(Boolean),
  };
}

shim('apt-get', 'exit 0');
shim('node', 'exit 0');

test('ensure_packages installs exactly the packages whose command is missing', () => {
  const r = run('ensure_packages bash=bash no-such-command-1=pkg-one /no/such/file=pkg-two');
  assert.equal(r.status, 0, r.out);
  assert.deepEqual(r.calls, [
    'apt-get update -qq',
    'apt-get install -y -qq --no-install-recommends pkg-one pkg-two',
  ]);
  const none = run('ensure_packages bash=bash');
  assert.deepEqual(none.calls, [], 'nothing missing: apt-get is not called');
});

test('without root, a missing package is named and nothing is installed', () => {
  const r = run('ensure_packages no-such-command-1=pkg-one', { user: 65534 });
  assert.notEqual(r.status, 0);
  assert.match(r.out, /missing: pkg-one/);
  assert.deepEqual(r.calls, []);
});

test('a command in /usr/sbin counts as installed though PATH lacks it, as for a user without root', () => {
  // dockerd and debootstrap live in /usr/sbin (ldconfig too, on every Debian); PATH has no sbin here.
  const r = run('ensure_packages ldconfig=libc-bin && command -v ldconfig', { user: 65534 });
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /sbin\/ldconfig/);
  assert.deepEqual(r.calls, []);
});

test('--or-engine: without root, an engine that answers is enough; what is missing is named', () => {
  shim('docker', 'exit 0');
  const r = run('ensure_packages --or-engine no-such-command-1=pkg-one', { user: 65534 });
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /not installed: pkg-one/);
  assert.deepEqual(r.calls, ['docker info'], 'nothing is installed');
  // No engine: the same refusal as without --or-engine.
  shim('docker', 'exit 1');
  const none = run('ensure_packages --or-engine no-such-command-1=pkg-one', { user: 65534 });
  assert.notEqual(none.status, 0);
  assert.match(none.out, /missing: pkg-one/);
  // As root (a bare machine) the packages are installed whether or not an engine answers.
  shim('docker', 'exit 0');
  const root = run('ensure_packages --or-engine no-such-command-1=pkg-one');
  assert.equal(root.status, 0, root.out);
  assert.deepEqual(root.calls, [
    'apt-get update -qq',
    'apt-get install -y -qq --no-install-recommends pkg-one',
  ]);
});

test('ensure_engine starts dockerd when no engine answers, and waits until one does', () => {
  const state = join(dir, 'started');
  shim('docker', `[ -f ${state} ] && exit 0; exit 1`);
  shim('dockerd', `touch ${state}; exec sleep 30`);
  shim('runsc', 'exit 0');
  const r = run('ensure_engine && echo "pid=$DOCKERD_PID" && stop_engine');
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /pid=\d+/);
  assert.ok(r.calls.includes('dockerd '), `dockerd started: ${r.calls.join(', ')}`);
  assert.ok(
    r.calls.some((c) => c.startsWith('node scripts/docker-runtimes.mjs')),
    'runsc registered first',
  );
  const already = run('ensure_engine'); // the engine answers now
  assert.equal(already.status, 0);
  assert.ok(!already.calls.some((c) => c.startsWith('dockerd')), 'an engine that answers is left alone');
  rmSync(state);
});
