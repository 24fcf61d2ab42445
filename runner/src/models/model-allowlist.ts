import type { ModelSettings } from './model-settings.ts';

/** The models a run may name: the allowlist, else the default alone (none: any, unlisted). */
export function listedModels(settings: ModelSettings): string[] {
  if (settings.allowlist.length > 0) return settings.allowlist;
  return settings.defaultModel ? [settings.defaultModel] : [];
}

/**
 * Why a run, or a call of code in its sandbox, may not name `model`; null when it may (an empty
 * allowlist allows any). The one message, whether the run request or a sandbox named it.
 */
export function modelRefusal(settings: ModelSettings, model: string): string | null {
  if (settings.allowlist.length === 0 || settings.allowlist.includes(model)) return null;
  return `model ${JSON.stringify(model).slice(0, 80)} is not allowed here; allowed: ${settings.allowlist.join(', ')}`;
}
