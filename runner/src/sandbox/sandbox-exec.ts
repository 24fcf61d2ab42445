import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { DeadlineError } from '../errors.ts';
import type { DeadlineCall } from './deadline.ts';
import { DockerDemuxer } from './docker-demux.ts';
import { SANDBOX_UID, WORKSPACE_DIR } from './sandbox-layout.ts';
import type { Snapshot } from './workspace-store.ts';

/** What a command in the sandbox printed (as chunks) and how it exited. */
export interface ExecOutput extends Snapshot {
  exitCode: number;
}

export interface ExecInput {
  /** Names the Docker calls for logs and metrics ("the save exec", "an exec"). */
  name: string;
  argv: string[];
  /** stdout kept at most; more is `too big` (the command's stream is cut). */
  capBytes: number;
  /** The deadline of every Docker call and of the reading. */
  signal: AbortSignal;
  stdin?: Buffer | undefined;
}

/**
 * One command in a sandbox as the sandbox user (the save's tar, a files API script), in
 * /workspace with a fixed PATH: its stdout as chunks (the save streams them on without a copy),
 * up to `capBytes`, and its exit code. Every Docker call has `signal` as its deadline.
 */
export async function execInSandbox(
  container: Docker.Container,
  call: DeadlineCall,
  input: ExecInput,
): Promise<ExecOutput | 'too big'> {
  const { name, signal, stdin } = input;
  const exec = await call(
    container.exec({
      Cmd: input.argv,
      User: `${SANDBOX_UID}:${SANDBOX_UID}`,
      WorkingDir: WORKSPACE_DIR,
      AttachStdin: stdin !== undefined,
      AttachStdout: true,
      AttachStderr: true,
      Env: ['PATH=/usr/bin:/bin'],
    }),
    `creating ${name}`,
    undefined,
    signal,
  );
  const stream = (await call(
    exec.start({ hijack: true, stdin: stdin !== undefined }),
    `starting ${name}`,
    undefined,
    signal,
  )) as Duplex;
  if (stdin !== undefined) stream.end(stdin);
  const out = await readStdout(stream, input.capBytes, signal);
  if (out === 'too big') return out;
  const info = await call(exec.inspect(), `inspecting ${name}`, undefined, signal);
  return { ...out, exitCode: info.ExitCode ?? -1 };
}

/** Reads an exec's stdout until it ends, the cap is passed, or the deadline fires. */
function readStdout(stream: Duplex, cap: number, deadline: AbortSignal): Promise<Snapshot | 'too big'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (value: Snapshot | 'too big' | Error) => {
      if (settled) return;
      settled = true;
      deadline.removeEventListener('abort', onAbort);
      if (value instanceof Error) {
        stream.destroy();
        reject(value);
        return;
      }
      if (value === 'too big') stream.destroy();
      resolve(value);
    };
    const onAbort = () => finish(new DeadlineError('the command in the sandbox did not finish in time'));
    if (deadline.aborted) return onAbort();
    deadline.addEventListener('abort', onAbort, { once: true });
    // stderr (tar's complaints) is dropped; stdout is the snapshot.
    const demux = new DockerDemuxer(
      (payload) => {
        if (settled) return;
        size += payload.length;
        if (size > cap) return finish('too big');
        chunks.push(Buffer.from(payload));
      },
      () => undefined,
    );
    stream.on('data', (chunk: Buffer) => demux.push(chunk));
    stream.on('end', () => finish({ chunks, size }));
    stream.on('close', () => finish({ chunks, size }));
    stream.on('error', (e) => finish(e));
  });
}
