/**
 * Writes scripts/deploy/param-defaults.env: the default of every param of functions/src/params.ts,
 * one `NAME=value` line each. scripts/deploy.sh writes these into functions/.env.<project> for the
 * params a deploy does not decide itself (firebase deploy --non-interactive needs a value for every
 * param). deploy.sh reads the file with bash builtins, since its --dry-run needs nothing on PATH,
 * not even node; so the defaults are generated from params.ts rather than restated in bash.
 *
 * `node scripts/deploy/param-defaults.ts` after a change to params.ts; with `--check` it writes
 * nothing and exits 1 when the file is stale (scripts/deploy.test.ts checks it too).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as params from '../../functions/src/params.ts';

export const PARAM_DEFAULTS_PATH = fileURLToPath(new URL('param-defaults.env', import.meta.url));

/** A firebase-functions param as params.ts exports it (StringParam, IntParam, BooleanParam). */
export interface ParamLike {
  name: string;
  options: { default?: unknown };
}

/** What a dotenv line carries without quotes, and deploy.sh reads back as it is. */
const PLAIN_VALUE = /^[A-Za-z0-9_.,:/@+-]*$/;

/** The file's text for these params, sorted by name. Throws on a default it cannot write plainly. */
export function paramDefaultsEnv(list: readonly ParamLike[]): string {
  const lines = [
    '# Generated from functions/src/params.ts by scripts/deploy/param-defaults.ts: do not edit.',
    '# scripts/deploy.sh writes these defaults into functions/.env.<project> (see its step 10).',
  ];
  for (const p of [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const value = p.options.default;
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new Error(
        `param ${p.name}: its default must be a literal string, number or boolean for a deploy`,
      );
    }
    const text = String(value);
    if (!PLAIN_VALUE.test(text)) {
      throw new Error(`param ${p.name}: default '${text}' is not a plain dotenv value (${PLAIN_VALUE})`);
    }
    lines.push(`${p.name}=${text}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The file's text for the params params.ts exports now. */
export function currentParamDefaultsEnv(): string {
  return paramDefaultsEnv(Object.values(params) as ParamLike[]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = currentParamDefaultsEnv();
  if (process.argv.includes('--check')) {
    if (readFileSync(PARAM_DEFAULTS_PATH, 'utf8') !== text) {
      console.error('scripts/deploy/param-defaults.env is stale: run node scripts/deploy/param-defaults.ts');
      process.exit(1);
    }
  } else {
    writeFileSync(PARAM_DEFAULTS_PATH, text);
  }
}
