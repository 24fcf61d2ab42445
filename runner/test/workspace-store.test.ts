/**
 * Workspaces in Cloud Storage (WORKSPACE_STORE=gcs, issue 11 part 1): a snapshot is written to the
 * bucket at the end of a run that changed files and restored when a sandbox is created, by any
 * runner; writes carry a generation precondition, so a runner that briefly serves the same user
 * as another never replaces a newer snapshot; reads and writes are checksummed. Cloud Storage is
 * the stand-in (helpers/fake-gcs.ts: its JSON API over real HTTP, the official client unchanged
 * but for its endpoint); the runners, Docker and the sandboxes are real, under runc and runsc.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFakeGcs, type FakeGcs } from './helpers/fake-gcs.ts';
import {
  docker,
  fence,
  leftovers,
  outputBlocks,
  postRun,
  removeLeftovers,
  uniqueId,
  type RunnerProcess,
} from './helpers/runner-process.ts';
import { TestRunner } from './helpers/with-runner.ts';

const BUCKET = 'agent-workspaces-test';
let gcs: FakeGcs;
const started: TestRunner[] = [];

/** A runner on the store; every one is closed (nothing left behind) after the file's tests. */
async function runner(extra: Record<string, string> = {}): Promise<TestRunner> {
  const r = await TestRunner.start({
    WORKSPACE_STORE: 'gcs',
    WORKSPACE_BUCKET: BUCKET,
    WORKSPACE_STORE_ENDPOINT: gcs.endpoint,
    ...extra,
  });
  started.push(r);
  return r;
}

async function sh(r: RunnerProcess, userId: string, code: string) {
  const res = await postRun(r, { userId, message: fence('sh', code) });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { body: res.body, output: outputBlocks(res.body.text)[0]?.output ?? '' };
}

const objects = () => [...gcs.objects.keys()].filter((k) => k.startsWith(`${BUCKET}/workspaces/`));

before(async () => {
  gcs = await startFakeGcs();
});

after(async () => {
  // No container or volume (workspace or store) is left by any of them.
  const failures: unknown[] = [];
  for (const r of started) await r.close().catch((err: unknown) => failures.push(err));
  await gcs?.close();
  if (failures.length > 0) throw failures[0];
});

describe('workspaces in Cloud Storage', () => {
  test('a file written on one runner is there on another after the first was killed; no workspace volume', async () => {
    const userId = uniqueId('u');
    const a = await runner();
    const first = await sh(
      a,
      userId,
      'mkdir -p d && echo kept > d/f.txt && printf "%s" "$(seq 1 500)" > big.txt && echo ok',
    );
    assert.equal(first.output, 'ok');
    assert.equal(objects().length, 1, 'one snapshot in the bucket');
    await a.stop('SIGKILL');
    await removeLeftovers(a.runnerId); // what the dead runner left; its replacement reaps its own
    const b = await runner();
    const second = await sh(b, userId, 'cat d/f.txt; wc -c < big.txt');
    assert.equal(second.body.warm, false);
    const bigSize = Array.from({ length: 500 }, (_, i) => i + 1).join('\n').length;
    assert.equal(second.output, `kept\n${bigSize}`);
    const vols = await docker.listVolumes({
      filters: { label: [`dev.agent-platform.runner-id=${b.runnerId}`, 'dev.agent-platform.kind=workspace'] },
    });
    assert.deepEqual(vols.Volumes ?? [], [], 'no per-user volume with the store');
  });

  test('two runners serving one user: the older save loses, says so, and the newer snapshot stays', async () => {
    const userId = uniqueId('u');
    const a = await runner();
    const b = await runner();
    await sh(a, userId, 'echo base > f.txt');
    // Both hold a warm sandbox restored from the same generation.
    assert.equal((await sh(a, userId, 'cat f.txt')).output, 'base');
    assert.equal((await sh(b, userId, 'cat f.txt')).output, 'base');
    const won = await sh(a, userId, 'echo from-a > f.txt; echo written');
    assert.doesNotMatch(won.body.text, /workspace not saved/);
    const lost = await sh(b, userId, 'echo from-b > f.txt; echo written');
    assert.equal(lost.output, 'written');
    assert.match(
      lost.body.text,
      /\[workspace not saved: another runner saved a newer version of this workspace meanwhile\]$/,
    );
    const [key] = objects().filter((k) => gcs.objects.get(k)!.data.includes(Buffer.from('from-')));
    assert.ok(
      key && gcs.objects.get(key)!.data.includes(Buffer.from('from-a')),
      'the stored snapshot is the winner',
    );
    // B's sandbox was stale: its next run restores the newer snapshot.
    const next = await sh(b, userId, 'cat f.txt');
    assert.equal(next.body.warm, false);
    assert.equal(next.output, 'from-a');
  });

  test('checksums: a download corrupted in transit is refused, the stored snapshot stays intact; a failed upload is retried', async () => {
    const userId = uniqueId('u');
    const a = await runner({ WARM_IDLE_TTL_MS: '0' });
    await sh(a, userId, 'echo precious > p.txt');
    gcs.corruptDownloads = 1;
    const refused = await postRun(a, { userId, message: fence('sh', 'cat p.txt') });
    assert.equal(refused.status, 503, 'no run on a corrupted restore; try again');
    assert.match(
      JSON.stringify(refused.body),
      /the workspace store could not be read: The downloaded data did not match/,
    );
    assert.ok(
      a.logs.some((l) => /did not match the data from the server/.test(l)),
      `the client's checksum refused it: ${a.logs.filter((l) => l.includes('ERROR')).join('\n')}`,
    );
    const again = await sh(a, userId, 'cat p.txt');
    assert.equal(again.output, 'precious');
    gcs.failUploads = 1;
    const uploads = () => gcs.requests.filter((q) => q.startsWith('POST /upload/')).length;
    const before = uploads();
    await sh(a, userId, 'echo second > p.txt');
    assert.equal(uploads() - before, 2, 'a 503, then the retry');
    assert.equal((await sh(a, userId, 'cat p.txt')).output, 'second', 'the upload was retried after a 503');
  });

  test("SIGTERM during a run: the run completes, its workspace and a warm sandbox's late writes are saved, nothing is left", async () => {
    const a = await runner();
    const busy = uniqueId('u');
    const idle = uniqueId('u');
    // The idle user's sandbox keeps writing after its run (a background job), then waits warm.
    await sh(a, idle, '(sleep 1; echo late > late.txt) >/dev/null 2>&1 & echo started');
    const running = postRun(a, {
      userId: busy,
      message: fence('sh', 'sleep 2; echo in-flight > f.txt; echo finished'),
    });
    await new Promise((r) => setTimeout(r, 1_500));
    const exited = a.stop('SIGTERM');
    const done = await running;
    assert.equal(outputBlocks(done.body.text)[0]?.output, 'finished');
    await exited;
    assert.deepEqual((await leftovers(a.runnerId)).containers, []);
    const b = await runner();
    assert.equal((await sh(b, busy, 'cat f.txt')).output, 'in-flight', "the run's save");
    assert.equal((await sh(b, idle, 'cat late.txt')).output, 'late', 'saved at the drain');
  });

  test('a file upload that loses to another runner answers 503 and succeeds when retried', async () => {
    const userId = uniqueId('u');
    const a = await runner();
    const b = await runner();
    await sh(a, userId, 'echo base > f.txt');
    assert.equal((await sh(b, userId, 'cat f.txt')).output, 'base', 'both runners hold a warm sandbox');
    const put = (r: RunnerProcess, body: string) =>
      fetch(`${r.url}/v1/users/${userId}/files/content?path=up.txt`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${r.token}` },
        body,
      });
    assert.equal((await put(a, 'from a')).status, 200);
    const lost = await put(b, 'from b');
    assert.equal(lost.status, 503);
    assert.match(await lost.text(), /another runner saved a newer version of this workspace meanwhile/);
    assert.equal((await put(b, 'from b')).status, 200, 'the retry restores the newer snapshot first');
    const files = (await sh(a, userId, 'cat up.txt')).output;
    assert.ok(files === 'from a' || files === 'from b');
    assert.equal((await sh(b, userId, 'cat f.txt up.txt')).output, 'base\nfrom b');
  });

  test('deleting the workspace deletes its snapshot', async () => {
    const userId = uniqueId('u');
    const a = await runner();
    await sh(a, userId, 'echo x > x.txt');
    const before = objects().length;
    const res = await fetch(`${a.url}/v1/users/${userId}/workspace`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${a.token}` },
    });
    assert.deepEqual(await res.json(), { deleted: true });
    assert.equal(objects().length, before - 1);
    assert.equal((await sh(a, userId, 'ls')).output, '', 'an empty workspace');
  });
});
