import { MODEL_GATEWAY_BASE_URL, MODEL_GATEWAY_PLACEHOLDER_KEY } from '@agent-platform/contract';
import type { ContainerCreateOptions } from 'dockerode';
import type { RunnerConfig } from '../config.ts';
import { sandboxLabels, sandboxStoreLabels } from './labels.ts';
import { SANDBOX_UID, SHM_BYTES, STORE_DIR, STORE_FILE, WORKSPACE_DIR } from './sandbox-layout.ts';

/**
 * The sandbox's PID 1 child (under docker-init): restore the workspace snapshot into the tmpfs
 * (tar keeps the archived mtimes, so the runner's `find -newermt` sees only later changes; saving
 * costs ~110 ms and most runs change nothing), then become the agent, which serves one request line at a time until stdin
 * closes. Arguments after the script are the agent's argv.
 */
const ENTRY_SCRIPT = [
  `if [ -f ${STORE_DIR}/${STORE_FILE} ]; then tar -xf ${STORE_DIR}/${STORE_FILE} -C ${WORKSPACE_DIR} 2>/dev/null || echo 'sandbox: workspace restore incomplete' >&2; fi`,
  `cd ${WORKSPACE_DIR}`,
  'exec "$@"',
].join('\n');

export interface SandboxSpecInput {
  runId: string;
  userId: string;
  /**
   * The user's workspace volume (WORKSPACE_STORE=volume), or null: an anonymous volume of this
   * sandbox alone, removed with it, that receives the snapshot from Cloud Storage before start.
   */
  volumeName: string | null;
  /** The agent image's own command (Entrypoint + Cmd), run by the entry script. */
  agentArgv: string[];
  /** The engine's runtime to use (SANDBOX_RUNTIME with `auto` resolved). */
  runtime: string;
}

/**
 * Host processes and threads gVisor itself needs per sandbox, on top of the sandbox's own. The
 * pids cgroup of a runsc container also counts the sentry's Go threads and the ptrace platform's
 * stub processes: measured here (2 CPUs, runsc 2022-12-19) 83 after a sandbox's first run,
 * growing to about 190 after 40 runs with a save each. With the limit at 128 the sentry's clone
 * failed with EAGAIN around the third run ("error initializing first thread: resource
 * temporarily unavailable"), it panicked (exit code 2, the Go runtime's) and took the sandbox
 * with it: the "third warm run fails under gVisor" of issue 9. Guest processes still count
 * against the cgroup (each address space is a stub process), so a fork bomb stays bounded.
 */
export const GVISOR_HOST_PIDS_HEADROOM = 512;

/** The pids cgroup limit of a sandbox under `runtime`. */
export function hostPidsLimit(runtime: string, pidsLimit: number): number {
  return runtime.startsWith('runsc') ? pidsLimit + GVISOR_HOST_PIDS_HEADROOM : pidsLimit;
}

/** Container options for one sandbox. Every hardening property is set here and nowhere else. */
export function sandboxSpec(config: RunnerConfig, input: SandboxSpecInput): ContainerCreateOptions {
  const s = config.sandbox;
  return {
    Image: config.agentImage,
    name: `agent-sandbox-${input.runId}`,
    Labels: sandboxLabels(config.runnerId, input.userId, input.runId),
    User: `${SANDBOX_UID}:${SANDBOX_UID}`,
    Entrypoint: ['/bin/sh', '-c', ENTRY_SCRIPT, 'sandbox-entry'],
    Cmd: input.agentArgv,
    WorkingDir: WORKSPACE_DIR,
    // Explicit environment: nothing of the runner's own environment reaches a sandbox.
    Env: [
      `HOME=${WORKSPACE_DIR}`,
      'PATH=/usr/local/bin:/usr/bin:/bin',
      'LANG=C.UTF-8',
      'TMPDIR=/tmp',
      'PYTHONDONTWRITEBYTECODE=1',
      // The model gateway on the sandbox's loopback (the agent serves it; the runner holds the
      // provider's key): OpenAI-style clients work unchanged, and no key enters the sandbox.
      `OPENAI_BASE_URL=${MODEL_GATEWAY_BASE_URL}`,
      `OPENAI_API_KEY=${MODEL_GATEWAY_PLACEHOLDER_KEY}`,
    ],
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    OpenStdin: true,
    StdinOnce: true,
    Tty: false,
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      Privileged: false,
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Init: true,
      Runtime: input.runtime,
      Memory: s.memoryBytes,
      MemorySwap: s.memoryBytes, // equal to Memory: no swap
      NanoCpus: s.nanoCpus,
      PidsLimit: hostPidsLimit(input.runtime, s.pidsLimit),
      Ulimits: [
        { Name: 'fsize', Soft: s.fileSizeBytes, Hard: s.fileSizeBytes },
        { Name: 'nofile', Soft: s.nofile, Hard: s.nofile },
        { Name: 'core', Soft: 0, Hard: 0 },
      ],
      Tmpfs: {
        '/tmp': `rw,nosuid,nodev,noexec,size=${s.tmpBytes},mode=1777`,
        [WORKSPACE_DIR]: `rw,nosuid,nodev,exec,size=${config.workspaceBytes},nr_inodes=${config.workspaceInodes},uid=${SANDBOX_UID},gid=${SANDBOX_UID},mode=0700`,
      },
      Mounts: [
        input.volumeName
          ? { Type: 'volume', Source: input.volumeName, Target: STORE_DIR, ReadOnly: false }
          : {
              Type: 'volume',
              Source: '', // anonymous
              Target: STORE_DIR,
              ReadOnly: false,
              VolumeOptions: {
                NoCopy: true,
                Labels: sandboxStoreLabels(config.runnerId),
                DriverConfig: { Name: 'local', Options: {} },
              },
            },
      ],
      IpcMode: 'private',
      // /dev/shm is a tmpfs charged to the sandbox's memory; Docker's default is 64 MiB.
      ShmSize: SHM_BYTES,
      LogConfig: { Type: 'none', Config: {} },
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
    },
  };
}
