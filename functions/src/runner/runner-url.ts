import { ServicesClient } from '@google-cloud/run';
import { InternalError } from '../errors.ts';

export interface RunnerLocation {
  /** Base URL without a trailing slash. */
  url: string;
  /** Audience for Google ID tokens. */
  audience: string;
}

/**
 * Where the runner is: RUNNER_URL if set, else the URL of the Cloud Run service RUNNER_SERVICE
 * (a runner on Cloud Run reaches its Docker engine through DOCKER_HOST), looked up once per
 * function instance with @google-cloud/run.
 */
export async function resolveRunner(opts: {
  url: string;
  service: string;
  audience: string;
  services?: Pick<ServicesClient, 'getService'>;
}): Promise<RunnerLocation> {
  let url = opts.url.trim();
  if (!url && opts.service.trim()) {
    const client = opts.services ?? new ServicesClient();
    const [service] = await client.getService({ name: opts.service.trim() });
    url = service.uri ?? '';
    if (!url) throw new InternalError(`Cloud Run service ${opts.service} has no URL`);
  }
  if (!url) throw new InternalError('neither RUNNER_URL nor RUNNER_SERVICE is set');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InternalError(`RUNNER_URL is not a URL: ${url}`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new InternalError(`RUNNER_URL must be http(s): ${url}`);
  }
  const base = url.replace(/\/+$/, '');
  return { url: base, audience: opts.audience.trim() || base };
}
