/** Running a piece of code with its interpreter, the output passed on while it runs. */
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { describeError } from './describe-error.ts';
import type { Interpreter } from './languages.ts';
import { WORKSPACE } from './workspace.ts';

/** Output of one run kept in the reply (the agent's own choice, not a contract limit). */
export const CODE_OUTPUT_MAX_BYTES = 64 * 1024;
const OUTPUT_TRUNCATED = '[output truncated]';

/** How a run of code ended: its output (without the last newline) and `exit N` or `signal NAME`. */
export interface CodeResult {
  output: string;
  status: string;
}

/**
 * Runs code with `interpreter`, the code on its stdin, in `cwd` with the agent's environment
 * and no timeout of its own (the runner's run timeout bounds it); never rejects. Its output
 * (stdout and stderr, as they interleave) goes to `onOutput` a line at a time while it runs, up to
 * CODE_OUTPUT_MAX_BYTES; a start that fails (EAGAIN under the pids limit, ...) is `exit -1` with
 * the error as output.
 */
export function runInterpreter(
  interpreter: Interpreter,
  code: string,
  onOutput: (text: string) => void,
  cwd = WORKSPACE,
): Promise<CodeResult> {
  const { command, args } = interpreter;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const decoder = new StringDecoder('utf8');
    let line = ''; // output after the last newline, not yet passed on
    let kept = 0;
    let truncated = false;
    let settled = false;
    const settle = (status: string, failure?: string): void => {
      if (settled) return;
      settled = true;
      line += decoder.end();
      if (failure) line += failure;
      if (truncated) line += `${line === '' || line.endsWith('\n') ? '' : '\n'}${OUTPUT_TRUNCATED}`;
      if (line) onOutput(line);
      let output = failure ?? Buffer.concat(chunks).toString('utf8');
      if (output.endsWith('\n')) output = output.slice(0, -1);
      if (truncated) output += (output === '' ? '' : '\n') + OUTPUT_TRUNCATED;
      resolve({ output, status });
    };
    const onData = (chunk: Buffer): void => {
      // Past the limit keep reading (and dropping) so the child never blocks on a full pipe.
      if (kept < CODE_OUTPUT_MAX_BYTES) {
        const part = chunk.subarray(0, CODE_OUTPUT_MAX_BYTES - kept);
        chunks.push(part);
        kept += part.length;
        if (part.length < chunk.length) truncated = true;
        line += decoder.write(part);
        const cut = line.lastIndexOf('\n');
        if (cut !== -1) {
          onOutput(line.slice(0, cut + 1));
          line = line.slice(cut + 1);
        }
      } else {
        truncated = true;
      }
    };
    let child;
    try {
      child = spawn(command, args, { cwd, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      settle('exit -1', `cannot start ${command}: ${describeError(err)}`);
      return;
    }
    const started = child;
    started.on('error', (err) => {
      // After a successful start an 'error' (e.g. a failed kill) changes nothing: wait for 'close'.
      if (started.pid === undefined) settle('exit -1', `cannot start ${command}: ${describeError(err)}`);
    });
    started.on('close', (exitCode, signal) => settle(signal ? `signal ${signal}` : `exit ${exitCode ?? -1}`));
    started.stdout.on('data', onData);
    started.stderr.on('data', onData);
    // The child may exit without reading all of its code (EPIPE): that is its business.
    started.stdin.on('error', () => {});
    try {
      started.stdin.end(code.endsWith('\n') ? code : code + '\n');
    } catch {
      // Reported through 'error'/'close'.
    }
  });
}
