/**
 * `RUNNERS=3 npm start` runs this: a local fleet of runners (runner/test/helpers/fleet.ts: N runner
 * processes on the local Docker engine, HAProxy hashing consistently on the user header in front,
 * workspaces in the Cloud Storage stand-in) until SIGTERM or SIGINT, then stops it all. Writes
 * the balancer's URL to the file named by FLEET_URL_FILE once the fleet is up.
 */
import { writeFileSync } from 'node:fs';
import { startFleet } from '../runner/test/helpers/fleet.ts';

const count = Number(process.env.RUNNERS ?? '3');
if (!Number.isInteger(count) || count < 1 || count > 16) {
  console.error(`RUNNERS must be a whole number from 1 to 16, not ${process.env.RUNNERS}`);
  process.exit(2);
}
const token = process.env.RUNNER_TOKEN;
if (!token) {
  console.error('RUNNER_TOKEN must be set');
  process.exit(2);
}
const fleet = await startFleet(count, {
  RUNNER_TOKEN: token,
  SANDBOX_RUNTIME: process.env.SANDBOX_RUNTIME ?? 'auto',
});
console.log(
  `[fleet] ${count} runners (${fleet.runners.map((r) => `${r.runnerId} ${r.url}`).join(', ')}) behind HAProxy at ${fleet.url}; workspaces in the Cloud Storage stand-in at ${fleet.gcs.endpoint}`,
);
if (process.env.FLEET_URL_FILE) writeFileSync(process.env.FLEET_URL_FILE, fleet.url);
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  console.log('[fleet] stopping');
  void fleet.stop().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
