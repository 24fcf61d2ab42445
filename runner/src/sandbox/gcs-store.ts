import { createHash } from 'node:crypto';
import { Storage, type Bucket } from '@google-cloud/storage';
import { WorkspaceStoreError } from '../errors.ts';
import type { DeadlineCall } from './deadline.ts';
import type { PutSnapshot, Snapshot, StoredWorkspace, WorkspaceStore } from './workspace-store.ts';

/** One Cloud Storage call (a snapshot of up to WORKSPACE_BYTES), at most. */
const STORE_CALL_MS = 15_000;

/** A save that lost: another runner saved a newer snapshot of the same workspace meanwhile. */
class WorkspaceConflictError extends Error {
  override name = 'WorkspaceConflictError';
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Users' workspace snapshots in a Cloud Storage bucket (WORKSPACE_STORE=gcs), shared by every
 * runner of a fleet: `workspaces/<sha256 of the user id>.tar`. A sandbox mounts an anonymous
 * volume of its own, and the snapshot is put into it before start. The client is the official
 * @google-cloud/storage with Application Default Credentials (the VM's service account; no key);
 * tests point its endpoint at a stand-in. Reads and writes are checked on both ends (the client
 * validates the md5 of a download and of an upload against what the service reports)
 * and writes carry a generation precondition, so a runner never replaces a newer snapshot with an
 * older one: its save is a `conflict`.
 */
export class GcsWorkspaceStore implements WorkspaceStore {
  readonly #bucket: Bucket;
  readonly #maxBytes: number;
  readonly #call: DeadlineCall;

  constructor(bucket: string, maxBytes: number, call: DeadlineCall, endpoint?: string) {
    const storage = new Storage(endpoint ? { apiEndpoint: endpoint, projectId: 'local-stand-in' } : {});
    this.#bucket = storage.bucket(bucket);
    this.#maxBytes = maxBytes;
    this.#call = call;
  }

  #objectName(userId: string): string {
    return `workspaces/${createHash('sha256').update(userId).digest('hex').slice(0, 40)}.tar`;
  }

  volumeFor(): Promise<null> {
    return Promise.resolve(null);
  }

  load(userId: string): Promise<StoredWorkspace> {
    return this.#call(this.#read(userId), 'reading the workspace from the store', STORE_CALL_MS).catch(
      (err: unknown) => {
        // Unreachable, or a snapshot that fails its checksum: nothing runs on a wrong
        // workspace, the stored one stays as it is, and the caller may retry (503).
        throw new WorkspaceStoreError(err instanceof Error ? err.message : String(err));
      },
    );
  }

  async save(
    userId: string,
    snapshot: Snapshot,
    generation: number,
    _put: PutSnapshot,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<number | 'conflict'> {
    try {
      return await this.#call(
        this.#write(userId, Buffer.concat(snapshot.chunks, snapshot.size), generation),
        'saving the workspace to the store',
        Math.min(timeoutMs, STORE_CALL_MS),
        signal,
      );
    } catch (err) {
      if (err instanceof WorkspaceConflictError) return 'conflict';
      throw err;
    }
  }

  delete(userId: string): Promise<boolean> {
    return this.#call(this.#remove(userId), 'removing a workspace from the store');
  }

  /** The user's snapshot at one generation (metadata first: size bound, then that generation). */
  async #read(userId: string): Promise<StoredWorkspace> {
    const name = this.#objectName(userId);
    let generation: number;
    try {
      const [meta] = await this.#bucket.file(name).getMetadata();
      generation = Number(meta.generation);
      if (Number(meta.size) > this.#maxBytes) {
        throw new Error(`the stored workspace is larger than ${this.#maxBytes} bytes`);
      }
    } catch (err) {
      if (statusOf(err) === 404) return { data: null, generation: 0 };
      throw err;
    }
    // MD5 (Node's native hashing; the client's CRC32C is JavaScript, 3-4x slower on 32 MiB).
    const [data] = await this.#bucket.file(name, { generation }).download({ validation: 'md5' });
    return { data, generation };
  }

  /**
   * Writes a snapshot if the stored one is still `generation` (0: none yet); returns the new
   * generation, or throws WorkspaceConflictError when another runner saved in between.
   */
  async #write(userId: string, data: Buffer, generation: number): Promise<number> {
    if (data.length > this.#maxBytes) throw new Error(`the workspace is larger than ${this.#maxBytes} bytes`);
    const file = this.#bucket.file(this.#objectName(userId));
    try {
      await file.save(data, {
        resumable: false,
        validation: 'md5',
        contentType: 'application/x-tar',
        preconditionOpts: { ifGenerationMatch: generation },
      });
    } catch (err) {
      if (statusOf(err) === 412)
        throw new WorkspaceConflictError('a newer snapshot of this workspace was saved');
      throw err;
    }
    return Number(file.metadata.generation);
  }

  /** Deletes the user's snapshot; false if there was none. */
  async #remove(userId: string): Promise<boolean> {
    try {
      await this.#bucket.file(this.#objectName(userId)).delete();
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    }
  }
}
