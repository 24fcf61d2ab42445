import type { CollectionReference } from 'firebase-admin/firestore';
import { AGENTS_LIST_MAX } from '@agent-platform/contract';
import type { DbSteps } from '../firestore/db-steps.ts';

/**
 * Whether the user may have one more agent: at most AGENTS_LIST_MAX, made by hand (createAgent)
 * or by a run (create_agent), so that the list shows them all. A count, not a transaction: two
 * creations at once may both pass, which the list's bound tolerates.
 */
export async function roomForAgent(steps: DbSteps, agents: CollectionReference): Promise<boolean> {
  const held = await steps.step(agents.count().get(), 'counting agents');
  return held.data().count < AGENTS_LIST_MAX;
}
