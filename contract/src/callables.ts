import { z } from 'zod';
import { storedComponentSchema } from './agent-protocol.ts';
import { idSchema, requestIdSchema } from './ids.ts';
import {
  CONVERSATIONS_PAGE_DEFAULT,
  CURSOR_MAX_CHARS,
  MESSAGES_PAGE_DEFAULT,
  PAGE_MAX,
  REPLY_MAX_CHARS,
} from './limits.ts';
import { runStatusSchema } from './run.ts';

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

/** sendMessage({conversationId?, message, requestId?}); the message cap is the functions' param. */
export function sendMessageInputSchema(maxMessageChars: number) {
  return z.object({
    conversationId: idSchema.optional(),
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
  conversationId: idSchema,
  createdAt: z.string().nullable(),
});
export type AgentView = z.infer<typeof agentViewSchema>;
export const listAgentsOutputSchema = z.object({ agents: z.array(agentViewSchema) });
export type ListAgentsOutput = z.infer<typeof listAgentsOutputSchema>;

export const warmSandboxOutputSchema = z.object({ warm: z.boolean(), created: z.boolean() });
export type WarmSandboxOutput = z.infer<typeof warmSandboxOutputSchema>;
