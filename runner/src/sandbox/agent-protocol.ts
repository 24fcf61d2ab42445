import { z } from 'zod';

/**
 * The contract between the runner and an agent image.
 *
 * stdin: one line of JSON (AgentRequest) per run. stdin stays open between runs: the agent
 * answers each line and then waits for the next (a warm sandbox serves many runs); EOF ends it.
 * stdout: newline-delimited JSON events; a `result` event ends the answer to one request.
 */
export interface AgentRequest {
  protocol: 1;
  runId: string;
  userId: string;
  conversationId: string;
  message: string;
  history: HistoryEntry[];
}

export const historyEntrySchema = z.object({
  role: z.enum(['user', 'agent']),
  text: z.string().max(100_000),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

const MAX_COMPONENT_JSON = 64 * 1024;

/** A UI component the agent wants shown; its `type` names an entry of the component vocabulary. */
export const componentSchema = z
  .looseObject({ type: z.string().min(1).max(64) })
  .refine((c) => JSON.stringify(c).length <= MAX_COMPONENT_JSON, {
    message: `component is larger than ${MAX_COMPONENT_JSON} bytes of JSON`,
  });
export type AgentComponent = z.infer<typeof componentSchema>;

/** An agent the agent created (what clients show as "agent created"). */
export const createdAgentSchema = z.object({
  name: z.string().min(1).max(100),
  description: z.string().max(1000),
  instructions: z.string().max(20_000),
});
export type CreatedAgent = z.infer<typeof createdAgentSchema>;

export const textEventSchema = z.object({
  type: z.literal('text'),
  delta: z.string().max(1_000_000),
});

export const resultEventSchema = z.object({
  type: z.literal('result'),
  text: z.string().max(1_000_000),
  status: z.enum(['ok', 'error']).optional(),
  component: componentSchema.nullable().optional(),
  agent: createdAgentSchema.nullable().optional(),
  /** False when the run cannot have changed /workspace (no code ran): no save needed. */
  workspaceChanged: z.boolean().optional(),
});
export type ResultEvent = z.infer<typeof resultEventSchema>;

export const agentEventSchema = z.discriminatedUnion('type', [textEventSchema, resultEventSchema]);
export type AgentEvent = z.infer<typeof agentEventSchema>;

/** Parses one stdout line; returns an error message instead of throwing. */
export function parseAgentLine(line: string): { event: AgentEvent } | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { error: 'agent wrote a line that is not JSON' };
  }
  const parsed = agentEventSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    return { error: `agent wrote an invalid event${where}: ${issue?.message ?? 'unknown'}` };
  }
  return { event: parsed.data };
}
