import { FieldValue, type DocumentReference, type Firestore } from 'firebase-admin/firestore';
import {
  AGENTS_LIST_MAX,
  COLLECTIONS,
  agentDocSchema,
  usageDocSchema,
  userDocSchema,
  type AgentDoc,
  type AgentView,
  type CreateAgentInput,
  type ListModelsOutput,
  type UpdateAgentInput,
  type UsageOutput,
} from '@agent-platform/contract';
import { dailyTokenBudget } from '../admission/admission.ts';
import { AgentNotFoundError, InvalidInputError, RateLimitedError } from '../errors.ts';
import type { DbSteps } from '../firestore/db-steps.ts';
import { iso } from '../firestore/iso.ts';
import { usageDay, userRef } from '../firestore/refs.ts';
import type { RunnerClient } from '../runner/runner-client.ts';
import { roomForAgent } from './agent-cap.ts';

export function agentView(id: string, a: AgentDoc): AgentView {
  return {
    id,
    name: a.name,
    description: a.description,
    instructions: a.instructions,
    model: a.model,
    tools: a.tools,
    conversationId: a.conversationId,
    createdAt: iso(a.createdAt),
    updatedAt: iso(a.updatedAt ?? a.createdAt),
  };
}

/**
 * The agents a user creates (users/{uid}/agents/{aid}): name, description, instructions, model
 * (one the runner offers, or null for its default) and the tools it may use. A conversation
 * started with an agent runs every message with it (MessageSender.sendMessage). Also the
 * user's model usage against their daily token budget.
 */
export class AgentService {
  readonly #db: Firestore;
  readonly #runner: RunnerClient;
  readonly #steps: DbSteps;
  readonly #limits: { tokensPerUserPerDay: number };

  constructor(db: Firestore, runner: RunnerClient, steps: DbSteps, limits: { tokensPerUserPerDay: number }) {
    this.#db = db;
    this.#runner = runner;
    this.#steps = steps;
    this.#limits = limits;
  }

  #agents(uid: string) {
    return userRef(this.#db, uid).collection(COLLECTIONS.agents);
  }

  /** Refuses a model the runner does not offer (asks the runner: its allowlist is the truth). */
  async #checkModel(model: string | null | undefined): Promise<void> {
    if (model === null || model === undefined) return;
    const offered = await this.#runner.models();
    if (!offered.models.includes(model)) {
      throw new InvalidInputError(
        offered.models.length > 0
          ? `not offered here; choose one of ${offered.models.join(', ')} (or none for the default)`
          : 'this platform offers no model to choose; leave it empty',
        'model',
      );
    }
  }

  async listAgents(uid: string): Promise<{ agents: AgentView[] }> {
    const snap = await this.#steps.step(
      this.#agents(uid).orderBy('createdAt', 'desc').limit(AGENTS_LIST_MAX).get(),
      'listing agents',
    );
    return {
      agents: snap.docs.flatMap((d): AgentView[] => {
        const a = this.#steps.read(uid, agentDocSchema, d);
        return a ? [agentView(d.id, a)] : [];
      }),
    };
  }

  async createAgent(uid: string, input: CreateAgentInput): Promise<{ agent: AgentView }> {
    await this.#checkModel(input.model);
    if (!(await roomForAgent(this.#steps, this.#agents(uid)))) {
      throw new RateLimitedError(`a user may have at most ${AGENTS_LIST_MAX} agents; delete one first`, 60);
    }
    const ref = this.#agents(uid).doc();
    await this.#steps.step(
      ref.create({
        name: input.name,
        description: input.description,
        instructions: input.instructions,
        model: input.model,
        tools: input.tools,
        conversationId: null,
        runId: null,
        createdAt: FieldValue.serverTimestamp(),
        updatedAt: FieldValue.serverTimestamp(),
      }),
      'creating an agent',
    );
    return { agent: await this.#view(uid, ref) };
  }

  async updateAgent(uid: string, input: UpdateAgentInput): Promise<{ agent: AgentView }> {
    await this.#checkModel(input.model);
    const { agentId, ...fields } = input;
    const ref = this.#agents(uid).doc(agentId);
    await this.#steps.step(
      this.#db.runTransaction(async (tx) => {
        const snap = await tx.get(ref);
        if (!snap.exists || !this.#steps.read(uid, agentDocSchema, snap)) throw new AgentNotFoundError();
        const changes = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
        tx.update(ref, { ...changes, updatedAt: FieldValue.serverTimestamp() });
      }),
      'updating an agent',
    );
    return { agent: await this.#view(uid, ref) };
  }

  /** Conversations with the agent keep their messages; a new message in them is refused. */
  async deleteAgent(uid: string, agentId: string): Promise<{ deleted: boolean }> {
    const ref = this.#agents(uid).doc(agentId);
    const snap = await this.#steps.step(ref.get(), 'reading an agent');
    if (!snap.exists) throw new AgentNotFoundError();
    await this.#steps.step(ref.delete(), 'deleting an agent');
    return { deleted: true };
  }

  listModels(): Promise<ListModelsOutput> {
    return this.#runner.models();
  }

  /** Today's (UTC) model usage and the user's daily budget. */
  async getUsage(uid: string, nowMs = Date.now()): Promise<UsageOutput> {
    const user = userRef(this.#db, uid);
    const day = usageDay(nowMs);
    const [userSnap, usageSnap] = await this.#steps.step(
      Promise.all([user.get(), user.collection(COLLECTIONS.usage).doc(day).get()]),
      'reading the usage',
    );
    const userDoc = userSnap.exists ? this.#steps.read(uid, userDocSchema, userSnap) : null;
    const usage = usageDocSchema.parse(usageSnap.data() ?? {});
    return {
      day,
      calls: usage.calls,
      inputTokens: usage.inputTokens,
      outputTokens: usage.outputTokens,
      tokensPerDay: dailyTokenBudget(userDoc, this.#limits.tokensPerUserPerDay),
    };
  }

  async #view(uid: string, ref: DocumentReference): Promise<AgentView> {
    const snap = await this.#steps.step(ref.get(), 'reading an agent');
    const a = snap.exists ? this.#steps.read(uid, agentDocSchema, snap) : null;
    if (!a) throw new AgentNotFoundError();
    return agentView(ref.id, a);
  }
}
