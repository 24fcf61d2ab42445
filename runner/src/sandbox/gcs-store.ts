import { createHash } from 'node:crypto';
import { Storage, type Bucket } from '@google-cloud/storage';

/** What the store holds of a user: the snapshot (null: none yet) and its generation (0: none). */
export interface StoredWorkspace {
  data: Buffer | null;
  generation: number;
}

/** A save that lost: another runner saved a newer snapshot of the same workspace meanwhile. */
export class WorkspaceConflictError extends Error {
  override name = 'WorkspaceConflictError';
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Users' workspace snapshots in a Cloud Storage bucket (WORKSPACE_STORE=gcs), shared by every
 * runner of a fleet: `workspaces/<sha256 of the user id>.tar`. The client is the official
 * @google-cloud/storage with Application Default Credentials (the VM's service account; no key);
 * tests point its endpoint at a stand-in. Reads and writes are checked on both ends (the client
 * validates the md5 of a download and of an upload against what the service reports)
 * and writes carry a generation precondition, so a runner never replaces a newer snapshot with an
 * older one: its save fails with WorkspaceConflictError.
 */
export class GcsWorkspaceStore {
  readonly #bucket: Bucket;
  readonly #maxBytes: number;

  constructor(bucket: string, maxBytes: number, endpoint?: string) {
    const storage = new Storage(endpoint ? { apiEndpoint: endpoint, projectId: 'local-stand-in' } : {});
    this.#bucket = storage.bucket(bucket);
    this.#maxBytes = maxBytes;
  }

  objectName(userId: string): string {
    return `workspaces/${createHash('sha256').update(userId).digest('hex').slice(0, 40)}.tar`;
  }

  /** The user's snapshot at one generation (metadata first: size bound, then that generation). */
  async load(userId: string): Promise<StoredWorkspace> {
    const name = this.objectName(userId);
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
  async save(userId: string, data: Buffer, generation: number): Promise<number> {
    if (data.length > this.#maxBytes) throw new Error(`the workspace is larger than ${this.#maxBytes} bytes`);
    const file = this.#bucket.file(this.objectName(userId));
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
  async remove(userId: string): Promise<boolean> {
    try {
      await this.#bucket.file(this.objectName(userId)).delete();
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    }
  }
}
