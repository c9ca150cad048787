// Usage per key in /metrics (SPEC §15): counters and gauges labelled with the key's name, never
// its token. Collected at scrape time from the usage book and the scheduler's live counts.

import type { Registry, Sample } from './metrics.js';
import type { UsageBook } from '../keys/usage.js';

export interface KeyMetricsSource {
  usage: UsageBook;
  /** the names to report: configured keys and any with usage */
  names(): string[];
  waitingOf(key: string): number;
  runningOf(key: string): number;
}

export function registerKeyMetrics(registry: Registry, source: KeyMetricsSource): void {
  const each = (f: (key: string) => Sample[]) => () => source.names().flatMap(f);
  registry.counter('foreman_key_requests_total', 'Authenticated requests per key and surface.', ['key', 'surface'], each((key) =>
    Object.entries(source.usage.of(key).requests).map(([surface, n]): Sample => [{ key, surface }, n])));
  registry.counter('foreman_key_jobs_total', 'Jobs of a key that ended, by state.', ['key', 'state'], each((key) =>
    Object.entries(source.usage.of(key).jobs).map(([state, n]): Sample => [{ key, state }, n])));
  registry.counter('foreman_key_tokens_total', 'Tokens per key: prompt (prompt_eval_count) and completion (eval_count).', ['key', 'kind'], each((key) => {
    const u = source.usage.of(key);
    return [[{ key, kind: 'prompt' }, u.prompt_tokens], [{ key, kind: 'completion' }, u.completion_tokens]];
  }));
  registry.counter('foreman_key_run_seconds_total', 'Run time used per key (what fair share divides).', ['key'], each((key) =>
    [[{ key }, source.usage.of(key).run_seconds]]));
  registry.counter('foreman_key_queue_wait_seconds_total', 'Time the key\'s jobs waited in the queue.', ['key'], each((key) =>
    [[{ key }, source.usage.of(key).queue_wait_seconds]]));
  registry.gauge('foreman_key_waiting', 'Jobs of the key waiting now.', ['key'], each((key) => [[{ key }, source.waitingOf(key)]]));
  registry.gauge('foreman_key_running', 'Jobs of the key running now.', ['key'], each((key) => [[{ key }, source.runningOf(key)]]));
}
