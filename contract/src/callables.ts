import { z } from 'zod';
import { agentToolSchema, modelNameSchema, storedComponentSchema } from './agent-protocol.ts';
import { idSchema, requestIdSchema } from './ids.ts';
import {
  AGENT_DESCRIPTION_MAX_CHARS,
  AGENT_INSTRUCTIONS_MAX_CHARS,
  AGENT_NAME_MAX_CHARS,
  CONVERSATIONS_PAGE_DEFAULT,
  FILE_MAX_BYTES,
  CURSOR_MAX_CHARS,
  MESSAGES_PAGE_DEFAULT,
  PAGE_MAX,
  REPLY_MAX_CHARS,
} from './limits.ts';
import { AGENT_TOOLS } from './protocol.ts';
import {
  filePathSchema,
  modelsResponseSchema,
  modelUsageSchema,
  runStatusSchema,
  type ModelsResponse,
} from './run.ts';

/**
 * The callables' inputs and outputs (the REST API takes and answers the same bodies). Inputs are
 * schemas the functions parse; outputs are schemas clients may parse and the types both share.
 */
const cursorSchema = z.string({ error: 'must be a string' }).max(CURSOR_MAX_CHARS, 'is too long');
const pageSize = (max: number) =>
  z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(max, `must be at most ${max}`);

/**
 * sendMessage({conversationId?, agentId?, message, requestId?}); the message cap is the functions'
 * param. agentId starts a conversation with one of the user's agents (a conversation remembers
 * its agent; naming another one in it is refused).
 */
export function sendMessageInputSchema(maxMessageChars: number) {
  return z.object({
    conversationId: idSchema.optional(),
    agentId: idSchema.optional(),
    message: z
      .string({ error: 'must be a string' })
      .refine((m) => m.trim().length > 0, 'must not be empty')
      .refine((m) => m.length <= maxMessageChars, `must be at most ${maxMessageChars} characters`),
    requestId: requestIdSchema.optional(),
  });
}
export type SendMessageInput = z.infer<ReturnType<typeof sendMessageInputSchema>>;

/** What sendMessage returns (and what a retry with the same requestId returns again). */
export const sendResultSchema = z.object({
  conversationId: idSchema,
  messageId: idSchema,
  text: z.string().max(REPLY_MAX_CHARS),
  status: runStatusSchema,
  component: storedComponentSchema.nullable(),
  agentCreated: z.boolean(),
  agentId: idSchema.nullable(),
  /** What the run's model calls used (absent in results stored before usage existed). */
  usage: modelUsageSchema.optional(),
});
export type SendResult = z.infer<typeof sendResultSchema>;

/** What sendMessage streams to `.stream()` callers before its result (REST: SSE `delta`). */
export const textChunkSchema = z.object({ type: z.literal('text'), delta: z.string() });
export type TextChunk = z.infer<typeof textChunkSchema>;

export const listConversationsInputSchema = z.object({
  limit: pageSize(PAGE_MAX).default(CONVERSATIONS_PAGE_DEFAULT),
  cursor: cursorSchema.optional(),
});
export type ListConversationsInput = z.infer<typeof listConversationsInputSchema>;

export const conversationSummarySchema = z.object({
  id: idSchema,
  title: z.string(),
  createdAt: z.string().nullable(),
  updatedAt: z.string().nullable(),
  messageCount: z.number().int(),
  lastMessagePreview: z.string(),
  /** The user's agent the conversation is with (null: the platform's default agent). */
  agentId: idSchema.nullable(),
});
export type ConversationSummary = z.infer<typeof conversationSummarySchema>;

export const listConversationsOutputSchema = z.object({
  conversations: z.array(conversationSummarySchema),
  nextCursor: z.string().nullable(),
});
export type ListConversationsOutput = z.infer<typeof listConversationsOutputSchema>;

export const getConversationInputSchema = z.object({
  conversationId: idSchema,
  limit: pageSize(PAGE_MAX).default(MESSAGES_PAGE_DEFAULT),
  cursor: cursorSchema.optional(),
});
export type GetConversationInput = z.infer<typeof getConversationInputSchema>;

export const messageViewSchema = z.object({
  id: idSchema,
  role: z.enum(['user', 'agent']),
  text: z.string(),
  status: z.string(),
  component: storedComponentSchema.nullable(),
  runId: z.string().nullable(),
  createdAt: z.string().nullable(),
  /** An agent message: what its run's model calls used. */
  usage: modelUsageSchema.nullable(),
});
export type MessageView = z.infer<typeof messageViewSchema>;

export const getConversationOutputSchema = z.object({
  conversation: conversationSummarySchema.omit({ lastMessagePreview: true }),
  messages: z.array(messageViewSchema),
  nextCursor: z.string().nullable(),
});
export type GetConversationOutput = z.infer<typeof getConversationOutputSchema>;

export const conversationIdInputSchema = z.object({ conversationId: idSchema });
export type ConversationIdInput = z.infer<typeof conversationIdInputSchema>;
export const deletedOutputSchema = z.object({ deleted: z.boolean() });
export type DeletedOutput = z.infer<typeof deletedOutputSchema>;

/** Callables without input accept nothing, null or `{}`, and nothing else. */
export const emptyInputSchema = z.strictObject({}).optional();

export const agentViewSchema = z.object({
  id: idSchema,
  name: z.string(),
  description: z.string(),
  instructions: z.string(),
  /** The model the agent uses (null: the platform's default). */
  model: z.string().nullable(),
  tools: z.array(agentToolSchema),
  /** The conversation whose run created it (null: created with createAgent). */
  conversationId: idSchema.nullable(),
  createdAt: z.string().nullable(),
  updatedAt: z.string().nullable(),
});
export type AgentView = z.infer<typeof agentViewSchema>;
export const listAgentsOutputSchema = z.object({ agents: z.array(agentViewSchema) });
export type ListAgentsOutput = z.infer<typeof listAgentsOutputSchema>;

const agentName = z
  .string({ error: 'must be a string' })
  .trim()
  .min(1, 'must not be empty')
  .max(AGENT_NAME_MAX_CHARS, `must be at most ${AGENT_NAME_MAX_CHARS} characters`);
const agentDescription = z
  .string({ error: 'must be a string' })
  .max(AGENT_DESCRIPTION_MAX_CHARS, `must be at most ${AGENT_DESCRIPTION_MAX_CHARS} characters`);
const agentInstructions = z
  .string({ error: 'must be a string' })
  .max(AGENT_INSTRUCTIONS_MAX_CHARS, `must be at most ${AGENT_INSTRUCTIONS_MAX_CHARS} characters`);
const agentTools = z
  .array(agentToolSchema, { error: 'must be a list of tools' })
  .max(AGENT_TOOLS.length, `must list at most ${AGENT_TOOLS.length} tools`)
  .refine((t) => new Set(t).size === t.length, 'must not repeat a tool');

/** createAgent: model null (or absent) means the platform's default; tools default to all. */
export const createAgentInputSchema = z.strictObject({
  name: agentName,
  description: agentDescription.default(''),
  instructions: agentInstructions.default(''),
  model: modelNameSchema.nullable().default(null),
  tools: agentTools.default([...AGENT_TOOLS]),
});
export type CreateAgentInput = z.infer<typeof createAgentInputSchema>;

/** updateAgent: the fields given replace the stored ones. */
export const updateAgentInputSchema = z.strictObject({
  agentId: idSchema,
  name: agentName.optional(),
  description: agentDescription.optional(),
  instructions: agentInstructions.optional(),
  model: modelNameSchema.nullable().optional(),
  tools: agentTools.optional(),
});
export type UpdateAgentInput = z.infer<typeof updateAgentInputSchema>;

export const agentIdInputSchema = z.strictObject({ agentId: idSchema });
export type AgentIdInput = z.infer<typeof agentIdInputSchema>;
export const agentOutputSchema = z.object({ agent: agentViewSchema });
export type AgentOutput = z.infer<typeof agentOutputSchema>;

/** downloadFile, deleteFile: a path of the caller's workspace. */
export const filePathInputSchema = z.strictObject({ path: filePathSchema });
export type FilePathInput = z.infer<typeof filePathInputSchema>;
/** uploadFile: the content as base64 (FILE_MAX_BYTES once decoded). */
export const uploadFileInputSchema = z.strictObject({
  path: filePathSchema,
  contentBase64: z
    .string({ error: 'must be a string' })
    .max(Math.ceil(FILE_MAX_BYTES / 3) * 4, `must decode to at most ${FILE_MAX_BYTES} bytes`)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'),
});
export type UploadFileInput = z.infer<typeof uploadFileInputSchema>;
export const downloadFileOutputSchema = z.object({
  path: z.string(),
  size: z.number().int().nonnegative(),
  contentBase64: z.string(),
});
export type DownloadFileOutput = z.infer<typeof downloadFileOutputSchema>;
export const uploadFileOutputSchema = z.object({ path: z.string(), size: z.number().int().nonnegative() });
export type UploadFileOutput = z.infer<typeof uploadFileOutputSchema>;

/** listModels: what createAgent and updateAgent accept as `model` (the runner's GET /v1/models). */
export const listModelsOutputSchema = modelsResponseSchema;
export type ListModelsOutput = ModelsResponse;

/** getUsage: what the user's model calls used today (UTC) against their daily budget. */
export const usageOutputSchema = z.object({
  day: z.string(),
  calls: z.number().int().nonnegative(),
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  tokensPerDay: z.number().int().nonnegative(),
});
export type UsageOutput = z.infer<typeof usageOutputSchema>;

export const warmSandboxOutputSchema = z.object({ warm: z.boolean(), created: z.boolean() });
export type WarmSandboxOutput = z.infer<typeof warmSandboxOutputSchema>;
