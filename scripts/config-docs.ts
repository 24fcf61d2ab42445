/**
 * `npm run docs`: rewrites the generated tables of docs/configuration.md from the configuration
 * tables themselves (the env schema and its envDocs in runner/src/config.ts and in
 * functions/src/config.ts, and the functions' params in functions/src/params.ts), so the
 * reference cannot drift from what the code accepts. `npm run docs -- --check` writes nothing and
 * exits 1 when the checked-in file is stale (scripts/test.sh runs it after the lint step).
 *
 * The prose of docs/configuration.md is written by hand; each generated table sits between
 * `<!-- config-docs:NAME -->` and `<!-- /config-docs:NAME -->`, and only that part is replaced.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SettingDoc } from '@agent-platform/contract';
import { z } from 'zod';
import { envDocs as functionsEnvDocs, envSchema as functionsEnvSchema } from '../functions/src/config.ts';
import * as functionsParams from '../functions/src/params.ts';
import { envDocs as runnerEnvDocs, envSchema as runnerEnvSchema } from '../runner/src/config.ts';

export const CONFIG_DOC_PATH = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

/** One row of a generated table. */
export interface SettingRow {
  name: string;
  /** Markdown. */
  defaultText: string;
  /** Markdown: what values the setting takes. */
  accepts: string;
  description: string;
  /** Where the value comes from (functions only): a param, a param read at deploy, or the environment. */
  source?: string;
}

/** A firebase-functions param as params.ts exports it (StringParam, IntParam, BooleanParam). */
export interface ParamLike {
  name: string;
  options: { default?: unknown; description?: string };
}

/** Thrown when a table cannot be documented (a setting without a description, params that disagree). */
export class ConfigDocsError extends Error {
  override name = 'ConfigDocsError';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`cannot generate docs/configuration.md:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

const KiB = 1024;
const UNITS_BYTES: [number, string][] = [
  [KiB ** 4, 'TiB'],
  [KiB ** 3, 'GiB'],
  [KiB ** 2, 'MiB'],
  [KiB, 'KiB'],
];
const UNITS_MS: [number, string][] = [
  [86_400_000, 'day'],
  [3_600_000, 'h'],
  [60_000, 'min'],
  [1_000, 's'],
];

/**
 * A number as a person reads it, in the unit its setting's name carries (`_BYTES`, `_MS`): the
 * largest unit that divides it. Plain when the name has no unit or nothing divides.
 */
export function humanize(name: string, n: number): string {
  const units = name.endsWith('_BYTES') ? UNITS_BYTES : name.endsWith('_MS') ? UNITS_MS : [];
  for (const [size, unit] of units) {
    if (n >= size && n % size === 0) {
      const count = n / size;
      return `${count} ${unit === 'day' && count !== 1 ? 'days' : unit}`;
    }
  }
  return String(n);
}

/** A setting's value as it is written in the environment (lists comma-separated). */
function envString(value: unknown): string {
  return Array.isArray(value) ? value.join(',') : String(value);
}

function formatDefault(name: string, value: unknown): string {
  const text = envString(value);
  if (text === '') return 'empty';
  if (typeof value !== 'number') return `\`${text}\``;
  const human = humanize(name, value);
  return human === text ? `\`${text}\`` : `\`${text}\` (${human})`;
}

const code = (s: unknown) => `\`${String(s)}\``;

/**
 * What values a setting takes, read from the JSON Schema of its input side. A list (envList) is a
 * string transformed, which JSON Schema cannot tell from text: its array default tells.
 */
function formatAccepts(name: string, field: z.ZodType): string {
  const input = z.toJSONSchema(field, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  if (Array.isArray(input.enum)) {
    // Object key order puts "0" and "1" first; the words read better first.
    const numeric = (v: unknown) => Number(/^\d+$/.test(String(v)));
    return input.enum
      .toSorted((a, b) => numeric(a) - numeric(b))
      .map(code)
      .join(', ');
  }
  if (field instanceof z.ZodDefault && Array.isArray(field.def.defaultValue)) return 'comma-separated list';
  if (input.type === 'integer' || input.type === 'number') {
    const whole = input.type === 'integer' ? 'whole number' : 'number';
    const high = typeof input.maximum === 'number' ? humanize(name, input.maximum) : null;
    if (typeof input.minimum === 'number' && high !== null) {
      return `${whole}, ${humanize(name, input.minimum)} to ${high}`;
    }
    const bounds = [
      typeof input.exclusiveMinimum === 'number'
        ? `more than ${humanize(name, input.exclusiveMinimum)}`
        : null,
      high === null ? null : `at most ${high}`,
    ].filter((b) => b !== null);
    return [whole, ...bounds].join(', ');
  }
  if (input.format === 'uri') return 'URL';
  if (typeof input.pattern === 'string') return code(input.pattern);
  if (typeof input.minLength === 'number' && input.minLength > 1) {
    return `at least ${input.minLength} characters`;
  }
  return 'text';
}

/**
 * One row per setting of an env table, in the table's order; throws when a setting has no
 * description, or a description names no setting.
 */
export function settingRows(schema: z.ZodObject, docs: Readonly<Record<string, SettingDoc>>): SettingRow[] {
  const problems: string[] = [];
  const rows = Object.entries(schema.shape).map(([name, field]): SettingRow => {
    const entry = docs[name];
    const doc = typeof entry === 'string' ? { description: entry, defaultText: undefined } : entry;
    if (!doc?.description) problems.push(`${name}: no description (add one to the envDocs beside its table)`);
    const defaultText =
      field instanceof z.ZodDefault
        ? formatDefault(name, field.def.defaultValue)
        : (doc?.defaultText ?? 'unset');
    return { name, defaultText, accepts: formatAccepts(name, field), description: doc?.description ?? '' };
  });
  for (const name of Object.keys(docs)) {
    if (!(name in schema.shape)) problems.push(`${name}: described, but not in the table`);
  }
  if (problems.length > 0) throw new ConfigDocsError(problems);
  return rows;
}

/**
 * The functions' rows: every setting of their env table, and every param (params.ts), including
 * those firebase-tools reads only at deploy. A param's default must equal its table entry's
 * (both are applied, by firebase deploy and by loadConfig), else the docs could name only one.
 */
export function functionsRows(
  schema: z.ZodObject,
  docs: Readonly<Record<string, SettingDoc>>,
  params: readonly ParamLike[],
): SettingRow[] {
  const problems: string[] = [];
  const byName = new Map(params.map((p) => [p.name, p]));
  const rows = settingRows(schema, docs).map((row): SettingRow => {
    const param = byName.get(row.name);
    if (!param) return { ...row, source: 'environment' };
    const field = schema.shape[row.name];
    const tableDefault = field instanceof z.ZodDefault ? envString(field.def.defaultValue) : undefined;
    const paramDefault = param.options.default === undefined ? undefined : envString(param.options.default);
    if (tableDefault !== paramDefault) {
      problems.push(
        `${row.name}: the param's default (${paramDefault}) differs from the config table's (${tableDefault})`,
      );
    }
    return { ...row, source: 'param' };
  });
  for (const param of params) {
    if (param.name in schema.shape) continue;
    if (!param.options.description) {
      problems.push(`${param.name}: a param outside the config table needs a description option`);
    }
    rows.push({
      name: param.name,
      defaultText:
        param.options.default === undefined ? 'unset' : formatDefault(param.name, param.options.default),
      accepts: typeof param.options.default === 'boolean' ? '`true`, `false`' : 'text',
      description: param.options.description ?? '',
      source: 'param, read at deploy',
    });
  }
  if (problems.length > 0) throw new ConfigDocsError(problems);
  return rows;
}

/** A markdown table; `|` in a cell is escaped so that it cannot end the cell. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function runnerTable(rows: readonly SettingRow[]): string {
  return markdownTable(
    ['Variable', 'Default', 'Accepts', 'Meaning'],
    rows.map((r) => [code(r.name), r.defaultText, r.accepts, r.description]),
  );
}

export function functionsTable(rows: readonly SettingRow[]): string {
  return markdownTable(
    ['Name', 'Set as', 'Default', 'Accepts', 'Meaning'],
    rows.map((r) => [code(r.name), r.source ?? '', r.defaultText, r.accepts, r.description]),
  );
}

const startMarker = (name: string) => `<!-- config-docs:${name} -->`;
const endMarker = (name: string) => `<!-- /config-docs:${name} -->`;

/** The document with the part between the markers of `name` replaced by `body`. */
export function replaceSection(doc: string, name: string, body: string): string {
  const start = doc.indexOf(startMarker(name));
  const end = doc.indexOf(endMarker(name));
  if (start < 0 || end < start) {
    throw new ConfigDocsError([`no ${startMarker(name)} ... ${endMarker(name)} pair in the document`]);
  }
  return `${doc.slice(0, start)}${startMarker(name)}\n\n${body}\n\n${doc.slice(end)}`;
}

/** Every generated section of docs/configuration.md, by marker name. */
export function generatedSections(): Record<string, string> {
  const params = Object.values(functionsParams) as unknown as ParamLike[];
  return {
    runner: runnerTable(settingRows(runnerEnvSchema, runnerEnvDocs)),
    functions: functionsTable(functionsRows(functionsEnvSchema, functionsEnvDocs, params)),
  };
}

export function renderConfigDoc(doc: string, sections: Record<string, string>): string {
  return Object.entries(sections).reduce((d, [name, body]) => replaceSection(d, name, body), doc);
}

if (import.meta.main) {
  const check = process.argv.includes('--check');
  try {
    const current = readFileSync(CONFIG_DOC_PATH, 'utf8');
    const next = renderConfigDoc(current, generatedSections());
    if (next === current) {
      console.log('docs/configuration.md is up to date');
    } else if (check) {
      console.error(
        'docs/configuration.md is stale: a configuration table changed. Run `npm run docs` and commit the result.',
      );
      process.exitCode = 1;
    } else {
      writeFileSync(CONFIG_DOC_PATH, next);
      console.log('wrote docs/configuration.md');
    }
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  }
}
