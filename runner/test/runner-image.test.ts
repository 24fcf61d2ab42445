import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import { AGENT_IMAGE, docker, leftovers, uniqueId } from './helpers/runner-process.ts';
import { assertLeftNothing, removeAllOf } from './helpers/with-runner.ts';

/**
 * The deployment shape: the runner's own image, started with the host's Docker socket mounted
 * and only the socket's group added, answering /healthz and a real run.
 */
const RUNNER_IMAGE = process.env.RUNNER_IMAGE ?? 'agent-platform/runner:latest';
const SOCKET = '/var/run/docker.sock';

let container: Docker.Container;
let url: string;
const token = randomBytes(24).toString('hex');
const runnerId = uniqueId('image');

before(async () => {
  container = await docker.createContainer({
    Image: RUNNER_IMAGE,
    // Cold sandboxes, so that the run's removal can be asserted right after it.
    Env: [
      `RUNNER_TOKEN=${token}`,
      `RUNNER_ID=${runnerId}`,
      `AGENT_IMAGE=${AGENT_IMAGE}`,
      'WARM_IDLE_TTL_MS=0',
    ],
    ExposedPorts: { '8081/tcp': {} },
    Labels: { 'dev.agent-platform.runner-id': runnerId },
    HostConfig: {
      Binds: [`${SOCKET}:${SOCKET}`],
      GroupAdd: [String(statSync(SOCKET).gid)],
      PortBindings: { '8081/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      ReadonlyRootfs: true,
    },
  });
  await container.start();
  const info = await container.inspect();
  const port = info.NetworkSettings.Ports['8081/tcp']?.[0]?.HostPort;
  assert.ok(port, 'port published');
  url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('runner container did not answer /healthz');
    await sleep(100);
  }
});

after(async () => {
  // Stopped as Docker stops it in production (SIGTERM: a drain), then checked as a TestRunner is.
  const failures: unknown[] = [];
  if (container) {
    await container.stop({ t: 30 }).catch((err: unknown) => failures.push(err));
    await container.remove({ force: true }).catch((err: unknown) => failures.push(err));
    await assertLeftNothing(runnerId).catch((err: unknown) => failures.push(err));
  }
  await removeAllOf(runnerId).catch((err: unknown) => failures.push(err));
  if (failures.length > 0) throw failures[0];
});

test('the runner image runs as a non-root user', async () => {
  const image = await docker.getImage(RUNNER_IMAGE).inspect();
  assert.ok(
    image.Config.User && image.Config.User !== 'root' && image.Config.User !== '0',
    image.Config.User,
  );
  const top = await container.top({ ps_args: '-o pid,user,args' });
  const users = top.Processes.map((p: string[]) => p[1]);
  assert.ok(users.length > 0);
  assert.ok(!users.includes('root'), `processes: ${JSON.stringify(top.Processes)}`);
});

test('answers /healthz and /readyz', async () => {
  const health = await fetch(`${url}/healthz`);
  assert.deepEqual(await health.json(), { status: 'ok', service: 'runner', runnerId });
  const ready = await fetch(`${url}/readyz`);
  assert.equal(ready.status, 200);
});

test('runs a real request in a sandbox on the host engine and cleans up', async () => {
  const res = await fetch(`${url}/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ userId: uniqueId('u'), conversationId: 'c1', message: 'from the image' }),
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { status: string; text: string };
  assert.equal(body.status, 'ok');
  assert.equal(body.text, 'Test response: from the image');
  const left = await leftovers(runnerId);
  // Only the runner container itself carries this label; no sandbox is left.
  assert.deepEqual(left.containers, [container.id]);
});

test('rejects a wrong token', async () => {
  const res = await fetch(`${url}/v1/runs`, {
    method: 'POST',
    headers: { authorization: 'Bearer wrong-token-wrong-token', 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(res.status, 401);
});
