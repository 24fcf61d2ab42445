import { FieldValue, Timestamp } from 'firebase-admin/firestore';
import { COLLECTIONS, SANDBOX_OPS_PER_MINUTE, userDocSchema } from '@agent-platform/contract';
import { takeUserWindow } from '../admission/user-window.ts';
import { claimEach } from '../firestore/claim-each.ts';
import { userRef } from '../firestore/refs.ts';
import type { Store } from '../firestore/store.ts';
import type { RunnerClient } from '../runner/runner-client.ts';

/**
 * A user's workspace on the runner (its Docker volume, and a warm sandbox): warmed ahead of a
 * message, deleted on request, after WORKSPACE_IDLE_DAYS without activity, and with the account.
 */
export class WorkspaceService {
  readonly #store: Store;
  readonly #runner: RunnerClient;

  constructor(store: Store, runner: RunnerClient) {
    this.#store = store;
    this.#runner = runner;
  }

  /** Warms the caller's sandbox (e.g. when a client opens a conversation), so the reply is fast. */
  async warmSandbox(uid: string): Promise<{ warm: boolean; created: boolean }> {
    await this.#takeSandboxOp(uid);
    return this.#runner.warm(uid);
  }

  async deleteWorkspace(uid: string): Promise<{ deleted: boolean }> {
    await this.#takeSandboxOp(uid);
    return { deleted: await this.#runner.deleteWorkspace(uid) };
  }

  /**
   * Removes everything kept for a deleted account: the workspace on the runner first (so no run
   * of theirs can write it back), then all their documents. Each failure is logged and thrown.
   */
  async deleteUserData(uid: string): Promise<void> {
    const t0 = performance.now();
    try {
      const deletedWorkspace = await this.#runner.deleteWorkspace(uid);
      await this.#store.db.recursiveDelete(userRef(this.#store.db, uid));
      this.#store.log.userDataDeleted(uid, deletedWorkspace, Math.round(performance.now() - t0));
    } catch (err) {
      this.#store.log.userDataNotDeleted(uid, err);
      throw err;
    }
  }

  /**
   * Deletes the workspaces of users without activity (a message, a warm-up) since `cutoffMs`: at
   * most `limit` a call. Each user is first marked inactive in a transaction that checks the
   * activity again (a message arriving meanwhile keeps the workspace), then the runner deletes
   * the workspace. Returns how many were deleted.
   */
  expireIdleWorkspaces(cutoffMs: number, limit = 100): Promise<number> {
    return claimEach(
      this.#store.db,
      this.#store.steps,
      this.#store.db
        .collection(COLLECTIONS.users)
        .where('workspaceActive', '==', true)
        .where('lastActiveAt', '<', Timestamp.fromMillis(cutoffMs))
        .limit(limit),
      {
        query: 'querying idle workspaces',
        claim: 'marking a workspace expired',
        take: async (tx, d) => {
          const fresh = this.#store.steps.read(d.id, userDocSchema, await tx.get(d.ref));
          const last = fresh?.lastActiveAt?.toMillis() ?? 0;
          if (!fresh?.workspaceActive || last >= cutoffMs) return false;
          tx.update(d.ref, { workspaceActive: false, workspaceExpiredAt: FieldValue.serverTimestamp() });
          return true;
        },
        then: async (d) => {
          await this.#runner.deleteWorkspace(d.id);
          this.#store.log.workspaceExpired(d.id);
        },
      },
    );
  }

  /**
   * warmSandbox and deleteWorkspace each cost the runner a container or a volume: they share a
   * per-user window of SANDBOX_OPS_PER_MINUTE (the web client warms about once a minute).
   */
  async #takeSandboxOp(uid: string): Promise<void> {
    await this.#store.steps.step(
      takeUserWindow(
        this.#store.db,
        uid,
        'sandboxOpsRate',
        SANDBOX_OPS_PER_MINUTE,
        'sandbox warm-ups and workspace deletions',
      ),
      'counting a sandbox operation',
    );
  }
}
