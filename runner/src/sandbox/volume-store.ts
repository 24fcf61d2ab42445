import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import { WorkspacesFullError } from '../errors.ts';
import type { DeadlineCall } from './deadline.ts';
import { statusCode } from './docker-status.ts';
import { LABEL_KIND, LABEL_MANAGED_BY, LABEL_RUNNER_ID, MANAGED_BY, workspaceLabels } from './labels.ts';
import type { PutSnapshot, Snapshot, StoredWorkspace, WorkspaceStore } from './workspace-store.ts';

/** A volume holds its snapshot already: nothing to put into a new sandbox. */
const NOTHING_TO_RESTORE: StoredWorkspace = { data: null, generation: 0 };

/**
 * Each user's persistent workspace is one Docker volume of this runner holding a tar snapshot of
 * their /workspace, mounted at the sandbox's STORE_DIR (the default WORKSPACE_STORE). The volume
 * name is derived from the runner id and user id by hashing, so no user id can name another
 * user's volume and odd characters never reach Docker. A save is the sandbox's own putArchive:
 * the Docker daemon writes the file into the volume, the runner never touches a host path.
 */
export class VolumeWorkspaceStore implements WorkspaceStore {
  readonly #docker: Docker;
  readonly #runnerId: string;
  /** Workspaces this runner may hold at most (its disk budget over the largest snapshot). */
  readonly #maxCount: number;
  readonly #call: DeadlineCall;
  /** Volumes known to exist, so warm paths skip a Docker call. */
  readonly #known = new Set<string>();
  /** Every workspace volume of this runner (listed once, then kept up to date). */
  #all: Promise<Set<string>> | null = null;

  constructor(docker: Docker, runnerId: string, maxCount: number, call: DeadlineCall) {
    this.#docker = docker;
    this.#runnerId = runnerId;
    this.#maxCount = maxCount;
    this.#call = call;
  }

  #volumeName(userId: string): string {
    const digest = createHash('sha256').update(`${this.#runnerId}\0${userId}`).digest('hex');
    return `agent-workspace-${digest.slice(0, 40)}`;
  }

  volumeFor(userId: string): Promise<string> {
    return this.#call(this.#ensure(userId), 'creating a workspace volume');
  }

  load(): Promise<StoredWorkspace> {
    return Promise.resolve(NOTHING_TO_RESTORE);
  }

  async save(
    _userId: string,
    snapshot: Snapshot,
    _generation: number,
    put: PutSnapshot,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<number> {
    await put(snapshot, timeoutMs, signal);
    return 0;
  }

  delete(userId: string): Promise<boolean> {
    return this.#call(this.#remove(userId), 'removing a workspace volume');
  }

  #list(): Promise<Set<string>> {
    this.#all ??= this.#docker
      .listVolumes({
        filters: {
          label: [
            `${LABEL_MANAGED_BY}=${MANAGED_BY}`,
            `${LABEL_RUNNER_ID}=${this.#runnerId}`,
            `${LABEL_KIND}=workspace`,
          ],
        },
      })
      .then((r) => new Set((r.Volumes ?? []).map((v) => v.Name)))
      .catch((err: unknown) => {
        this.#all = null; // ask again next time
        throw err;
      });
    return this.#all;
  }

  /**
   * Creates the user's volume if needed (Docker's create is idempotent for a name). A new one is
   * refused with WorkspacesFullError once the runner holds its budget of workspaces, before the
   * disk, and so Docker, fails for everyone.
   */
  async #ensure(userId: string): Promise<string> {
    const name = this.#volumeName(userId);
    if (this.#known.has(name)) return name;
    const all = await this.#list();
    if (!all.has(name) && all.size >= this.#maxCount) throw new WorkspacesFullError(this.#maxCount);
    await this.#docker.createVolume({ Name: name, Labels: workspaceLabels(this.#runnerId, userId) });
    all.add(name);
    this.#known.add(name);
    return name;
  }

  /** Deletes the user's volume; returns false if there was none. The caller holds the user's lane. */
  async #remove(userId: string): Promise<boolean> {
    const name = this.#volumeName(userId);
    this.#known.delete(name);
    try {
      await this.#docker.getVolume(name).remove();
      void this.#all?.then((all) => all.delete(name)).catch(() => undefined);
      return true;
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw err;
    }
  }
}
