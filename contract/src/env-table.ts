import type { z } from 'zod';

/**
 * Parses a table of environment settings (the runner's and the functions' config tables): empty
 * values mean "unset" (so `FOO= npm start` falls back to the default), every bad variable is
 * named with why, and the values of `hidden` variables (secrets) are never echoed.
 */
export function parseEnvTable<S extends z.ZodObject>(
  schema: S,
  env: Record<string, string | undefined>,
  hidden: readonly string[] = [],
): { ok: true; data: z.infer<S> } | { ok: false; problems: string[] } {
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') cleaned[key] = value.trim();
  }
  const parsed = schema.safeParse(cleaned);
  if (parsed.success) return { ok: true, data: parsed.data };
  return {
    ok: false,
    problems: parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? '?');
      const shown = hidden.includes(key) ? '(hidden)' : JSON.stringify(cleaned[key]);
      return `${key}=${shown}: ${i.message}`;
    }),
  };
}
