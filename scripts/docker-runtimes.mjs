// Adds the gVisor runtime to a Docker daemon.json (creating it if needed), keeping every other
// setting. Used by scripts/lib/engine.sh before it starts a Docker engine.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const file = process.argv[2] ?? '/etc/docker/daemon.json';
const config = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
config.runtimes = config.runtimes ?? {};
if (!config.runtimes.runsc) {
  config.runtimes.runsc = { path: '/usr/bin/runsc', runtimeArgs: ['--network=none'] };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
  console.error(`[setup] registered runsc in ${file}`);
}
