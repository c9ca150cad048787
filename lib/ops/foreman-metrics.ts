// foreman's metric names and what feeds them: the scheduler's events, the
// relay's counts, webhook outcomes and journal fsyncs (SPEC §9). Prometheus conventions:
// base units (seconds), _total for counters.

import { modelKey } from '../sched/model-group.js';
import { createRegistry, DEFAULT_SECONDS_BUCKETS, type Registry, type Sample } from './metrics.js';
import type { QueueSnapshot } from './queue-view.js';
import type { JobOrigin } from './queue-view.js';

export interface ForemanMetrics {
  readonly registry: Registry;
  jobFinished(origin: JobOrigin, state: string, runMs: number): void;
  jobStarted(origin: JobOrigin, queueMs: number): void;
  modelSwitched(): void;
  streamObserved(model: string, ttftMs: number | null, evalCount: number | null): void;
  webhookDelivery(outcome: string): void;
  journalFsync(ms: number): void;
}

export function createForemanMetrics(takeSnapshot: () => QueueSnapshot): ForemanMetrics {
  const registry = createRegistry();
  // One snapshot per scrape: the gauges below are collected in one synchronous render.
  let current: QueueSnapshot | null = null;
  const snapshot = (): QueueSnapshot => {
    if (current === null) {
      current = takeSnapshot();
      queueMicrotask(() => (current = null));
    }
    return current;
  };
  registry.gauge('foreman_queue_depth', 'Jobs waiting, per model group.', ['model', 'group'], () =>
    snapshot().groups.map((g): Sample => [{ model: g.model, group: g.group }, g.count]),
  );
  registry.gauge('foreman_jobs_running', 'Jobs running now.', [], () => [[{}, snapshot().running.length]]);
  registry.gauge('foreman_model_loaded', 'The generation model foreman believes is loaded (1).', ['model'], () => {
    const m = snapshot().loaded_model;
    return m ? [[{ model: m }, 1]] : [];
  });
  // Several hosts (SPEC §17): each host's state, running jobs, loaded model, switches and measured load times.
  const hosts = () => snapshot().hosts ?? [];
  registry.gauge('foreman_host_up', 'Whether a host is up (1) or down (0).', ['host'], () =>
    hosts().map((h): Sample => [{ host: h.name }, h.state === 'up' ? 1 : 0]));
  registry.gauge('foreman_host_jobs_running', 'Jobs running on a host now.', ['host'], () =>
    hosts().map((h): Sample => [{ host: h.name }, h.running]));
  registry.gauge('foreman_host_model_loaded', 'The generation model a host has loaded (1).', ['host', 'model'], () =>
    hosts().filter((h) => h.loaded_model !== null).map((h): Sample => [{ host: h.name, model: h.loaded_model! }, 1]));
  registry.gauge('foreman_host_switches', 'Model switches a host\'s lane has made.', ['host'], () =>
    hosts().map((h): Sample => [{ host: h.name }, h.switches]));
  registry.gauge('foreman_host_load_seconds', 'Measured load time of a group on a host (moving average).', ['host', 'group'], () =>
    hosts().flatMap((h) => h.loads.map((l): Sample => [{ host: h.name, group: l.group }, l.load_ms / 1000])));
  registry.gauge('foreman_host_loads', 'Loads measured on a host per group.', ['host', 'group'], () =>
    hosts().flatMap((h) => h.loads.map((l): Sample => [{ host: h.name, group: l.group }, l.loads])));
  const jobs = registry.counter('foreman_jobs_total', 'Jobs that ended, by state and origin.', ['state', 'origin']);
  const started = registry.counter('foreman_jobs_started_total', 'Jobs that started running, by origin.', ['origin']);
  const switches = registry.counter('foreman_model_switches_total', 'Model group switches made by the scheduler.');
  const wait = registry.histogram('foreman_queue_wait_seconds', 'Time from enqueue to start.', ['origin'], DEFAULT_SECONDS_BUCKETS);
  const run = registry.histogram('foreman_run_seconds', 'Time from start to end of a job.', ['origin'], DEFAULT_SECONDS_BUCKETS);
  const ttft = registry.histogram('foreman_time_to_first_token_seconds', 'Time from job start to the first streamed chunk.', [], DEFAULT_SECONDS_BUCKETS);
  const tokens = registry.counter('foreman_tokens_generated_total', 'Tokens generated (eval_count of final chunks).', ['model']);
  const webhooks = registry.counter('foreman_webhook_deliveries_total', 'Webhook delivery attempts by outcome.', ['outcome']);
  const fsync = registry.histogram('foreman_journal_fsync_seconds', 'Duration of one journal fsync (one group commit).', [],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);

  return {
    registry,
    jobFinished(origin, state, runMs) {
      jobs.inc({ state, origin });
      run.observe({ origin }, runMs / 1000);
    },
    jobStarted(origin, queueMs) {
      started.inc({ origin });
      wait.observe({ origin }, queueMs / 1000);
    },
    modelSwitched: () => switches.inc(),
    streamObserved(model, ttftMs, evalCount) {
      if (ttftMs !== null) ttft.observe(ttftMs / 1000);
      // Labelled by model key, as queue groups are: `Llama3.2` and `llama3.2` are one series.
      if (evalCount !== null && evalCount > 0) tokens.inc({ model: modelKey(model) }, evalCount);
    },
    webhookDelivery: (outcome) => webhooks.inc({ outcome }),
    journalFsync: (ms) => fsync.observe(ms / 1000),
  };
}

/** eval_count from a final NDJSON chunk, or usage.completion_tokens from an SSE usage event. */
export function tokensOfFinalUnit(unit: Uint8Array | null): number | null {
  if (!unit) return null;
  const text = Buffer.from(unit.buffer, unit.byteOffset, unit.byteLength).toString('utf8');
  // Native, chat completions, then Anthropic (a whole message) and Responses (response.completed).
  const m = /"eval_count":(\d+)/.exec(text) ?? /"completion_tokens":(\d+)/.exec(text) ?? /"output_tokens":(\d+)/.exec(text);
  return m ? Number(m[1]) : null;
}
