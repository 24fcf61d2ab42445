/**
 * The files API over a user's workspace (issue 11, part 3): list, download, upload and delete,
 * run inside the user's own sandbox as the sandbox user; paths relative to the workspace only,
 * and no escape through a link the user made. Real runner, Docker and sandboxes, runc and runsc.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { FILE_MAX_BYTES, type FilesList } from '@agent-platform/contract';
import { fence, outputBlocks, postRun, uniqueId } from './helpers/runner-process.ts';
import { suiteRunner } from './helpers/with-runner.ts';

const runner = suiteRunner();

const files = (userId: string, path = '', init: RequestInit = {}) =>
  fetch(
    `${runner.url}/v1/users/${userId}/files${path === '' ? '' : `/content?path=${encodeURIComponent(path)}`}`,
    { ...init, headers: { authorization: `Bearer ${runner.token}`, ...(init.headers ?? {}) } },
  );

describe('the files API', () => {
  test('upload, list, download (binary safe) and delete; a run sees the file; it persists', async () => {
    const userId = uniqueId('u');
    const data = randomBytes(200_000);
    const up = await files(userId, 'data/blob.bin', { method: 'PUT', body: data });
    assert.equal(up.status, 200, await up.clone().text());
    assert.deepEqual(await up.json(), { path: 'data/blob.bin', size: data.length });
    const list = (await (await files(userId)).json()) as FilesList;
    assert.deepEqual(
      list.files.map((f) => [f.path, f.type, f.size]),
      [
        ['data', 'dir', list.files[0]!.size],
        ['data/blob.bin', 'file', data.length],
      ],
    );
    assert.equal(list.truncated, false);
    const down = await files(userId, 'data/blob.bin');
    assert.equal(down.headers.get('content-type'), 'application/octet-stream');
    assert.ok(Buffer.from(await down.arrayBuffer()).equals(data), 'the same bytes back');
    const run = await postRun(runner, { userId, message: fence('sh', 'wc -c < data/blob.bin') });
    assert.equal(outputBlocks(run.body.text)[0]?.output, String(data.length));
    // Saved into the workspace: after a restart of the runner (its warm sandbox is gone), a new
    // sandbox restores it.
    await runner.restart();
    const again = await files(userId, 'data/blob.bin');
    assert.equal(again.status, 200);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(data), 'restored from the workspace');
    const del = await files(userId, 'data', { method: 'DELETE' });
    assert.deepEqual(await del.json(), { deleted: true });
    const empty = (await (await files(userId)).json()) as FilesList;
    assert.deepEqual(empty.files, []);
  });

  test('bad paths are refused with 400 naming the path; a missing file is 404', async () => {
    const userId = uniqueId('u');
    for (const bad of ['../etc/passwd', '/etc/passwd', 'a/../../b', './x', 'dir/', 'a\nb']) {
      const res = await files(userId, bad);
      assert.equal(res.status, 400, bad);
      assert.equal(((await res.json()) as { error: { field: string } }).error.field, 'path');
    }
    assert.equal((await files(userId, 'nope.txt')).status, 404);
  });

  test('a link the user made cannot lead a read or a write outside the workspace', async () => {
    const userId = uniqueId('u');
    await postRun(runner, {
      userId,
      message: fence(
        'sh',
        'ln -s /etc etc-link; ln -s /etc/hostname host-link; ln -s /tmp tmp-link; echo ok',
      ),
    });
    for (const path of ['etc-link/passwd', 'host-link']) {
      const res = await files(userId, path);
      assert.equal(res.status, 400, path);
      assert.match(await res.text(), /leads outside the workspace/);
    }
    const up = await files(userId, 'etc-link/planted', { method: 'PUT', body: 'x' });
    assert.equal(up.status, 400);
    // Not even a directory appears outside on the way: the sandbox's own /tmp stays without it.
    assert.equal((await files(userId, 'tmp-link/made/x', { method: 'PUT', body: 'x' })).status, 400);
    const tmp = await postRun(runner, {
      userId,
      message: fence('sh', 'find /tmp -maxdepth 1 -name made | wc -l'),
    });
    assert.equal(outputBlocks(tmp.body.text)[0]?.output, '0');
  });

  test('size bounds: a file over FILE_MAX_BYTES is refused both ways', async () => {
    const userId = uniqueId('u');
    const big = Buffer.alloc(FILE_MAX_BYTES + 1, 1);
    assert.equal((await files(userId, 'big.bin', { method: 'PUT', body: big })).status, 413);
    await postRun(runner, {
      userId,
      message: fence('sh', `head -c ${FILE_MAX_BYTES + 10} /dev/zero > big.bin; echo ok`),
    });
    assert.equal((await files(userId, 'big.bin')).status, 413);
  });

  test("another user's header is refused", async () => {
    const userId = uniqueId('u');
    const res = await files(userId, '', { headers: { 'x-agent-user': 'someone-else' } });
    assert.equal(res.status, 400);
  });
});
