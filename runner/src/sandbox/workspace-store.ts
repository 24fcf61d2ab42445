/**
 * A snapshot of a sandbox's /workspace: one tar, as the chunks `tar` wrote it (kept as chunks so
 * the volume store streams them on without a copy).
 */
export interface Snapshot {
  chunks: Buffer[];
  size: number;
}

/** What a store holds of a user: the snapshot to restore (null: nothing to put in) and its generation (0: none). */
export interface StoredWorkspace {
  data: Buffer | null;
  generation: number;
}

/** Writes a snapshot into the sandbox's store directory (STORE_DIR), within `timeoutMs` and `signal`. */
export type PutSnapshot = (snapshot: Snapshot, timeoutMs: number, signal: AbortSignal) => Promise<void>;

/**
 * Where a user's /workspace lives between sandboxes: a Docker volume of this runner
 * (volume-store.ts, the default) or a Cloud Storage bucket shared by a fleet (gcs-store.ts,
 * WORKSPACE_STORE=gcs). A sandbox knows only this interface. Every call is bounded in time.
 */
export interface WorkspaceStore {
  /**
   * The Docker volume a new sandbox of the user mounts at STORE_DIR (created if needed), or null:
   * the sandbox's own anonymous volume, filled from load().
   */
  volumeFor(userId: string): Promise<string | null>;
  /**
   * The snapshot a new sandbox of the user puts into STORE_DIR before it starts (its entry script
   * restores it from there). Rejects with WorkspaceStoreError when the store cannot be read.
   */
  load(userId: string): Promise<StoredWorkspace>;
  /**
   * Keeps a snapshot over `generation` (what the sandbox restored or last saved); `put` writes it
   * into the sandbox itself. Returns the new generation, or `conflict` when the store holds a newer
   * snapshot (another runner saved meanwhile; nothing is written). Bounded by `timeoutMs` and
   * `signal`; rejects on any other failure.
   */
  save(
    userId: string,
    snapshot: Snapshot,
    generation: number,
    put: PutSnapshot,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<number | 'conflict'>;
  /** Deletes the user's workspace; false when there was none. */
  delete(userId: string): Promise<boolean>;
}
