/**
 * Where things live inside a sandbox and how big its fixed parts are. A leaf module (imports
 * nothing) so that config.ts can check sizes against it without depending on the sandbox spec.
 */
/** The unprivileged user every sandbox process runs as. */
export const SANDBOX_UID = 10001;
/** Where the user's files live during a run (a size-capped tmpfs). */
export const WORKSPACE_DIR = '/workspace';
/** Where the user's persistent workspace volume is mounted; only root may write there. */
export const STORE_DIR = '/.workspace-store';
export const STORE_FILE = 'workspace.tar';
/** Size of the sandbox's /dev/shm (counted in the memory check of config.ts). */
export const SHM_BYTES = 16 * 1024 * 1024;
