import {
  FILE_MAX_BYTES,
  FILE_OPS_PER_MINUTE,
  type DownloadFileOutput,
  type FilesList,
  type UploadFileOutput,
} from '@agent-platform/contract';
import { takeUserWindow } from '../admission/user-window.ts';
import type { Store } from '../firestore/store.ts';
import { InvalidInputError } from '../errors.ts';
import type { RunnerClient } from '../runner/runner-client.ts';

/**
 * The files API (issue 11): the caller's workspace files, through the runner, which works in the
 * user's own sandbox (runner/src/runs/files.ts). Each call counts against the user's window of
 * FILE_OPS_PER_MINUTE (each one may start a sandbox) and marks the user active (the workspace
 * expiry counts from the last activity).
 */
export class FilesService {
  readonly #store: Store;
  readonly #runner: RunnerClient;

  constructor(store: Store, runner: RunnerClient) {
    this.#store = store;
    this.#runner = runner;
  }

  async #take(uid: string): Promise<void> {
    await this.#store.steps.step(
      takeUserWindow(this.#store.db, uid, 'fileOpsRate', FILE_OPS_PER_MINUTE, 'file operations'),
      'counting a file operation',
    );
  }

  async list(uid: string): Promise<FilesList> {
    await this.#take(uid);
    return this.#runner.listFiles(uid);
  }

  async read(uid: string, path: string): Promise<Buffer> {
    await this.#take(uid);
    return this.#runner.readFile(uid, path);
  }

  async download(uid: string, path: string): Promise<DownloadFileOutput> {
    const data = await this.read(uid, path);
    return { path, size: data.length, contentBase64: data.toString('base64') };
  }

  async write(uid: string, path: string, data: Buffer): Promise<UploadFileOutput> {
    if (data.length > FILE_MAX_BYTES) {
      throw new InvalidInputError(`a file may have at most ${FILE_MAX_BYTES} bytes`, 'contentBase64');
    }
    await this.#take(uid);
    await this.#runner.writeFile(uid, path, data);
    return { path, size: data.length };
  }

  async remove(uid: string, path: string): Promise<{ deleted: boolean }> {
    await this.#take(uid);
    await this.#runner.deleteFile(uid, path);
    return { deleted: true };
  }
}
