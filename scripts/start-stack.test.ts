import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import Docker from 'dockerode';

/**
 * `npm start` for real (scripts/start.sh: the build, the images, the runner, the emulators), then
 * Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group. Everything it
 * started must be gone afterwards, the warm (paused) sandboxes included. Runs before
 * scripts/test.sh starts its own emulators (same ports).
 */
const MARK = `start-stack-${randomBytes(6).toString('hex')}`;
const RUNNER_PORT = 18_181;
const docker = new Docker();
const SANDBOX_FILTER = {
  label: ['dev.agent-platform.runner-id=local', 'dev.agent-platform.kind=sandbox'],
};

/** PIDs of processes that inherited this test's mark: everything start.sh started. */
function marked(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').includes(`START_STACK_MARK=${MARK}\0`))
        pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

let output = '';
/** The users this test signs up: their workspace volumes (kept by npm start) are removed after. */
const users: string[] = [];
const child = spawn('bash', ['scripts/start.sh'], {
  // A process group of its own, as a terminal's foreground job.
  detached: true,
  env: { ...process.env, START_STACK_MARK: MARK, RUNNER_PORT: String(RUNNER_PORT) },
  stdio: ['ignore', 'pipe', 'pipe'],
});
child.stdout.on('data', (c: Buffer) => (output += c.toString()));
child.stderr.on('data', (c: Buffer) => (output += c.toString()));
const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

after(async () => {
  // Whatever happened above, nothing stays: the group, stragglers, and the runner's sandboxes.
  for (const pid of [...marked(), -child.pid!]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  // A paused sandbox is unpaused first (gVisor removes none paused); a container whose processes
  // are being killed can refuse removal for a moment ("is zombie"), so each gets a few tries.
  const left = await docker.listContainers({ all: true, filters: SANDBOX_FILTER });
  await Promise.all(
    left.map(async (c) => {
      const container = docker.getContainer(c.Id);
      if (c.State === 'paused') await container.unpause().catch(() => undefined);
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          await container.remove({ force: true, v: true });
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 1_000));
        }
      }
    }),
  );
  for (const uid of users) {
    const { Volumes } = await docker.listVolumes({
      filters: { label: [`dev.agent-platform.runner-id=local`, `dev.agent-platform.owner=${uid}`] },
    });
    await Promise.all(
      (Volumes ?? []).map((v) =>
        docker
          .getVolume(v.Name)
          .remove()
          .catch(() => undefined),
      ),
    );
  }
});

test('Ctrl-C on npm start stops the runner, the emulators and every sandbox', async () => {
  await until('the stack is up', 300_000, async () => {
    if (child.exitCode !== null) throw new Error(`start.sh exited early:\n${output}`);
    return output.includes('The agent platform is running') ? true : null;
  });
  // Three users, three warm sandboxes, paused once idle (WARM_FREEZE_AFTER_MS, 2 s by default).
  for (let i = 0; i < 3; i++) {
    const signUp = (await (
      await fetch('http://127.0.0.1:9099/identitytoolkit.googleapis.com/v1/accounts:signUp?key=any', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ returnSecureToken: true }),
      })
    ).json()) as { idToken: string; localId: string };
    users.push(signUp.localId);
    const res = await fetch('http://127.0.0.1:5000/api/conversation', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${signUp.idToken}` },
      body: JSON.stringify({ message: `Hello from user ${i}` }),
      signal: AbortSignal.timeout(60_000),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { status: string }).status, 'ok');
  }
  const paused = await until('three paused sandboxes', 30_000, async () => {
    const list = await docker.listContainers({ all: true, filters: SANDBOX_FILTER });
    return list.length === 3 && list.every((c) => c.State === 'paused') ? list : null;
  });
  assert.equal(paused.length, 3);

  process.kill(-child.pid!, 'SIGINT'); // the terminal's Ctrl-C: the whole group
  const code = await Promise.race([
    exited,
    new Promise<never>((_r, reject) =>
      setTimeout(() => reject(new Error(`start.sh did not exit within 90 s:\n${output}`)), 90_000),
    ),
  ]);
  assert.equal(code, 0, output);
  assert.match(output, /\[start\] stopping/);
  assert.deepEqual(
    await docker.listContainers({ all: true, filters: SANDBOX_FILTER }),
    [],
    'no sandbox of the runner is left',
  );
  await until('every process start.sh started has exited', 10_000, async () =>
    marked().length === 0 ? true : null,
  );
  for (const port of [RUNNER_PORT, 5000, 5001, 8080, 9099]) {
    await assert.rejects(
      fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2_000) }),
      `nothing listens on ${port} any more`,
    );
  }
});
