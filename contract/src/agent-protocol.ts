import { z } from 'zod';
import { idSchema, runIdSchema } from './ids.ts';
import {
  AGENT_PROTOCOL_VERSION,
  AGENT_TOOLS,
  MODEL_NAME_MAX_CHARS,
  MODEL_PATHS,
  MODEL_REQUEST_MAX_BYTES,
  componentJsonSize,
} from './protocol.ts';
import {
  AGENT_DESCRIPTION_MAX_CHARS,
  AGENT_INSTRUCTIONS_MAX_CHARS,
  AGENT_NAME_MAX_CHARS,
  BUTTONS_MAX,
  COMPONENT_MAX_JSON_BYTES,
  COMPONENT_TYPE_MAX_CHARS,
  HISTORY_ENTRY_MAX_CHARS,
  HISTORY_MAX_ENTRIES,
  MESSAGE_MAX_CHARS,
  REPLY_MAX_CHARS,
  TABLE_MAX_COLUMNS,
  TABLE_MAX_ROWS,
} from './limits.ts';

/**
 * The contract between the runner and an agent image.
 *
 * stdin: one line of JSON (AgentRequest) per run. stdin stays open between runs: the agent
 * answers each line and then waits for the next (a warm sandbox serves many runs); EOF ends it.
 * stdout: newline-delimited JSON events; a `result` event ends the answer to one request.
 */
export const historyEntrySchema = z.object({
  role: z.enum(['user', 'agent']),
  text: z.string().max(HISTORY_ENTRY_MAX_CHARS),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;
export const historySchema = z.array(historyEntrySchema).max(HISTORY_MAX_ENTRIES);

export const agentToolSchema = z.enum(AGENT_TOOLS, { error: `must be one of ${AGENT_TOOLS.join(', ')}` });
export const modelNameSchema = z
  .string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .max(MODEL_NAME_MAX_CHARS, `must be at most ${MODEL_NAME_MAX_CHARS} characters`);

/** The agent a run speaks as: a user's agent (its instructions and the tools it may use). */
export const runAgentSchema = z.object({
  name: z.string().min(1).max(AGENT_NAME_MAX_CHARS),
  instructions: z.string().max(AGENT_INSTRUCTIONS_MAX_CHARS),
  tools: z.array(agentToolSchema).max(AGENT_TOOLS.length),
});
export type RunAgent = z.infer<typeof runAgentSchema>;

/** One request line on the agent's stdin. */
export const agentRequestSchema = z.object({
  protocol: z.literal(AGENT_PROTOCOL_VERSION),
  runId: runIdSchema,
  userId: idSchema,
  conversationId: idSchema,
  message: z.string().max(MESSAGE_MAX_CHARS),
  history: historySchema,
  /**
   * The model the agent should use through the gateway; null: no provider is configured (the
   * reference agent then answers offline, as it always did).
   */
  model: modelNameSchema.nullable(),
  /** The user's agent this run speaks as; null: the platform's default agent. */
  agent: runAgentSchema.nullable(),
});
export type AgentRequest = z.infer<typeof agentRequestSchema>;

/**
 * The component vocabulary clients render and Firestore stores. Every shape is one Firestore
 * can hold (no arrays directly in arrays, no reserved names, bounded): a table's rows are objects
 * holding their cells (`rows: [{cells: [...]}]`; an array of arrays made Firestore refuse the
 * reply and left the message pending).
 */
export const cardComponentSchema = z.object({
  type: z.literal('card'),
  title: z.string(),
  body: z.string(),
});
export const tableComponentSchema = z.object({
  type: z.literal('table'),
  columns: z.array(z.string()).max(TABLE_MAX_COLUMNS),
  rows: z.array(z.object({ cells: z.array(z.string()).max(TABLE_MAX_COLUMNS) })).max(TABLE_MAX_ROWS),
});
export const buttonsComponentSchema = z.object({
  type: z.literal('buttons'),
  buttons: z
    .array(z.object({ label: z.string(), value: z.string() }))
    .min(1)
    .max(BUTTONS_MAX),
});
export type CardComponent = z.infer<typeof cardComponentSchema>;
export type TableComponent = z.infer<typeof tableComponentSchema>;
export type ButtonsComponent = z.infer<typeof buttonsComponentSchema>;
export type KnownComponent = CardComponent | TableComponent | ButtonsComponent;

/**
 * A component as the functions store it and clients receive it: one of the vocabulary, checked
 * before it is stored (an agent's other or malformed component is dropped with a note).
 */
export const storedComponentSchema = z
  .discriminatedUnion('type', [cardComponentSchema, tableComponentSchema, buttonsComponentSchema])
  .refine((c) => componentJsonSize(c) <= COMPONENT_MAX_JSON_BYTES, {
    message: `component is larger than ${COMPONENT_MAX_JSON_BYTES} bytes of JSON`,
  });
export type StoredComponent = z.infer<typeof storedComponentSchema>;

/**
 * A UI component as an agent may send it: any `type`, bounded in size (an agent image of someone
 * else's may speak more than the vocabulary; the functions keep only storedComponentSchema).
 */
export const componentSchema = z
  .looseObject({ type: z.string().min(1).max(COMPONENT_TYPE_MAX_CHARS) })
  .refine((c) => componentJsonSize(c) <= COMPONENT_MAX_JSON_BYTES, {
    message: `component is larger than ${COMPONENT_MAX_JSON_BYTES} bytes of JSON`,
  });
export type AgentComponent = z.infer<typeof componentSchema>;

/** An agent the agent created (what clients show as "agent created"). */
export const createdAgentSchema = z.object({
  name: z.string().min(1).max(AGENT_NAME_MAX_CHARS),
  description: z.string().max(AGENT_DESCRIPTION_MAX_CHARS),
  instructions: z.string().max(AGENT_INSTRUCTIONS_MAX_CHARS),
});
export type CreatedAgent = z.infer<typeof createdAgentSchema>;

export const textEventSchema = z.object({
  type: z.literal('text'),
  delta: z.string().max(REPLY_MAX_CHARS),
});
export type TextEvent = z.infer<typeof textEventSchema>;

export const resultEventSchema = z.object({
  type: z.literal('result'),
  text: z.string().max(REPLY_MAX_CHARS),
  status: z.enum(['ok', 'error']).optional(),
  component: componentSchema.nullable().optional(),
  agent: createdAgentSchema.nullable().optional(),
  /** False when the run cannot have changed /workspace (no code ran): no save needed. */
  workspaceChanged: z.boolean().optional(),
});
export type ResultEvent = z.infer<typeof resultEventSchema>;

/** A model request from code in the sandbox, through the agent's loopback gateway. */
export const modelRequestEventSchema = z.object({
  type: z.literal('model_request'),
  id: z.string().regex(/^[0-9a-z]{1,16}$/),
  method: z.enum(['GET', 'POST']),
  path: z.enum(MODEL_PATHS),
  body: z.string().max(MODEL_REQUEST_MAX_BYTES).nullable(),
});
export type ModelRequestEvent = z.infer<typeof modelRequestEventSchema>;

export const agentEventSchema = z.discriminatedUnion('type', [
  textEventSchema,
  resultEventSchema,
  modelRequestEventSchema,
]);
export type AgentEvent = z.infer<typeof agentEventSchema>;

/** Parses one stdout line of an agent; returns an error message instead of throwing. */
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
