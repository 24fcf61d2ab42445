import Docker from 'dockerode';
import { createAuthenticator } from './auth/authenticate.ts';
import { RunGate } from './concurrency/run-gate.ts';
import { ConfigError, loadConfig, redactedConfig } from './config.ts';
import { createApp } from './http/app.ts';
import { Logger } from './logs.ts';
import { RunService } from './runs/run-service.ts';
import { Reaper } from './sandbox/reaper.ts';
import { OomWatch } from './sandbox/oom-watch.ts';
import { SandboxPool } from './sandbox/sandbox-pool.ts';
import { SandboxRunner } from './sandbox/sandbox-runner.ts';
import { Workspaces } from './sandbox/workspaces.ts';

async function main(): Promise<void> {
  const log = new Logger();
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      log.configInvalid(err.problems);
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  // dockerode reads DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, like the docker CLI.
  const docker = new Docker();
  const workspaces = new Workspaces(docker, config.runnerId);
  const pool = new SandboxPool({ idleTtlMs: config.warmIdleTtlMs, maxWarm: config.warmMaxSandboxes }, log);
  const oom = new OomWatch(docker, config.runnerId, log);
  void oom.start();
  const sandboxes = new SandboxRunner(docker, config, log, { workspaces, pool, oom });
  const gate = new RunGate({
    maxConcurrent: config.maxConcurrentRuns,
    maxQueued: config.maxQueuedRuns,
    maxQueuedPerUser: config.maxQueuedPerUser,
    retryAfterSeconds: 2,
  });
  const runs = new RunService(config, gate, { sandboxes, pool, workspaces }, log);
  const reaper = new Reaper(docker, config.runnerId, log, () => pool.containerIds(), config.reaperMinAgeMs);
  try {
    await reaper.reap('startup');
  } catch (err) {
    // The engine may come up later; /readyz reports it meanwhile.
    log.reaperFailed(err);
  }
  reaper.start(config.reaperIntervalMs);
  const app = createApp({ config, docker, auth: createAuthenticator(config), runs, sandboxes, log });
  const server = app.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    log.started(port, config.host, redactedConfig(config));
  });
  server.requestTimeout = config.runTimeoutMs + 60_000;

  const shutdown = (signal: string) => {
    log.shuttingDown(signal);
    reaper.stop();
    oom.stop();
    server.close();
    server.closeAllConnections(); // aborts in-flight runs: their sandboxes are removed
    setTimeout(() => {
      pool
        .drain()
        .then(() => reaper.reap('shutdown'))
        .catch((err: unknown) => log.reaperFailed(err))
        .finally(() => process.exit(0));
    }, 200).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

await main();
