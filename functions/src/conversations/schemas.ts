import { z } from 'zod';
import { InvalidInputError } from '../errors.ts';

export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const id = z.string({ error: 'must be a string' }).regex(ID_PATTERN, 'must be 1-128 of [A-Za-z0-9_-]');
const cursor = z.string({ error: 'must be a string' }).max(200, 'is too long');
const pageSize = (max: number) =>
  z
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(max, `must be at most ${max}`);

export const MAX_PAGE = 100;

export function sendMessageSchema(maxMessageChars: number) {
  return z.object({
    conversationId: id.optional(),
    message: z
      .string({ error: 'must be a string' })
      .refine((m) => m.trim().length > 0, 'must not be empty')
      .refine((m) => m.length <= maxMessageChars, `must be at most ${maxMessageChars} characters`),
    requestId: z
      .string({ error: 'must be a string' })
      .regex(/^[A-Za-z0-9_-]{8,128}$/, 'must be 8-128 of [A-Za-z0-9_-]')
      .optional(),
  });
}
export type SendMessageInput = z.infer<ReturnType<typeof sendMessageSchema>>;

export const listConversationsSchema = z.object({
  limit: pageSize(MAX_PAGE).default(20),
  cursor: cursor.optional(),
});

export const getConversationSchema = z.object({
  conversationId: id,
  limit: pageSize(MAX_PAGE).default(50),
  cursor: cursor.optional(),
});

export const conversationIdSchema = z.object({ conversationId: id });
export const emptySchema = z.strictObject({}).optional();

/** Parses client input or throws InvalidInputError naming the field. */
export function parseInput<T>(schema: z.ZodType<T>, data: unknown): T {
  const parsed = schema.safeParse(data ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.map(String).join('.') ?? '';
  if (!field) throw new InvalidInputError(`the request must be an object: ${issue?.message ?? 'invalid'}`);
  throw new InvalidInputError(`${field}: ${issue?.message ?? 'invalid'}`, field);
}
