import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import { workspaceLabels } from './labels.ts';

/**
 * Each user's persistent workspace is one Docker volume holding a tar snapshot of their
 * /workspace. The volume name is derived from the runner id and user id by hashing, so no user
 * id can name another user's volume and odd characters never reach Docker.
 */
export class Workspaces {
  readonly #docker: Docker;
  readonly #runnerId: string;
  /** Volumes known to exist, so warm paths skip a Docker call. */
  readonly #known = new Set<string>();

  constructor(docker: Docker, runnerId: string) {
    this.#docker = docker;
    this.#runnerId = runnerId;
  }

  volumeName(userId: string): string {
    const digest = createHash('sha256').update(`${this.#runnerId}\0${userId}`).digest('hex');
    return `agent-workspace-${digest.slice(0, 40)}`;
  }

  /** Creates the user's volume if needed (Docker's create is idempotent for a name). */
  async ensure(userId: string): Promise<string> {
    const name = this.volumeName(userId);
    if (this.#known.has(name)) return name;
    await this.#docker.createVolume({ Name: name, Labels: workspaceLabels(this.#runnerId, userId) });
    this.#known.add(name);
    return name;
  }

  /** Deletes the user's volume; returns false if there was none. The caller holds the user's lane. */
  async remove(userId: string): Promise<boolean> {
    const name = this.volumeName(userId);
    this.#known.delete(name);
    try {
      await this.#docker.getVolume(name).remove();
      return true;
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw err;
    }
  }
}

export function statusCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'statusCode' in err) {
    const code = (err as { statusCode: unknown }).statusCode;
    return typeof code === 'number' ? code : undefined;
  }
  return undefined;
}
