/**
 * npm run soak [-- --users N --messages M --concurrency C]: load and soak through the whole local
 * stack (Hosting's /api rewrite -> the api function -> Firestore + the runner -> Docker), issue 9.
 *
 * USERS users (signed up on the Auth emulator) send MESSAGES messages each, one at a time per
 * user, CONCURRENCY in flight overall: text, code that writes a file, a run past the run cap, a
 * memory hog, an output flood. Halfway through, the runner is SIGKILLed and started again. Then
 * it checks, from Firestore, that every message ended with exactly one reply or a failed status
 * (never pending, never two replies); deletes the accounts (the Auth trigger removes each
 * workspace) and checks that no container or volume is left; and compares the runner's memory
 * after the load with its memory after warm-up. Exits 1 on any violation. Prints a JSON summary.
 *
 * Needs the emulators (scripts/soak.sh starts them; scripts/test.sh for the short version in
 * scripts/soak.test.ts) and RUNNER_SOAK_PORT / RUNNER_SOAK_TOKEN matching functions/.env.local.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { adminAuth, adminDb, newUser, rest, type TestUser } from '../functions/test/helpers/stack.ts';
import { startRunner, type RunnerProcess } from '../runner/test/helpers/runner-process.ts';

export interface SoakOptions {
  users: number;
  messages: number;
  concurrency: number;
  port: string;
  token: string;
  runnerId: string;
  /** Extra runner settings (e.g. a shorter run cap). */
  runnerEnv?: Record<string, string>;
  log?: (line: string) => void;
}

export interface SoakReport {
  users: number;
  messagesSent: number;
  answered: Record<string, number>;
  errors: Record<string, number>;
  seconds: number;
  messagesPerSecond: number;
  latencyMs: { p50: number; p95: number; max: number };
  runnerKilledAfter: number;
  runnerRssMiB: { afterWarmup: number; atEnd: number };
  violations: string[];
  leftContainers: number;
  leftVolumes: number;
}

const HOG = 'x = []\nwhile True:\n    x.append(bytearray(16 * 1024 * 1024))';

/**
 * The j-th message of the i-th user: text and code, and one in twenty a run past the run cap, a
 * memory hog or an output flood (spread over users, so short soaks have each of them too).
 */
export function soakMessage(i: number, j: number): string {
  const k = (i * 5 + j) % 20;
  if (k === 3) return '```sh\nsleep 600\n```';
  if (k === 7) return '```python\n' + HOG + '\n```';
  if (k === 11) return '```sh\nyes flood | head -c 20000000\n```';
  if (j % 2 === 0) return `hello ${j}`;
  return `file ${j}\n\`\`\`sh\necho ${j} > f${j}.txt; ls | wc -l\n\`\`\``;
}

const rssMiB = (pid: number | undefined): number => {
  if (!pid) return NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
};

const percentile = (xs: number[], p: number): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!);
};

export async function soak(o: SoakOptions): Promise<SoakReport> {
  const log = o.log ?? ((line: string) => console.log(`[soak] ${line}`));
  const docker = new Docker();
  const startTheRunner = () =>
    startRunner({ PORT: o.port, RUNNER_TOKEN: o.token, RUNNER_ID: o.runnerId, ...o.runnerEnv });
  let runner: RunnerProcess = await startTheRunner();
  const users: TestUser[] = [];
  const report: SoakReport = {
    users: o.users,
    messagesSent: 0,
    answered: {},
    errors: {},
    seconds: 0,
    messagesPerSecond: 0,
    latencyMs: { p50: 0, p95: 0, max: 0 },
    runnerKilledAfter: 0,
    runnerRssMiB: { afterWarmup: NaN, atEnd: NaN },
    violations: [],
    leftContainers: -1,
    leftVolumes: -1,
  };
  try {
    for (let i = 0; i < o.users; i += 10) {
      users.push(...(await Promise.all(Array.from({ length: Math.min(10, o.users - i) }, () => newUser()))));
    }
    log(`${users.length} users signed up`);
    const conversation = new Map<string, string>();
    const sent = new Map<string, number>(users.map((u) => [u.uid, 0]));
    const total = o.users * o.messages;
    const latencies: number[] = [];
    let done = 0;
    let killing: Promise<void> | null = null;
    let restarted = false;
    let restartedAt = 0;
    const queue = [...users];
    const t0 = performance.now();

    const index = new Map(users.map((u, i) => [u.uid, i]));
    const sendOne = async (u: TestUser): Promise<void> => {
      // The messages in flight when the runner dies fail; new ones wait until it is back (a
      // client would back off), so the second half of the soak still exercises the runner.
      if (killing) await killing;
      const j = sent.get(u.uid)!;
      sent.set(u.uid, j + 1);
      report.messagesSent++;
      const cid = conversation.get(u.uid);
      const t = performance.now();
      const res = await rest('POST', '/api/conversation', {
        token: u.idToken,
        body: { message: soakMessage(index.get(u.uid)!, j), ...(cid ? { conversationId: cid } : {}) },
      });
      latencies.push(performance.now() - t);
      if (res.status === 200) {
        const status = String(res.json.status);
        report.answered[status] = (report.answered[status] ?? 0) + 1;
        conversation.set(u.uid, String(res.json.conversationId));
      } else {
        const err = res.json.error as { code?: string; details?: { conversationId?: string } } | undefined;
        const code = `${res.status} ${err?.code ?? 'unknown'}`;
        report.errors[code] = (report.errors[code] ?? 0) + 1;
        if (!cid && err?.details?.conversationId) conversation.set(u.uid, err.details.conversationId);
      }
      done++;
      if (done % 100 === 0) log(`${done}/${total} messages answered`);
      // The runner's memory after warm-up: its second process, a tenth of the messages after the restart.
      if (
        restarted &&
        Number.isNaN(report.runnerRssMiB.afterWarmup) &&
        done >= restartedAt + Math.ceil(total / 10)
      ) {
        report.runnerRssMiB.afterWarmup = rssMiB(runner.child.pid);
      }
      if (done === Math.floor(total / 2) && !killing) {
        report.runnerKilledAfter = done;
        killing = (async () => {
          log(`SIGKILL to the runner after ${done} messages; starting it again in 1 s`);
          await runner.stop('SIGKILL');
          await sleep(1_000);
          runner = await startTheRunner();
          restarted = true;
          restartedAt = done;
          log('runner started again');
        })();
      }
    };

    const worker = async (): Promise<void> => {
      for (;;) {
        const u = queue.shift();
        if (!u) return;
        await sendOne(u);
        if (sent.get(u.uid)! < o.messages) queue.push(u);
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    await killing;
    report.seconds = Math.round((performance.now() - t0) / 100) / 10;
    report.messagesPerSecond = Math.round((report.messagesSent / report.seconds) * 10) / 10;
    report.latencyMs = {
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      max: percentile(latencies, 100),
    };
    report.runnerRssMiB.atEnd = rssMiB(runner.child.pid);

    // Every message ended with exactly one reply or a failed status.
    for (const u of users) {
      const convs = await adminDb().collection(`users/${u.uid}/conversations`).get();
      const msgs = convs.empty
        ? []
        : (await convs.docs[0]!.ref.collection('messages').orderBy('seq').get()).docs;
      if (convs.size > 1) report.violations.push(`${u.uid}: ${convs.size} conversations`);
      const bySeq = new Map(msgs.map((d) => [d.get('seq') as number, d]));
      const mine = msgs.filter((d) => d.get('role') === 'user');
      if (mine.length !== o.messages)
        report.violations.push(`${u.uid}: ${mine.length} user messages stored of ${o.messages} sent`);
      for (const m of mine) {
        const status = m.get('status') as string;
        const reply = bySeq.get((m.get('seq') as number) + 1);
        if (status === 'done' && reply?.get('role') !== 'agent')
          report.violations.push(`${u.uid}/${m.id}: done without a reply`);
        if (status === 'failed' && reply) report.violations.push(`${u.uid}/${m.id}: failed with a reply`);
        if (status !== 'done' && status !== 'failed') report.violations.push(`${u.uid}/${m.id}: ${status}`);
      }
      const replies = msgs.filter((d) => d.get('role') === 'agent').length;
      const doneCount = mine.filter((m) => m.get('status') === 'done').length;
      if (replies !== doneCount)
        report.violations.push(`${u.uid}: ${replies} replies for ${doneCount} answered messages`);
    }
  } finally {
    // Each user deletes their workspace (the deleteWorkspace callable, one after another), then the
    // accounts go (the onUserDeleted trigger removes their documents, and their workspace again).
    // Not the trigger alone: after the load, the Functions emulator failed to start a worker for
    // 36 of 50 deletion triggers within its 30 s discovery timeout ("Failed to load function"),
    // even 4 at a time; it does not retry them (Cloud Functions does: failurePolicy).
    for (const u of users)
      await u
        .call('deleteWorkspace')({})
        .catch(() => undefined);
    await Promise.all(
      users.map((u) =>
        adminAuth()
          .deleteUser(u.uid)
          .catch(() => undefined),
      ),
    );
    const label = `dev.agent-platform.runner-id=${o.runnerId}`;
    for (let i = 0; i < 120; i++) {
      const vols = (await docker.listVolumes({ filters: { label: [label] } })).Volumes ?? [];
      report.leftVolumes = vols.length;
      if (vols.length === 0) break;
      await sleep(500);
    }
    await runner.stop();
    report.leftContainers = (await docker.listContainers({ all: true, filters: { label: [label] } })).length;
    await Promise.all(users.map((u) => u.close()));
  }
  if (report.leftContainers > 0) report.violations.push(`${report.leftContainers} containers left`);
  if (report.leftVolumes > 0) report.violations.push(`${report.leftVolumes} volumes left`);
  return report;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '50' },
      messages: { type: 'string', default: '20' },
      concurrency: { type: 'string', default: '16' },
    },
  });
  const port = process.env.RUNNER_SOAK_PORT;
  const token = process.env.RUNNER_SOAK_TOKEN;
  if (!port || !token)
    throw new Error('RUNNER_SOAK_PORT and RUNNER_SOAK_TOKEN must be set (scripts/soak.sh does it)');
  const report = await soak({
    users: Number(values.users),
    messages: Number(values.messages),
    concurrency: Number(values.concurrency),
    port,
    token,
    runnerId: `soak-${process.pid}`,
  });
  console.log(JSON.stringify(report, null, 2));
  const grew = report.runnerRssMiB.atEnd - report.runnerRssMiB.afterWarmup;
  if (grew > 64) report.violations.push(`the runner's memory grew by ${grew} MiB`);
  if (report.violations.length > 0) {
    console.error(`[soak] ${report.violations.length} violations`);
    process.exitCode = 1;
  }
}
