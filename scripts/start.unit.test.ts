import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

/**
 * scripts/start.sh on a machine without an engine, up to its first failing step. The engine it
 * starts, apt-get, node and npm are shims that record their calls (a second system engine or a
 * package install cannot happen inside a test); every other command is the machine's own, from a
 * PATH that lacks these names.
 */
const dir = mkdtempSync(join(tmpdir(), 'start-sh-'));
let dockerdPid: number | undefined;
after(() => {
  if (dockerdPid !== undefined && alive(dockerdPid)) process.kill(dockerdPid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
const calls = join(dir, 'calls.log');
const shims = join(dir, 'shims');
const system = join(dir, 'system');
mkdirSync(shims);
mkdirSync(system);
const shimmed = new Set(['apt-get', 'docker', 'dockerd', 'node', 'npm', 'npx', 'runsc']);
for (const from of ['/usr/bin', '/bin']) {
  for (const name of readdirSync(from)) {
    if (!shimmed.has(name) && !existsSync(join(system, name)))
      symlinkSync(join(from, name), join(system, name));
  }
}

function shim(name: string, body: string): void {
  const file = join(shims, name);
  writeFileSync(file, `#!/bin/bash\necho "${name} $*" >> ${calls}\n${body}\n`);
  chmodSync(file, 0o755);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a step that fails after start.sh started the engine stops that engine', () => {
  const started = join(dir, 'started');
  const pidFile = join(dir, 'dockerd.pid');
  shim('node', 'case "$1" in -p) echo 24;; esac; exit 0'); // Node 24 already (ensure-node.sh)
  shim('npm', 'exit 1'); // the build fails
  shim('apt-get', 'exit 0');
  shim('docker', `[ -f ${started} ] && exit 0; exit 1`);
  shim('dockerd', `touch ${started}; echo $$ > ${pidFile}; exec sleep 60`);
  const r = spawnSync('bash', ['scripts/start.sh'], {
    env: { PATH: `${shims}:${system}`, HOME: dir },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const log = readFileSync(calls, 'utf8').split('\n').filter(Boolean);
  assert.notEqual(r.status, 0, r.stdout + r.stderr);
  assert.ok(log.includes('dockerd '), `an engine was started: ${log.join(', ')}`);
  assert.ok(log.includes('npm run build --silent'), `the build ran and failed: ${r.stdout + r.stderr}`);
  dockerdPid = Number(readFileSync(pidFile, 'utf8'));
  assert.ok(!alive(dockerdPid), 'the engine start.sh started is stopped when it exits');
});
