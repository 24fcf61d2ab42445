import { TIMEOUT_MARGINS, settleBy, timeoutBudget } from '@agent-platform/contract';
import Docker from 'dockerode';
import { freemem } from 'node:os';
import { createAuthenticator } from './auth/authenticate.ts';
import { RunGate } from './concurrency/run-gate.ts';
import { ConfigError, loadConfig, redactedConfig } from './config.ts';
import { createApp } from './http/app.ts';
import { Logger } from './logs.ts';
import { Metrics } from './metrics.ts';
import { ModelGateway } from './models/model-gateway.ts';
import { providerAuth } from './models/provider-auth.ts';
import { RunService } from './runs/run-service.ts';
import { DockerBackend } from './sandbox/docker-backend.ts';
import { SandboxEngine } from './sandbox/engine.ts';

/** Retry-After of a 429: about the time a short run takes to free its slot. */
const RETRY_AFTER_S = 2;
/**
 * After SIGTERM, closing the connections aborts runs in flight; their sandboxes are removed as
 * the aborts unwind. Draining the pool and the last reap wait this long for that to settle.
 */
const SHUTDOWN_SETTLE_MS = 200;

/** Idle keep-alive connections close after this (Node's default). */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

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
  const metrics = new Metrics();
  const models = new ModelGateway(config.models, providerAuth(config.models), log);
  const engine = new SandboxEngine(
    new DockerBackend(new Docker(), config, log, metrics),
    {
      idleTtlMs: config.warmIdleTtlMs,
      maxWarm: config.warmMaxSandboxes,
      maxLifetimeMs: config.warmMaxLifetimeMs,
      freezeAfterMs: config.warmFreezeAfterMs,
      memoryReserveBytes: config.hostMemoryReserveBytes,
      // MemAvailable of the host (libuv reads /proc/meminfo, which a container shares with its host).
      availableMemory: freemem,
      reaperMinAgeMs: config.reaperMinAgeMs,
      outputLimitBytes: config.outputLimitBytes,
      memoryBytes: config.sandbox.memoryBytes,
    },
    log,
  );
  const gate = new RunGate({
    maxConcurrent: config.maxConcurrentRuns,
    maxQueued: config.maxQueuedRuns,
    maxQueuedPerUser: config.maxQueuedPerUser,
    retryAfterSeconds: RETRY_AFTER_S,
    queueTimeoutMs: TIMEOUT_MARGINS.queueMs,
    maxRunningPerAddress: config.maxRunsPerAddress,
    maxRunningAnonymous: config.maxAnonymousRuns,
  });
  const runs = new RunService({ config, gate, engine, models, log, metrics });
  metrics.watch({
    running: () => gate.running,
    waiting: () => gate.waiting,
    sandboxes: () => engine.sandboxCounts(),
  });
  try {
    await engine.reap('startup');
  } catch (err) {
    // The engine may come up later; /readyz reports it meanwhile.
    log.reaperFailed(err);
  }
  await engine.start(config.reaperIntervalMs);
  // The first readiness check resolves SANDBOX_RUNTIME=auto and logs the runtime chosen.
  await engine.ready();
  const app = createApp({ config, auth: createAuthenticator(config), runs, engine, models, log, metrics });
  const server = app.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    log.started(port, config.host, redactedConfig(config));
  });
  // The runner answers within the budget's runnerAnswerMs (queue + run + sandbox grace); a
  // request, headers included, must arrive well within that.
  const budget = timeoutBudget(config.runTimeoutMs);
  server.requestTimeout = budget.runnerAnswerMs;
  // An idle keep-alive connection is closed after keepAliveTimeout; the headers deadline must be
  // longer than that (Node's advice), or a request arriving on a connection about to idle out
  // can be cut off and its caller sees a reset ("unavailable" in the functions). They were equal
  // (5 s and 5 s) for a while, when one browser test run saw an unexplained "unavailable" that
  // this may have caused (not proven; the functions now log the cause of an "unavailable").
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = Math.min(
    budget.runnerAnswerMs,
    KEEP_ALIVE_TIMEOUT_MS + TIMEOUT_MARGINS.networkMarginMs,
  );

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.shuttingDown(signal);
    engine.stop();
    server.close();
    server.closeAllConnections(); // aborts in-flight runs: their sandboxes are removed
    setTimeout(() => {
      engine
        .drain()
        .then(() => engine.reap('shutdown'))
        .catch((err: unknown) => log.reaperFailed(err))
        .finally(() => process.exit(0));
    }, SHUTDOWN_SETTLE_MS).unref();
  };
  /**
   * Stops taking connections and waits, at most `ms`, for the answers in flight to be written: a
   * run's sandbox work can end a few steps before its HTTP answer has gone out (its model calls
   * are finished and charged first), and cutting the connections then lost the answer.
   */
  const answered = async (ms: number): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await settleBy(closed, AbortSignal.timeout(ms));
  };
  // SIGTERM (scale-in, preemption, a redeploy) drains: no new runs (/readyz 503), the runs in
  // flight finish within their budget and their answers are written, warm sandboxes are saved and
  // removed, then the process exits. SIGINT (Ctrl-C), or a second SIGTERM, stops at once.
  let draining = false;
  process.on('SIGTERM', () => {
    if (draining) return shutdown('SIGTERM (again)');
    draining = true;
    log.draining(budget.runnerAnswerMs);
    void engine
      .startDraining(budget.runnerAnswerMs)
      .then(() => answered(TIMEOUT_MARGINS.networkMarginMs))
      .then(() => shutdown('SIGTERM'));
  });
  process.once('SIGINT', () => shutdown('SIGINT'));
}

await main();
