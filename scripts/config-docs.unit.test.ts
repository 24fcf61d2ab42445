import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { envBool, envInt, envList } from '@agent-platform/contract';
import {
  ConfigDocsError,
  functionsRows,
  generatedSections,
  humanize,
  markdownTable,
  renderConfigDoc,
  replaceSection,
  runnerTable,
  settingRows,
} from './config-docs.ts';
import type { SettingDoc } from '@agent-platform/contract';

const table = z.object({
  PORT: envInt(0, 65535).default(8081),
  SANDBOX_MEMORY_BYTES: envInt(64 * 1024 * 1024, 1024 ** 4).default(512 * 1024 * 1024),
  RUN_TIMEOUT_MS: envInt(1_000, 600_000).default(30_000),
  SANDBOX_CPUS: z.coerce.number().positive().max(64).default(1),
  TOKEN: z.string().min(16).optional(),
  MAX_RUNS: envInt(1, 1024).optional(),
  STORE: z.enum(['volume', 'gcs']).default('volume'),
  LOG: envBool.default(true),
  ALLOW: envList.default([]),
  ORIGINS: envList.default(['http://a', 'http://b']),
  ID: z
    .string()
    .regex(/^(a|b)$/)
    .default('a'),
  URL_SETTING: z.url().optional(),
  NAME: z.string().default(''),
});
const docs: Record<keyof typeof table.shape, SettingDoc> = {
  PORT: 'TCP port.',
  SANDBOX_MEMORY_BYTES: 'Memory.',
  RUN_TIMEOUT_MS: 'Run cap.',
  SANDBOX_CPUS: 'CPUs.',
  TOKEN: 'A secret.',
  MAX_RUNS: { description: 'Runs at once.', defaultText: '2 per core' },
  STORE: 'Where.',
  LOG: 'Log.',
  ALLOW: 'Allowed.',
  ORIGINS: 'Origins.',
  ID: 'Id.',
  URL_SETTING: 'A URL.',
  NAME: 'A name.',
};

test('humanize: the largest unit that divides a value, by the unit in the name', () => {
  assert.equal(humanize('X_BYTES', 512 * 1024 * 1024), '512 MiB');
  assert.equal(humanize('X_BYTES', 20 * 1024 ** 3), '20 GiB');
  assert.equal(humanize('X_BYTES', 4096), '4 KiB');
  assert.equal(humanize('X_BYTES', 1000), '1000');
  assert.equal(humanize('X_MS', 30_000), '30 s');
  assert.equal(humanize('X_MS', 300_000), '5 min');
  assert.equal(humanize('X_MS', 3_600_000), '1 h');
  assert.equal(humanize('X_MS', 86_400_000), '1 day');
  assert.equal(humanize('X_MS', 7 * 86_400_000), '7 days');
  assert.equal(humanize('X_MS', 1500), '1500');
  assert.equal(humanize('X_MS', 0), '0');
  assert.equal(humanize('MAX_RUNS', 3_600_000), '3600000');
});

test('settingRows: default, accepted values and description of each setting, in table order', () => {
  const rows = Object.fromEntries(settingRows(table, docs).map((r) => [r.name, r]));
  assert.deepEqual(Object.keys(rows), Object.keys(table.shape));
  assert.deepEqual(rows.PORT, {
    name: 'PORT',
    defaultText: '`8081`',
    accepts: 'whole number, 0 to 65535',
    description: 'TCP port.',
  });
  assert.equal(rows.SANDBOX_MEMORY_BYTES!.defaultText, '`536870912` (512 MiB)');
  assert.equal(rows.SANDBOX_MEMORY_BYTES!.accepts, 'whole number, 64 MiB to 1 TiB');
  assert.equal(rows.RUN_TIMEOUT_MS!.defaultText, '`30000` (30 s)');
  assert.equal(rows.RUN_TIMEOUT_MS!.accepts, 'whole number, 1 s to 10 min');
  assert.equal(rows.SANDBOX_CPUS!.accepts, 'number, more than 0, at most 64');
  assert.equal(rows.TOKEN!.defaultText, 'unset');
  assert.equal(rows.TOKEN!.accepts, 'at least 16 characters');
  assert.equal(rows.MAX_RUNS!.defaultText, '2 per core');
  assert.equal(rows.MAX_RUNS!.description, 'Runs at once.');
  assert.equal(rows.STORE!.accepts, '`volume`, `gcs`');
  assert.equal(rows.LOG!.defaultText, '`true`');
  assert.equal(rows.LOG!.accepts, '`true`, `false`, `0`, `1`');
  assert.equal(rows.ALLOW!.defaultText, 'empty');
  assert.equal(rows.ALLOW!.accepts, 'comma-separated list');
  assert.equal(rows.ORIGINS!.defaultText, '`http://a,http://b`');
  assert.equal(rows.ID!.accepts, '`^(a|b)$`');
  assert.equal(rows.URL_SETTING!.accepts, 'URL');
  assert.equal(rows.NAME!.defaultText, 'empty');
  assert.equal(rows.NAME!.accepts, 'text');
});

test('settingRows: a setting without a description, or a description without a setting, is refused', () => {
  const bare = z.object({ A: envInt(0, 1).default(0), B: z.string(), C: z.string().optional() });
  assert.throws(
    () => settingRows(bare, { B: 'B.', C: { description: '', defaultText: 'x' }, D: 'Gone.' }),
    (e: unknown) =>
      e instanceof ConfigDocsError &&
      e.problems.length === 3 &&
      /^A: no description/.test(e.problems[0]!) &&
      /^C: no description/.test(e.problems[1]!) &&
      e.problems[2] === 'D: described, but not in the table',
  );
});

test('functionsRows: table settings marked as params or environment, params outside the table appended', () => {
  const fnTable = z.object({
    RUNNER_URL: z.string().default(''),
    ORIGINS: envList.default(['http://a', 'http://b']),
    ENFORCE: envBool.default(false),
    RUNNER_TOKEN: z.string().default(''),
  });
  const fnDocs = { RUNNER_URL: 'Runner.', ORIGINS: 'Origins.', ENFORCE: 'Enforce.', RUNNER_TOKEN: 'Secret.' };
  const rows = functionsRows(fnTable, fnDocs, [
    { name: 'RUNNER_URL', options: { default: '' } },
    { name: 'ORIGINS', options: { default: 'http://a,http://b' } },
    { name: 'ENFORCE', options: { default: false } },
    { name: 'CONNECTOR', options: { default: '', description: 'Deploy only.' } },
  ]);
  assert.deepEqual(
    rows.map((r) => [r.name, r.source, r.defaultText]),
    [
      ['RUNNER_URL', 'param', 'empty'],
      ['ORIGINS', 'param', '`http://a,http://b`'],
      ['ENFORCE', 'param', '`false`'],
      ['RUNNER_TOKEN', 'environment', 'empty'],
      ['CONNECTOR', 'param, read at deploy', 'empty'],
    ],
  );
  assert.equal(rows[4]!.description, 'Deploy only.');
});

test('functionsRows: a param whose default differs from the table, or one without a description, is refused', () => {
  const fnTable = z.object({ LIMIT: envInt(1, 100).default(20) });
  assert.throws(
    () =>
      functionsRows(fnTable, { LIMIT: 'Limit.' }, [
        { name: 'LIMIT', options: { default: 30 } },
        { name: 'OTHER', options: { default: '' } },
      ]),
    (e: unknown) =>
      e instanceof ConfigDocsError &&
      e.problems.length === 2 &&
      e.problems[0] === "LIMIT: the param's default (30) differs from the config table's (20)" &&
      /^OTHER: .*description/.test(e.problems[1]!),
  );
});

test('markdownTable: a | in a cell cannot end the cell', () => {
  assert.equal(
    markdownTable(['A', 'B'], [['x|y', '`^(a|b)$`']]),
    '| A | B |\n| --- | --- |\n| x\\|y | `^(a\\|b)$` |',
  );
});

test('replaceSection: only the part between the markers changes, and rendering is idempotent', () => {
  const doc = 'intro\n<!-- config-docs:runner -->\nold\n<!-- /config-docs:runner -->\noutro\n';
  const once = replaceSection(doc, 'runner', 'new table');
  assert.equal(
    once,
    'intro\n<!-- config-docs:runner -->\n\nnew table\n\n<!-- /config-docs:runner -->\noutro\n',
  );
  assert.equal(replaceSection(once, 'runner', 'new table'), once);
  assert.throws(() => replaceSection(doc, 'functions', 'x'), ConfigDocsError);
  const sections = { runner: runnerTable(settingRows(table, docs)) };
  const rendered = renderConfigDoc(doc, sections);
  assert.equal(renderConfigDoc(rendered, sections), rendered);
});

test('the real tables: every runner and functions setting and every param is documented, and their defaults agree', () => {
  const sections = generatedSections();
  assert.deepEqual(Object.keys(sections), ['runner', 'functions']);
  assert.match(sections.runner!, /\| `RUN_TIMEOUT_MS` \| `30000` \(30 s\) \|/);
  assert.match(sections.functions!, /\| `RUNNER_VPC_CONNECTOR` \| param, read at deploy \|/);
});
