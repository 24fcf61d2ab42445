/** The user's files: /workspace, the working directory of the agent and of the code it runs. */
import { open } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { FILE_PATH_MAX_CHARS } from '@agent-platform/contract';

export const WORKSPACE = '/workspace';

/**
 * A path of the workspace, relative or absolute; null when it points outside or is not a path.
 * Only the words are checked, not symbolic links: this keeps a model's file tools to the user's
 * files, it is no boundary (run_code reads whatever the sandbox user may).
 */
export function workspacePath(path: unknown, workspace = WORKSPACE): string | null {
  if (typeof path !== 'string' || path === '' || path.length > FILE_PATH_MAX_CHARS) return null;
  const full = resolve(workspace, path);
  return full === workspace || full.startsWith(workspace + sep) ? full : null;
}

/**
 * The first `maxBytes` of a file, and whether it has more. Reads no further: a file of gigabytes
 * (or a link to /dev/zero) would otherwise fill the sandbox's memory and end the run as `oom`.
 */
export async function readStart(path: string, maxBytes: number): Promise<{ bytes: Buffer; more: boolean }> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return { bytes: buffer.subarray(0, Math.min(length, maxBytes)), more: length > maxBytes };
  } finally {
    await handle.close();
  }
}
