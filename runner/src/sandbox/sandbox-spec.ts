import type { ContainerCreateOptions } from 'dockerode';
import type { RunnerConfig } from '../config.ts';
import { sandboxLabels } from './labels.ts';
import { MARKER, SANDBOX_UID, SHM_BYTES, STORE_DIR, STORE_FILE, WORKSPACE_DIR } from './sandbox-layout.ts';

/**
 * The sandbox's PID 1 child (under docker-init): restore the workspace snapshot into the tmpfs,
 * mark the time, then become the agent, which serves one request line at a time until stdin
 * closes. Arguments after the script are the agent's argv.
 */
const ENTRY_SCRIPT = [
  `if [ -f ${STORE_DIR}/${STORE_FILE} ]; then tar -xf ${STORE_DIR}/${STORE_FILE} -C ${WORKSPACE_DIR} 2>/dev/null || echo 'sandbox: workspace restore incomplete' >&2; fi`,
  // Anything in /workspace newer than this marker (files, or directories whose entries changed)
  // is unsaved; Sandbox.save() compares against it. Saving costs ~110 ms; most runs change nothing.
  `: > ${MARKER}`,
  `cd ${WORKSPACE_DIR}`,
  'exec "$@"',
].join('\n');

export interface SandboxSpecInput {
  runId: string;
  userId: string;
  volumeName: string;
  /** The agent image's own command (Entrypoint + Cmd), run by the entry script. */
  agentArgv: string[];
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
      Runtime: s.runtime,
      Memory: s.memoryBytes,
      MemorySwap: s.memoryBytes, // equal to Memory: no swap
      NanoCpus: s.nanoCpus,
      PidsLimit: s.pidsLimit,
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
        {
          Type: 'volume',
          Source: input.volumeName,
          Target: STORE_DIR,
          ReadOnly: false,
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
