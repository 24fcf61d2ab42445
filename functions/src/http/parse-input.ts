import type { z } from 'zod';
import { InvalidInputError } from '../errors.ts';

/**
 * Parses client input with a schema of the contract (@agent-platform/contract: the callables'
 * and REST bodies are declared there) or throws InvalidInputError naming the field.
 */
export function parseInput<T>(schema: z.ZodType<T>, data: unknown): T {
  const parsed = schema.safeParse(data ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.map(String).join('.') ?? '';
  if (!field) throw new InvalidInputError(`the request must be an object: ${issue?.message ?? 'invalid'}`);
  throw new InvalidInputError(`${field}: ${issue?.message ?? 'invalid'}`, field);
}
