import type { Firestore } from 'firebase-admin/firestore';
import { COLLECTIONS, PENDING_LEASE_MS } from '@agent-platform/contract';
import { AgentService } from './agents/agent-service.ts';
import type { FunctionsConfig } from './config.ts';
import { ConversationService } from './conversations/conversation-service.ts';
import { FilesService } from './files/files-service.ts';
import { DbSteps } from './firestore/db-steps.ts';
import { userRef } from './firestore/refs.ts';
import type { Store } from './firestore/store.ts';
import type { Logger } from './logs.ts';
import type { RunnerClient } from './runner/runner-client.ts';
import { recentMessages } from './send/history.ts';
import { LeaseSweep } from './send/lease-sweep.ts';
import { MessageLedger } from './send/message-ledger.ts';
import { MessageSender } from './send/message-sender.ts';
import type { ReserveLimits } from './send/reservation.ts';
import { runnerTurn } from './send/run-turn.ts';
import { WorkspaceService } from './workspaces/workspace-service.ts';

/** The limits the services apply: the configuration's (config.ts holds their defaults). */
export type ServiceLimits = ReserveLimits;

/** The services' limits of a configuration; a message's lease is PENDING_LEASE_MS. */
export function serviceLimits(cfg: FunctionsConfig): ServiceLimits {
  return {
    messagesPerMinute: cfg.messagesPerMinute,
    ipMessagesPerMinute: cfg.ipMessagesPerMinute,
    maxConcurrentPerUser: cfg.maxConcurrentPerUser,
    tokensPerRun: cfg.tokensPerRun,
    tokensPerUserPerDay: cfg.tokensPerUserPerDay,
    runTimeoutMs: cfg.runTimeoutMs,
    pendingLeaseMs: PENDING_LEASE_MS,
  };
}

/** Everything the functions do, by feature, on one Firestore client and one runner client. */
export interface Services {
  send: MessageSender;
  conversations: ConversationService;
  agents: AgentService;
  files: FilesService;
  workspaces: WorkspaceService;
  sweep: LeaseSweep;
}

export function createServices(
  db: Firestore,
  runner: RunnerClient,
  limits: ServiceLimits,
  log: Logger,
): Services {
  const steps = new DbSteps(log);
  const store: Store = { db, steps, log };
  return {
    send: new MessageSender({
      ledger: new MessageLedger(store, limits),
      runTurn: runnerTurn(runner, limits.runTimeoutMs),
      recentMessages: (uid, conversationId) =>
        steps.step(
          recentMessages(
            steps,
            uid,
            userRef(db, uid).collection(COLLECTIONS.conversations).doc(conversationId),
          ),
          'reading the history',
        ),
      log,
    }),
    conversations: new ConversationService(db, steps),
    agents: new AgentService(db, runner, steps, limits),
    files: new FilesService(store, runner),
    workspaces: new WorkspaceService(store, runner),
    sweep: new LeaseSweep(store),
  };
}
