/**
 * The files API end to end (issue 11, part 3): callables and REST through the real emulators and
 * the real runner, in the caller's own sandbox. This file owns the runner at RUNNER_TEST_PORT
 * while it runs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { FirebaseError } from 'firebase/app';
import type { DownloadFileOutput, FilesList, SendResult } from '@agent-platform/contract';
import { appCheckHeader, newUser, rest, type TestUser } from './helpers/stack.ts';
import { call, rejectsWith } from './helpers/callables.ts';
import {
  leftovers,
  removeLeftovers,
  startRunner,
  type RunnerProcess,
} from '../../runner/test/helpers/runner-process.ts';

const PORT = process.env.RUNNER_TEST_PORT;
const TOKEN = process.env.RUNNER_TEST_TOKEN;
const RUNNER_ID = `${process.env.RUNNER_TEST_ID ?? 'functions-test'}-files`;

let runner: RunnerProcess;
const users: TestUser[] = [];
async function user(): Promise<TestUser> {
  const u = await newUser();
  users.push(u);
  return u;
}

before(async () => {
  assert.ok(PORT && TOKEN, 'RUNNER_TEST_PORT and RUNNER_TEST_TOKEN must be set (scripts/test.sh does it)');
  runner = await startRunner({ PORT, RUNNER_TOKEN: TOKEN, RUNNER_ID });
});

after(async () => {
  await runner?.stop();
  await Promise.all(users.map((u) => u.close()));
  const left = await leftovers(RUNNER_ID);
  await removeLeftovers(RUNNER_ID);
  assert.deepEqual(left.containers, []);
});

describe('workspace files', () => {
  test('callables: upload, list, download, delete; the agent sees the file; bad paths and missing files are clear', async () => {
    const u = await user();
    const data = randomBytes(50_000);
    assert.deepEqual(
      await call(u, 'uploadFile', { path: 'in/data.bin', contentBase64: data.toString('base64') }),
      {
        path: 'in/data.bin',
        size: data.length,
      },
    );
    const list = await call<FilesList>(u, 'listFiles');
    assert.deepEqual(
      list.files.filter((f) => f.type === 'file').map((f) => [f.path, f.size]),
      [['in/data.bin', data.length]],
    );
    const down = await call<DownloadFileOutput>(u, 'downloadFile', { path: 'in/data.bin' });
    assert.ok(Buffer.from(down.contentBase64, 'base64').equals(data));
    const r = await call<SendResult>(u, 'sendMessage', { message: '```sh\nwc -c < in/data.bin\n```' });
    assert.match(r.text, new RegExp(`\\n${data.length}\\n`));
    const bad = await rejectsWith(call(u, 'downloadFile', { path: '../x' }), 'invalid-argument');
    assert.equal((bad as FirebaseError & { details?: { field?: string } }).details?.field, 'path');
    await rejectsWith(call(u, 'downloadFile', { path: 'missing.txt' }), 'not-found');
    assert.deepEqual(await call(u, 'deleteFile', { path: 'in' }), { deleted: true });
    assert.deepEqual((await call<FilesList>(u, 'listFiles')).files, []);
    // Another user's workspace is their own.
    const other = await user();
    await call(other, 'uploadFile', { path: 'mine.txt', contentBase64: Buffer.from('b').toString('base64') });
    await rejectsWith(call(u, 'downloadFile', { path: 'mine.txt' }), 'not-found');
  });

  test('REST: raw bytes up and down', async () => {
    const u = await user();
    const data = randomBytes(10_000);
    const up = await fetch('http://127.0.0.1:5000/api/files/content?path=raw%2Fb.bin', {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${u.idToken}`,
        'content-type': 'application/octet-stream',
        ...appCheckHeader(),
      },
      body: new Uint8Array(data),
    });
    const upBody = (await up.json()) as { size?: number };
    assert.equal(up.status, 200, JSON.stringify(upBody));
    assert.equal(upBody.size, data.length);
    const res = await fetch('http://127.0.0.1:5000/api/files/content?path=raw%2Fb.bin', {
      headers: { authorization: `Bearer ${u.idToken}`, ...appCheckHeader() },
    });
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(data), 'the same bytes');
    const list = await rest('GET', '/api/files', { token: u.idToken });
    assert.deepEqual(
      (list.json.files as FilesList['files']).map((f) => f.path),
      ['raw', 'raw/b.bin'],
    );
    assert.equal(
      (await rest('DELETE', '/api/files/content?path=raw%2Fb.bin', { token: u.idToken })).status,
      200,
    );
    assert.equal(
      (await rest('GET', '/api/files/content?path=raw%2Fb.bin', { token: u.idToken })).status,
      404,
    );
  });
});
