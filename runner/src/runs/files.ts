import { FILE_MAX_BYTES, FILES_LIST_MAX, type FileEntry, type FilesList } from '@agent-platform/contract';
import { FileNotFoundError, FileTooLargeError, InvalidRequestError } from '../errors.ts';
import type { SandboxHandle } from '../sandbox/backend.ts';

/**
 * The files API over a user's workspace (issue 11): every operation runs inside the user's own
 * sandbox, as the sandbox user, through `sh -c` with the path as an argument (never spliced into
 * the script). The runner never opens a path of the sandbox on the host. A path must resolve
 * inside /workspace after links are followed (`realpath`), so a link the user made cannot lead
 * a read or a write elsewhere, even inside the sandbox.
 */
const WORKSPACE = '/workspace';
/** Exit codes of the scripts below. */
const OUTSIDE = 3;
const MISSING = 4;
const NOT_A_FILE = 5;

const inside = `case "$p" in ${WORKSPACE}/*) ;; *) exit ${OUTSIDE} ;; esac`;

const LIST = `find ${WORKSPACE} -mindepth 1 -printf '%y\\t%s\\t%T@\\t%P\\0' 2>/dev/null | head -z -n ${FILES_LIST_MAX + 1}`;
const READ = `p=$(realpath -e -- "$1" 2>/dev/null) || exit ${MISSING}; ${inside}; [ -f "$p" ] || exit ${NOT_A_FILE}; exec head -c ${FILE_MAX_BYTES + 1} -- "$p"`;
// The target is resolved (links followed) and checked before anything is created, so a link
// cannot make even a directory appear outside; then its parent is checked again once it exists.
const WRITE = `p=$(realpath -m -- "$1"); ${inside}; [ -d "$p" ] && exit ${NOT_A_FILE}; mkdir -p -- "$(dirname -- "$p")" 2>/dev/null; q=$(realpath -e -- "$(dirname -- "$p")" 2>/dev/null) || exit ${OUTSIDE}; case "$q/" in ${WORKSPACE}/*) ;; *) exit ${OUTSIDE} ;; esac; cat > "$p"`;
const DELETE = `p=$(realpath -e -- "$1" 2>/dev/null) || exit ${MISSING}; ${inside}; rm -rf -- "$p"`;

function failed(exitCode: number, what: string): Error {
  if (exitCode === MISSING) return new FileNotFoundError();
  if (exitCode === OUTSIDE) return new InvalidRequestError('path: leads outside the workspace', 'path');
  if (exitCode === NOT_A_FILE) return new InvalidRequestError('path: is not a regular file', 'path');
  return new Error(`${what} failed in the sandbox (exit ${exitCode})`);
}

const TYPES: Record<string, FileEntry['type']> = { f: 'file', d: 'dir', l: 'link' };

export async function listFiles(s: SandboxHandle, signal: AbortSignal): Promise<FilesList> {
  const r = await s.exec(['sh', '-c', LIST], { maxOutBytes: 4 * 1024 * 1024, signal });
  if (r.exitCode !== 0) throw failed(r.exitCode, 'listing the workspace');
  const entries = r.stdout
    .toString('utf8')
    .split('\0')
    .filter((e) => e !== '');
  const files = entries.slice(0, FILES_LIST_MAX).flatMap((e): FileEntry[] => {
    const [type, size, mtime, ...rest] = e.split('\t');
    const path = rest.join('\t');
    if (!path || !size || !mtime) return [];
    return [
      {
        path,
        type: TYPES[type ?? ''] ?? 'other',
        size: Number(size) || 0,
        modifiedAt: new Date(Number(mtime) * 1000).toISOString(),
      },
    ];
  });
  files.sort((a, b) => a.path.localeCompare(b.path));
  return { files, truncated: entries.length > FILES_LIST_MAX || r.truncated };
}

export async function readFile(s: SandboxHandle, path: string, signal: AbortSignal): Promise<Buffer> {
  const r = await s.exec(['sh', '-c', READ, 'read', path], { maxOutBytes: FILE_MAX_BYTES + 1, signal });
  if (r.truncated || r.stdout.length > FILE_MAX_BYTES) {
    throw new FileTooLargeError(`the file is larger than ${FILE_MAX_BYTES} bytes`);
  }
  if (r.exitCode !== 0) throw failed(r.exitCode, 'reading a file');
  return r.stdout;
}

export async function writeFile(
  s: SandboxHandle,
  path: string,
  data: Buffer,
  signal: AbortSignal,
): Promise<void> {
  if (data.length > FILE_MAX_BYTES)
    throw new FileTooLargeError(`a file may have at most ${FILE_MAX_BYTES} bytes`);
  const r = await s.exec(['sh', '-c', WRITE, 'write', path], { stdin: data, maxOutBytes: 4096, signal });
  // cat's own failure: the workspace (a bounded tmpfs) has no room left.
  if (r.exitCode === 1) throw new FileTooLargeError('the workspace has no room for this file');
  if (r.exitCode !== 0) throw failed(r.exitCode, 'writing a file');
}

export async function deleteFile(s: SandboxHandle, path: string, signal: AbortSignal): Promise<void> {
  const r = await s.exec(['sh', '-c', DELETE, 'delete', path], { maxOutBytes: 4096, signal });
  if (r.exitCode !== 0) throw failed(r.exitCode, 'deleting a file');
}
