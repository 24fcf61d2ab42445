/**
 * Hardening of the sandbox, property by property. Each property is checked from inside (a code
 * block that the default agent runs in /workspace prints what a process sees) and, where Docker
 * records it, from the host (the real container, inspected while a run is in progress).
 *
 * The runner is started with non-default limits so that each value is seen to travel from the
 * runner's environment into the container.
 *
 * scripts/test.sh runs this file under runc and again under gVisor (SANDBOX_TEST_RUNTIME=runsc).
 * What a process sees differs under gVisor (Debian's runsc 2022-12-19), and each difference is
 * asserted explicitly, never skipped:
 * - /proc/self/status has no NoNewPrivs or CapAmb line and says Seccomp 0; the effective,
 *   permitted, inheritable and bounding sets are empty as under runc, and prctl (asked on both
 *   runtimes) answers no_new_privs 1 and no ambient capability, so the properties themselves are
 *   checked. No file in the image is setuid or setgid. The sentry, not the host kernel, serves
 *   every syscall; Docker's seccomp profile is not loaded inside unless runsc runs with
 *   --oci-seccomp (prctl PR_GET_SECCOMP answers 0).
 * - cgroup files and /proc/self/limits are not there inside: the limits are asserted on the
 *   container's HostConfig and by what they do (the SIGXFSZ and EMFILE probes here, the fork bomb
 *   and the memory hog in hostile.test.ts). The pids cgroup leaves gVisor room for its own threads.
 * - A write to the read-only root fails with EACCES before EROFS; the mount is `ro` either way.
 * - tmpfs options in /proc/mounts omit nosuid and nodev (they are in HostConfig.Tmpfs), and sizes
 *   print in bytes.
 * - `ls` and `stat` of coreutils 9.1 fail with EINVAL: this gVisor build refuses statx with
 *   AT_NO_AUTOMOUNT (0x800), which they always pass, so the probes use find -printf;
 *   user code that runs `ls -l` hits this too (a limit of this runsc build, see the README).
 * - /sys/class/net is not there; /proc/net/dev lists the interfaces.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import {
  docker,
  fence,
  leftovers,
  outputBlocks,
  type OutputBlock,
  uniqueId,
  type RunResultBody,
  SANDBOX_TEST_RUNTIME,
  GVISOR,
  mustAnswer,
  sh as shIn,
} from './helpers/runner-process.ts';
import { TestRunner } from './helpers/with-runner.ts';
import { hostPidsLimit } from '../src/sandbox/sandbox-spec.ts';

const MiB = 1024 * 1024;
const LIMITS = {
  memoryBytes: 256 * MiB,
  cpus: 0.5,
  pids: 64,
  nofile: 128,
  tmpBytes: 4 * MiB,
  fileSizeBytes: 12 * MiB, // larger than the workspace, so only a sparse file can reach it
  workspaceBytes: 8 * MiB,
};
const CANARY = `canary-${randomBytes(12).toString('hex')}`;
const LABEL = 'dev.agent-platform';
const ZERO_CAPS = '0000000000000000';

// ---------------------------------------------------------------------------------------------
// Helpers

async function run(
  userId: string,
  message: string,
  timeoutMs?: number,
): Promise<{ body: RunResultBody; blocks: OutputBlock[] }> {
  const body = await mustAnswer(runner, userId, message, timeoutMs);
  return { body, blocks: outputBlocks(body.text) };
}

const sh = (userId: string, script: string) => shIn(runner, userId, script);

/** Splits output printed as `==name==` headers followed by content. */
function sections(output: string): Map<string, string> {
  const map = new Map<string, string>();
  let name: string | null = null;
  let lines: string[] = [];
  for (const line of output.split('\n')) {
    const header = /^==([a-z0-9-]+)==$/.exec(line);
    if (header) {
      if (name !== null) map.set(name, lines.join('\n').trim());
      name = header[1]!;
      lines = [];
    } else {
      lines.push(line);
    }
  }
  if (name !== null) map.set(name, lines.join('\n').trim());
  return map;
}

/** `Key:\tvalue` lines (as in /proc/self/status) to a map. */
function keyValues(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+):\s*(.*)$/.exec(line);
    if (m) map.set(m[1]!, m[2]!.trim());
  }
  return map;
}

/** The size= option of a tmpfs in bytes (runc prints 4096k, gVisor 4194304). */
function sizeOption(options: string[]): number {
  const opt = options.find((o) => o.startsWith('size='));
  assert.ok(opt, `no size= in ${options.join(',')}`);
  const m = /^size=(\d+)([kmg]?)$/.exec(opt);
  assert.ok(m, opt);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2] as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
}

/** The /proc/mounts entry for a mount point: filesystem type and options. */
function mountOf(mounts: string, target: string): { type: string; options: string[] } {
  const line = mounts.split('\n').find((l) => l.split(' ')[1] === target);
  assert.ok(line, `${target} is not in /proc/mounts:\n${mounts}`);
  const [, , type, options] = line.split(' ');
  return { type: type!, options: options!.split(',') };
}

/** Polls until this user's sandbox is running, and inspects it. */
async function inspectRunningSandbox(userId: string): Promise<Docker.ContainerInspectInfo> {
  const filters = { label: [`${LABEL}.runner-id=${runner.runnerId}`, `${LABEL}.owner=${userId}`] };
  for (let i = 0; i < 400; i++) {
    const [found] = await docker.listContainers({ filters });
    if (found) {
      const info = await docker.getContainer(found.Id).inspect();
      if (info.State.Running) return info;
    }
    await sleep(25);
  }
  throw new Error(`no running sandbox for ${userId} appeared`);
}

// ---------------------------------------------------------------------------------------------
// The probe: one run prints every property from inside while the test inspects its container;
// the filesystem scan is a run of its own, with a budget of its own.

/**
 * Budgets of the two runs, from measurements on this 2-core machine with this file's 0.5 CPU,
 * three runs each under gVisor (runsc 2022-12-19, ptrace) beside other helpers' work (load ~3),
 * three with two CPU hogs beside them, and one under runc:
 * - the probe took 6.3-7.5 s, loaded 7.5-8.7 s (runc 2.9 s);
 * - the scan took 10.3-14.6 s, loaded 13.7-14.7 s (runc 0.9 s): each stat goes through the
 *   sentry and its gofer. (In one run with the probe, as before, the two took over 15 s.)
 * Over twice the slowest; the runner's RUN_TIMEOUT_MS is raised to allow the scan's.
 */
const PROBE_TIMEOUT_MS = 20_000;
const SCAN_TIMEOUT_MS = 40_000;

/** The cgroup (v1) and proc files that show limits inside under runc; gVisor has none of them. */
const LIMIT_FILES = {
  pidsMax: '/sys/fs/cgroup/pids/pids.max',
  memLimit: '/sys/fs/cgroup/memory/memory.limit_in_bytes',
  memswLimit: '/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes',
  cpuQuota: '/sys/fs/cgroup/cpu/cpu.cfs_quota_us',
  cpuPeriod: '/sys/fs/cgroup/cpu/cpu.cfs_period_us',
  limits: '/proc/self/limits',
};

/** What the probe's `cat` prints for a file that is not there. */
const notThere = (path: string) => `cat: ${path}: No such file or directory`;

/** Every section the probe prints; the sandbox stays up for 2 s at the end for the host side. */
const PROBE = `
s() { printf '\\n==%s==\\n' "$1"; }
s uid; id -u
s gid; id -g
s groups; id -G
s status; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
s prctl; python3 -c 'import ctypes; p = ctypes.CDLL(None).prctl; print("NoNewPrivs:", p(39, 0, 0, 0, 0)); print("Seccomp:", p(21, 0, 0, 0, 0)); print("Ambient:", sum(p(47, 1, c, 0, 0) == 1 for c in range(64)))'
s pid1; tr '\\0' ' ' < /proc/1/cmdline
s mounts; cat /proc/mounts
s rootfs-write
for p in /x /etc/x /usr/x /usr/local/bin/x /opt/agent/x /var/x; do touch "$p"; done
echo overwritten > /opt/agent/agent.js
s tmp-write; echo tmp-ok > /tmp/probe && cat /tmp/probe
s tmp-full; head -c ${LIMITS.tmpBytes + MiB} /dev/zero > /tmp/fill; echo "rc=$?"; rm -f /tmp/fill
s tmp-exec; cp /bin/true /tmp/true-copy && /tmp/true-copy; echo "rc=$?"
s pids-max; cat ${LIMIT_FILES.pidsMax}
s mem-limit; cat ${LIMIT_FILES.memLimit}
s memsw-limit; cat ${LIMIT_FILES.memswLimit}
s cpu-quota; cat ${LIMIT_FILES.cpuQuota}
s cpu-period; cat ${LIMIT_FILES.cpuPeriod}
s limits; cat ${LIMIT_FILES.limits}
s ulimit-f; ulimit -f
s ulimit-n; ulimit -n
s big-file; dd if=/dev/zero of=/workspace/sparse bs=1 count=1 seek=${LIMITS.fileSizeBytes + MiB}; echo "rc=$?"
find /workspace/sparse -printf 'size=%s\\n' 2>/dev/null; rm -f /workspace/sparse
s net-dev; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '
s net-class; ls /sys/class/net 2>/dev/null || echo unavailable
s env; env
s docker-sock; for p in /var/run/docker.sock /run/docker.sock; do if [ -e "$p" ]; then echo "present $p"; else echo "absent $p"; fi; done
s store; find /.workspace-store -maxdepth 0 -printf '%M %U %G %p\\n'; touch /.workspace-store/x; echo "rc=$?"
s workspace; echo ws-ok > /workspace/probe.txt && cat /workspace/probe.txt; find /workspace -maxdepth 0 -printf '%M %U %G %p\\n'
s end; sleep 2
`;

/** Planted by the scan's run so that it is seen to find what it looks for. */
const CONTROL = { socket: '/tmp/control.sock', setuid: '/workspace/control-setuid' };

/**
 * One walk over every file but /proc and /sys: unix sockets, and setuid or setgid files, after
 * planting one of each (a user may set the bit on a file of its own; the nosuid mount makes it
 * powerless).
 */
const SCAN = `
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("${CONTROL.socket}")'
cp /bin/true ${CONTROL.setuid} && chmod u+s ${CONTROL.setuid}
find / \\( -path /proc -o -path /sys \\) -prune -o -type s -printf 'socket %p\\n' -o -type f -perm /6000 -printf 'setuid %p\\n' 2>/dev/null
`;

const NOFILE_PROBE = `
import os
fds = []
try:
    while True:
        fds.append(os.open('/dev/null', os.O_RDONLY))
except OSError as e:
    print(e.errno, e.strerror)
    print('highest', max(fds))
`;

const probeUser = uniqueId('u');
let probe: Map<string, string>;
let probeBody: RunResultBody;
let nofileOutput: string;
let host: Docker.ContainerInspectInfo;
/** What the scan found, by kind, in the order found. */
let scan: { socket: string[]; setuid: string[] };
let scanMs: number;

const runner = new TestRunner();

before(async () => {
  await runner.start({
    WARM_IDLE_TTL_MS: '0', // each probe is a fresh sandbox; warm.test.ts covers warm ones
    SANDBOX_MEMORY_BYTES: String(LIMITS.memoryBytes),
    SANDBOX_CPUS: String(LIMITS.cpus),
    SANDBOX_PIDS_LIMIT: String(LIMITS.pids),
    SANDBOX_NOFILE: String(LIMITS.nofile),
    SANDBOX_TMP_BYTES: String(LIMITS.tmpBytes),
    SANDBOX_FILE_SIZE_BYTES: String(LIMITS.fileSizeBytes),
    WORKSPACE_BYTES: String(LIMITS.workspaceBytes),
    RUN_TIMEOUT_MS: String(SCAN_TIMEOUT_MS),
    SECRET_CANARY: CANARY,
  });
  const message = fence('python', NOFILE_PROBE) + '\n' + fence('sh', `exec 2>&1\n${PROBE}`);
  const pending = run(probeUser, message, PROBE_TIMEOUT_MS);
  const inspected = inspectRunningSandbox(probeUser);
  // Settle both before asserting, so neither rejection goes unhandled.
  const [ran, seen] = await Promise.allSettled([pending, inspected]);
  if (ran.status === 'rejected') throw ran.reason;
  if (seen.status === 'rejected') throw seen.reason;
  host = seen.value;
  probeBody = ran.value.body;
  assert.equal(probeBody.status, 'ok', probeBody.text);
  assert.equal(ran.value.blocks.length, 2, probeBody.text);
  nofileOutput = ran.value.blocks[0]!.output;
  probe = sections(ran.value.blocks[1]!.output);

  const scanned = await run(uniqueId('u'), fence('sh', SCAN), SCAN_TIMEOUT_MS);
  assert.equal(scanned.body.status, 'ok', scanned.body.text);
  scanMs = scanned.body.timings.agentMs;
  scan = { socket: [], setuid: [] };
  for (const line of (scanned.blocks[0]?.output ?? '').split('\n')) {
    const [kind, path] = line.split(' ');
    if (kind === 'socket' || kind === 'setuid') scan[kind].push(path!);
  }
});

after(() => runner.close());

function section(name: string): string {
  const value = probe.get(name);
  assert.ok(value !== undefined, `the probe printed no ${name} section:\n${probeBody.text}`);
  return value;
}

// ---------------------------------------------------------------------------------------------

describe('identity and privileges', () => {
  test('processes run as the unprivileged user 10001, not root', (t) => {
    t.diagnostic(`the probe ran ${probeBody.timings.agentMs} ms of its ${PROBE_TIMEOUT_MS} ms budget`);
    assert.equal(section('uid'), '10001');
    assert.equal(section('gid'), '10001');
    assert.equal(section('groups'), '10001');
    assert.equal(host.Config.User, '10001:10001');
  });

  test('no capabilities: effective, permitted, bounding, inheritable and ambient sets are empty', () => {
    const status = keyValues(section('status'));
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd']) {
      assert.equal(status.get(set), ZERO_CAPS, `${set} in /proc/self/status`);
    }
    // gVisor prints no CapAmb line (see the top of this file); prctl asks on both runtimes.
    assert.equal(status.get('CapAmb'), GVISOR ? undefined : ZERO_CAPS, 'CapAmb in /proc/self/status');
    assert.equal(keyValues(section('prctl')).get('Ambient'), '0', section('prctl'));
    assert.deepEqual(host.HostConfig.CapDrop, ['ALL']);
    assert.ok(!host.HostConfig.CapAdd || (host.HostConfig.CapAdd as string[]).length === 0, 'CapAdd is set');
  });

  test('no_new_privs is set and the default seccomp filter applies', () => {
    const status = keyValues(section('status'));
    const prctl = keyValues(section('prctl'));
    assert.equal(prctl.get('NoNewPrivs'), '1', 'PR_GET_NO_NEW_PRIVS');
    if (GVISOR) {
      // The sentry implements every syscall itself: no NoNewPrivs line, and Docker's seccomp
      // profile is not loaded inside (runsc without --oci-seccomp).
      assert.equal(status.get('NoNewPrivs'), undefined);
      assert.equal(status.get('Seccomp'), '0');
      assert.equal(prctl.get('Seccomp'), '0', 'PR_GET_SECCOMP');
    } else {
      assert.equal(prctl.get('Seccomp'), '2', 'PR_GET_SECCOMP: 2 is filter mode');
      assert.equal(status.get('NoNewPrivs'), '1');
      assert.equal(status.get('Seccomp'), '2', 'Seccomp: 2 means a seccomp filter is in force');
    }
    assert.deepEqual(host.HostConfig.SecurityOpt, ['no-new-privileges:true']);
  });

  test('no file in the sandbox is setuid or setgid (nothing can raise privileges)', (t) => {
    t.diagnostic(`the scan ran ${scanMs} ms of its ${SCAN_TIMEOUT_MS} ms budget`);
    assert.deepEqual(scan.setuid, [CONTROL.setuid], 'only the file the scan planted');
  });

  test('the container is not privileged and has no devices added', () => {
    assert.equal(host.HostConfig.Privileged, false);
    assert.ok(!host.HostConfig.Devices || (host.HostConfig.Devices as unknown[]).length === 0);
    assert.equal(host.HostConfig.IpcMode, 'private');
    assert.ok(host.HostConfig.PidMode === '' || host.HostConfig.PidMode === undefined, 'PidMode is set');
  });

  test('PID 1 is docker-init (HostConfig.Init), so orphans are reaped and signals forwarded', () => {
    assert.match(section('pid1'), /^\/sbin\/docker-init -- \/bin\/sh -c /);
    assert.equal(host.HostConfig.Init, true);
  });

  test('the container runtime is the one the test asked for (SANDBOX_TEST_RUNTIME)', () => {
    assert.equal(host.HostConfig.Runtime, SANDBOX_TEST_RUNTIME);
  });

  test('labels name the manager, runner, owner and run', () => {
    const labels = host.Config.Labels;
    assert.equal(labels[`${LABEL}.managed-by`], 'agent-platform-runner');
    assert.equal(labels[`${LABEL}.runner-id`], runner.runnerId);
    assert.equal(labels[`${LABEL}.owner`], probeUser);
    assert.equal(labels[`${LABEL}.run-id`], probeBody.runId, 'run-id label is the runId of the result');
    assert.equal(labels[`${LABEL}.kind`], 'sandbox');
  });
});

describe('filesystems', () => {
  test('the root filesystem is read-only: writes to /, /etc, /usr, /opt/agent fail with EROFS', () => {
    assert.ok(mountOf(section('mounts'), '/').options.includes('ro'), 'root is not mounted ro');
    const out = section('rootfs-write');
    // gVisor checks permissions before the read-only flag.
    const why = GVISOR ? 'Permission denied' : 'Read-only file system';
    for (const p of ['/x', '/etc/x', '/usr/x', '/usr/local/bin/x', '/opt/agent/x', '/var/x']) {
      assert.match(out, new RegExp(`touch: cannot touch '/?${p.replace(/\//g, '\\/')}': ${why}`));
    }
    assert.match(out, new RegExp(`cannot create /opt/agent/agent\\.js: ${why}`));
    assert.equal(host.HostConfig.ReadonlyRootfs, true);
  });

  test('/tmp is a writable, size-capped, noexec tmpfs', () => {
    const tmp = mountOf(section('mounts'), '/tmp');
    assert.equal(tmp.type, 'tmpfs');
    // gVisor does not list nosuid and nodev (they are in HostConfig.Tmpfs, asserted below).
    for (const opt of GVISOR ? ['rw', 'noexec'] : ['rw', 'noexec', 'nosuid', 'nodev']) {
      assert.ok(tmp.options.includes(opt), `/tmp options ${tmp.options.join(',')} lack ${opt}`);
    }
    assert.equal(sizeOption(tmp.options), LIMITS.tmpBytes);
    assert.equal(section('tmp-write'), 'tmp-ok');
    assert.match(section('tmp-full'), /No space left on device\s*\nrc=1$/);
    assert.match(section('tmp-exec'), /\/tmp\/true-copy: Permission denied\s*\nrc=126$/);
    assert.equal(host.HostConfig.Tmpfs?.['/tmp'], `rw,nosuid,nodev,noexec,size=${LIMITS.tmpBytes},mode=1777`);
  });

  test('/workspace is a writable tmpfs of WORKSPACE_BYTES owned by the sandbox user', () => {
    // runc gives a tmpfs the mode of the directory it covers, so the agent image makes
    // /workspace 0700 itself (the mode= option alone has no effect).
    const ws = mountOf(section('mounts'), '/workspace');
    assert.equal(ws.type, 'tmpfs');
    for (const opt of GVISOR ? ['rw', 'uid=10001'] : ['rw', 'nosuid', 'nodev', 'uid=10001']) {
      assert.ok(ws.options.includes(opt), `/workspace options ${ws.options.join(',')} lack ${opt}`);
    }
    assert.equal(sizeOption(ws.options), LIMITS.workspaceBytes);
    assert.match(host.HostConfig.Tmpfs?.['/workspace'] ?? '', /^rw,nosuid,nodev,exec,size=/);
    assert.equal(section('workspace'), 'ws-ok\ndrwx------ 10001 10001 /workspace');
  });

  test('the persistent store /.workspace-store is owned by root and not writable by the sandbox user', () => {
    const out = section('store');
    assert.match(out, /^drwxr-xr-x 0 0 \/\.workspace-store$/m);
    assert.match(out, /touch: cannot touch '\/\.workspace-store\/x': Permission denied\s*\nrc=1$/);
    // Only the user's own volume is mounted; no bind mounts at all.
    assert.deepEqual(
      host.Mounts.map((m) => [m.Type, m.Destination]),
      [['volume', '/.workspace-store']],
    );
  });
});

describe('resource limits', () => {
  // gVisor has no cgroup files inside: the limits hold from the host's cgroups, as the fork bomb
  // and the memory hog in hostile.test.ts show; here the files are asserted absent.
  test('pids limit: HostConfig.PidsLimit and pids.max inside', () => {
    assert.equal(host.HostConfig.PidsLimit, hostPidsLimit(SANDBOX_TEST_RUNTIME, LIMITS.pids));
    assert.equal(section('pids-max'), GVISOR ? notThere(LIMIT_FILES.pidsMax) : String(LIMITS.pids));
  });

  test('memory limit with MemorySwap equal to Memory (no swap)', () => {
    assert.equal(host.HostConfig.Memory, LIMITS.memoryBytes);
    assert.equal(host.HostConfig.MemorySwap, LIMITS.memoryBytes);
    const inside = (path: string) => (GVISOR ? notThere(path) : String(LIMITS.memoryBytes));
    assert.equal(section('mem-limit'), inside(LIMIT_FILES.memLimit));
    assert.equal(section('memsw-limit'), inside(LIMIT_FILES.memswLimit));
  });

  test('CPU limit: NanoCpus and the CFS quota inside', () => {
    assert.equal(host.HostConfig.NanoCpus, LIMITS.cpus * 1e9);
    if (GVISOR) {
      assert.equal(section('cpu-quota'), notThere(LIMIT_FILES.cpuQuota));
      assert.equal(section('cpu-period'), notThere(LIMIT_FILES.cpuPeriod));
    } else {
      const quota = Number(section('cpu-quota'));
      const period = Number(section('cpu-period'));
      assert.ok(period > 0, section('cpu-period'));
      assert.equal(quota / period, LIMITS.cpus);
    }
  });

  test('ulimits: fsize, nofile and core, inside and in HostConfig', () => {
    const ulimits = new Map((host.HostConfig.Ulimits ?? []).map((u) => [u.Name, [u.Soft, u.Hard]]));
    assert.deepEqual(ulimits.get('fsize'), [LIMITS.fileSizeBytes, LIMITS.fileSizeBytes]);
    assert.deepEqual(ulimits.get('nofile'), [LIMITS.nofile, LIMITS.nofile]);
    assert.deepEqual(ulimits.get('core'), [0, 0]);
    // dash reports `ulimit -f` in 512-byte blocks.
    assert.equal(section('ulimit-f'), String(LIMITS.fileSizeBytes / 512));
    assert.equal(section('ulimit-n'), String(LIMITS.nofile));
    // gVisor has no /proc/self/limits; the SIGXFSZ and EMFILE probes below show both limits hold.
    if (GVISOR) {
      assert.equal(section('limits'), notThere(LIMIT_FILES.limits));
    } else {
      const limits = section('limits');
      const row = (name: string) => {
        const line = limits.split('\n').find((l) => l.startsWith(name));
        assert.ok(line, `${name} missing from /proc/self/limits`);
        return line.slice(name.length).trim().split(/\s+/).slice(0, 2);
      };
      assert.deepEqual(row('Max file size'), [String(LIMITS.fileSizeBytes), String(LIMITS.fileSizeBytes)]);
      assert.deepEqual(row('Max open files'), [String(LIMITS.nofile), String(LIMITS.nofile)]);
      assert.deepEqual(row('Max core file size'), ['0', '0']);
    }
  });

  test('a file larger than SANDBOX_FILE_SIZE_BYTES cannot be written (SIGXFSZ)', () => {
    // A sparse file: the write lands past the limit without filling the 8 MiB workspace.
    const out = section('big-file');
    assert.match(out, /File size limit exceeded/);
    assert.match(out, /rc=153/, '128 + SIGXFSZ (25)');
    assert.match(out, /^size=0$/m, 'nothing was written');
  });

  test('opening more than SANDBOX_NOFILE files fails with EMFILE', () => {
    const [errno, highest] = nofileOutput.split('\n');
    assert.equal(errno, '24 Too many open files', nofileOutput);
    assert.equal(highest, `highest ${LIMITS.nofile - 1}`, nofileOutput);
  });
});

describe('network', () => {
  test('only the loopback interface exists; NetworkMode none', () => {
    assert.equal(section('net-dev'), 'lo');
    // gVisor has no /sys/class/net.
    assert.equal(section('net-class'), GVISOR ? 'unavailable' : 'lo');
    assert.equal(host.HostConfig.NetworkMode, 'none');
    assert.equal((host.Config as { NetworkDisabled?: boolean }).NetworkDisabled, true);
    for (const [name, net] of Object.entries(host.NetworkSettings.Networks)) {
      assert.equal(net.IPAddress, '', `network ${name} gave the sandbox an address`);
    }
  });
});

describe('environment and host access', () => {
  test("the environment holds none of the runner's variables", () => {
    const env = section('env');
    const names = env
      .split('\n')
      .map((l) => l.split('=', 1)[0]!)
      .sort();
    const allowed = new Set([
      'HOME',
      'HOSTNAME',
      'LANG',
      'NODE_PATH', // the agent image's libraries for sandboxed code (the openai SDK)
      'NODE_VERSION', // from the agent image's ENV
      'OLDPWD',
      'OPENAI_API_KEY', // the model gateway's placeholder, not a key
      'OPENAI_BASE_URL', // the model gateway on the sandbox's loopback
      'PATH',
      'PWD',
      'PYTHONDONTWRITEBYTECODE',
      'SHLVL',
      'TMPDIR',
    ]);
    assert.deepEqual(
      names.filter((n) => !allowed.has(n)),
      [],
      env,
    );
    assert.match(env, /^HOME=\/workspace$/m);
    for (const secret of [CANARY, runner.token, runner.runnerId]) {
      assert.ok(!probeBody.text.includes(secret), `the reply contains ${secret}`);
      assert.ok(!host.Config.Env.some((e) => e.includes(secret)), `Config.Env contains ${secret}`);
    }
  });

  test('no Docker socket inside, and none bound from the host', () => {
    assert.equal(section('docker-sock'), 'absent /var/run/docker.sock\nabsent /run/docker.sock');
    assert.deepEqual(scan.socket, [CONTROL.socket], 'no unix socket but the one the scan planted');
    assert.ok(!host.HostConfig.Binds || host.HostConfig.Binds.length === 0, 'Binds are set');
    assert.ok(!host.Mounts.some((m) => m.Type === 'bind' || m.Source.includes('docker.sock')));
  });
});

describe('workspace persistence and isolation', () => {
  test('files persist to the next run of the same user and are not visible to another user', async () => {
    const owner = uniqueId('u');
    const other = uniqueId('u');
    const secret = randomBytes(16).toString('hex');
    await sh(owner, `mkdir -p /workspace/dir && echo ${secret} > /workspace/dir/note.txt && echo written`);

    const again = await sh(owner, 'cat /workspace/dir/note.txt');
    assert.equal(again.block.output, secret);

    const stranger = await sh(
      other,
      'find /workspace -mindepth 1; cat /workspace/dir/note.txt; echo "rc=$?"',
    );
    assert.match(
      stranger.block.output,
      /^cat: \/workspace\/dir\/note\.txt: No such file or directory\nrc=1$/,
    );
    assert.ok(!stranger.block.output.includes(secret));
  });

  test('writing past WORKSPACE_BYTES fails with ENOSPC inside while the run still returns', async () => {
    const user = uniqueId('u');
    const size = LIMITS.workspaceBytes + 2 * MiB; // below the file size limit: the tmpfs stops it
    const full = await sh(user, `head -c ${size} /dev/zero > /workspace/big; echo "rc=$?"`);
    assert.equal(full.body.status, 'ok');
    assert.match(full.block.output, /No space left on device\s*\nrc=1$/);

    // The user's next run works and can free the space again.
    const next = await sh(
      user,
      'rm -f /workspace/big && echo freed && head -c 1048576 /dev/zero > /workspace/small; echo "rc=$?"',
    );
    assert.equal(next.block.output, 'freed\nrc=0');
  });

  test('the saved snapshot cannot be changed or removed by the sandbox user', async () => {
    const user = uniqueId('u');
    await sh(user, 'echo kept > /workspace/kept.txt');
    const attack = await sh(
      user,
      [
        "find /.workspace-store -mindepth 1 -printf '%M %n %U %G %s %f\\n'",
        'echo junk >> /.workspace-store/workspace.tar; echo "append rc=$?"',
        'rm -f /.workspace-store/workspace.tar; echo "rm rc=$?"',
        'mv /.workspace-store/workspace.tar /workspace/; echo "mv rc=$?"',
      ].join('\n'),
    );
    const out = attack.block.output;
    assert.match(out, /^-rw-r--r-- 1 0 0 \d+ workspace\.tar$/m);
    assert.match(out, /Permission denied\s*\nappend rc=[12]$/m);
    assert.match(out, /Permission denied\s*\nrm rc=1$/m);
    assert.match(out, /Permission denied\s*\nmv rc=1$/m);
    const later = await sh(user, 'cat /workspace/kept.txt');
    assert.equal(later.block.output, 'kept');
  });
});

test('no sandbox container is left behind by any run', async () => {
  const left = await leftovers(runner.runnerId);
  assert.deepEqual(left.containers, []);
});
