import { z } from 'zod';

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

/**
 * What docs/configuration.md says of a setting (scripts/config-docs.ts): a one-line description,
 * or that and its default in words when the default is not a constant.
 */
export type SettingDoc = string | { description: string; defaultText: string };

/** An integer setting from its env string, within [min, max]. */
export const envInt = (min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);

/** A boolean setting: true, false, 1 or 0. */
export const envBool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** A comma-separated list setting; blanks dropped. */
export const envList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0),
);
