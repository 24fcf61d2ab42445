import { GoogleAuth } from 'google-auth-library';
import { callWithDeadline } from '../sandbox/deadline.ts';
import type { ModelSettings, ProviderAuth } from './model-settings.ts';

/** How long fetching a Google access token may take (the metadata server answers in ms). */
const TOKEN_DEADLINE_MS = 5_000;

/**
 * The `authorization` of provider calls. `openai`: the key (MODEL_API_KEY), if any. `vertex`: an
 * access token of the VM's service account, from Application Default Credentials (on GCE, the
 * metadata server; google-auth-library caches it and refreshes it before it expires), so no key
 * exists at all. The token never reaches a sandbox: it is added to the provider call here.
 */
export function providerAuth(settings: ModelSettings): ProviderAuth {
  if (settings.provider === 'openai') {
    const header = settings.apiKey ? `Bearer ${settings.apiKey}` : null;
    return () => Promise.resolve(header);
  }
  const auth = new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] });
  return async () => {
    const token = await callWithDeadline(
      auth.getAccessToken(),
      'getting a Google access token',
      TOKEN_DEADLINE_MS,
    );
    if (!token) throw new Error('Application Default Credentials gave no access token');
    return `Bearer ${token}`;
  };
}

/** Vertex AI's OpenAI-compatible base URL for a project and location. */
export function vertexBaseUrl(project: string, location: string): string {
  const host = location === 'global' ? 'aiplatform.googleapis.com' : `${location}-aiplatform.googleapis.com`;
  return `https://${host}/v1/projects/${project}/locations/${location}/endpoints/openapi`;
}
