import { ConfigError, loadConfig, type FunctionsConfig } from './config.ts';
import { InternalError } from './errors.ts';
import type { Logger } from './logs.ts';

/**
 * The configuration of one function instance: read from `env` and checked on first use, then
 * kept. An invalid one is logged once (every bad setting, named with why; both values when the
 * timeout budget does not fit) and every call of the instance is then refused with `internal`:
 * the environment of an instance does not change, so checking again would only repeat the log.
 */
export function instanceConfig(env: Record<string, string | undefined>, log: Logger): () => FunctionsConfig {
  let outcome: { ok: true; config: FunctionsConfig } | { ok: false; error: InternalError } | null = null;
  return () => {
    if (!outcome) {
      try {
        outcome = { ok: true, config: loadConfig(env) };
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        log.configInvalid(err.problems);
        outcome = { ok: false, error: new InternalError(err.message) };
      }
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.config;
  };
}
