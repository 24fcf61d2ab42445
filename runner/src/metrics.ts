import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RunStatus } from '@agent-platform/contract';
import type { CallObserver } from './sandbox/deadline.ts';

/** What the metrics read when scraped (the gate's and the engine's current numbers). */
export interface MetricsSources {
  running(): number;
  waiting(): number;
  sandboxes(): { busy: number; idle: number; frozen: number };
}

/**
 * The runner's Prometheus metrics (GET /metrics, behind the runner's authentication). One
 * registry per runner, passed to who records; no global default registry.
 */
export class Metrics implements CallObserver {
  readonly registry = new Registry();
  readonly #runs = new Counter({
    name: 'runner_runs_total',
    help: 'Runs answered, by status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly #runSeconds = new Histogram({
    name: 'runner_run_duration_seconds',
    help: 'Time from request to answer of a run, queue included',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly #warm = new Counter({
    name: 'runner_warm_total',
    help: 'Runs served by a warm sandbox (hit) or a new one (miss)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly #dockerCalls = new Histogram({
    name: 'runner_docker_call_duration_seconds',
    help: 'Docker Engine calls, by call and outcome (ok, error)',
    labelNames: ['call', 'outcome'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly #dockerErrors = new Counter({
    name: 'runner_docker_call_errors_total',
    help: 'Docker Engine calls that failed or passed their deadline, by call',
    labelNames: ['call'] as const,
    registers: [this.registry],
  });

  /** Reads the gate and the engine at scrape time. */
  watch(sources: MetricsSources): void {
    new Gauge({
      name: 'runner_runs_running',
      help: 'Runs holding a slot now',
      registers: [this.registry],
      collect() {
        this.set(sources.running());
      },
    });
    new Gauge({
      name: 'runner_queue_depth',
      help: 'Requests waiting for their turn or a slot',
      registers: [this.registry],
      collect() {
        this.set(sources.waiting());
      },
    });
    new Gauge({
      name: 'runner_sandboxes',
      help: 'Live sandboxes, by state (busy: serving a run; idle: kept warm; frozen: the idle ones paused)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const s = sources.sandboxes();
        this.set({ state: 'busy' }, s.busy);
        this.set({ state: 'idle' }, s.idle);
        this.set({ state: 'frozen' }, s.frozen);
      },
    });
  }

  runFinished(status: RunStatus, durationMs: number, warm: boolean): void {
    this.#runs.inc({ status });
    this.#runSeconds.observe(durationMs / 1000);
    this.#warm.inc({ result: warm ? 'hit' : 'miss' });
  }

  observeCall(call: string, seconds: number, ok: boolean): void {
    this.#dockerCalls.observe({ call, outcome: ok ? 'ok' : 'error' }, seconds);
    if (!ok) this.#dockerErrors.inc({ call });
  }
}
