/** The user's files: /workspace, the working directory of the agent and of the code it runs. */
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
