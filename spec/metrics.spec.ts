import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRegistry, parsePrometheusText, METRICS_CONTENT_TYPE } from '../lib/ops/metrics.js';

describe('metrics', () => {
  it('renders a counter with labels sorted by name and series sorted', () => {
    const r = createRegistry();
    const jobs = r.counter('foreman_jobs_total', 'Jobs that reached a final state.', ['state', 'origin']);
    jobs.inc({ state: 'completed', origin: 'sync' });
    jobs.inc({ state: 'completed', origin: 'sync' }, 2);
    jobs.inc({ state: 'failed', origin: 'async' });
    assert.equal(r.render(), [
      '# HELP foreman_jobs_total Jobs that reached a final state.',
      '# TYPE foreman_jobs_total counter',
      'foreman_jobs_total{origin="async",state="failed"} 1',
      'foreman_jobs_total{origin="sync",state="completed"} 3',
      '',
    ].join('\n'));
  });

  it('renders an unlabelled counter as 0 before it is ever incremented', () => {
    const r = createRegistry();
    const switches = r.counter('foreman_model_switches_total', 'Model switches.');
    assert.match(r.render(), /^foreman_model_switches_total 0$/m);
    switches.inc();
    switches.inc(4);
    assert.match(r.render(), /^foreman_model_switches_total 5$/m);
  });

  it('refuses to decrease a counter and rejects wrong label sets', () => {
    const r = createRegistry();
    const c = r.counter('c_total', 'c', ['model']);
    assert.throws(() => c.inc({ model: 'a' }, -1), /can only increase/);
    assert.throws(() => c.inc({}), /takes labels \[model\]/);
    assert.throws(() => c.inc({ model: 'a', extra: 'x' }), /takes labels/);
    assert.throws(() => r.counter('c_total', 'again'), /already registered/);
    assert.throws(() => r.counter('bad-name', 'x'), /invalid metric name/);
    assert.throws(() => r.histogram('h', 'h', ['le'], [1]), /invalid label name 'le'/);
    assert.throws(() => r.histogram('h2', 'h', [], [2, 1]), /strictly increasing/);
  });

  it('renders gauges set, incremented and decremented', () => {
    const r = createRegistry();
    const g = r.gauge('foreman_running', 'Running jobs.');
    g.set(3);
    g.inc();
    g.dec(undefined, 2);
    const depth = r.gauge('foreman_queue_depth_set', 'Depth.', ['model']);
    depth.set({ model: 'a' }, 7);
    depth.dec({ model: 'a' });
    assert.equal(r.render(), [
      '# HELP foreman_running Running jobs.',
      '# TYPE foreman_running gauge',
      'foreman_running 2',
      '# HELP foreman_queue_depth_set Depth.',
      '# TYPE foreman_queue_depth_set gauge',
      'foreman_queue_depth_set{model="a"} 6',
      '',
    ].join('\n'));
    assert.throws(() => depth.set({ model: 'a' }), /needs a value/);
  });

  it('asks a collect callback for gauge values at every render', () => {
    const r = createRegistry();
    let depths: Array<[string, number]> = [['llama3.2', 2]];
    r.gauge('foreman_queue_depth', 'Jobs waiting per model.', ['model'], () =>
      depths.map(([model, n]) => [{ model }, n] as const));
    assert.match(r.render(), /^foreman_queue_depth\{model="llama3.2"\} 2$/m);
    depths = [['qwen2.5', 5]];
    const text = r.render();
    assert.doesNotMatch(text, /llama3\.2/);
    assert.match(text, /^foreman_queue_depth\{model="qwen2.5"\} 5$/m);
  });

  it('renders a histogram with cumulative buckets, +Inf, _sum and _count', () => {
    const r = createRegistry();
    const h = r.histogram('foreman_run_seconds', 'Run time.', ['model'], [0.1, 1, 10]);
    h.observe({ model: 'm' }, 0.05);
    h.observe({ model: 'm' }, 0.5);
    h.observe({ model: 'm' }, 1);
    h.observe({ model: 'm' }, 42);
    assert.equal(r.render(), [
      '# HELP foreman_run_seconds Run time.',
      '# TYPE foreman_run_seconds histogram',
      'foreman_run_seconds_bucket{le="0.1",model="m"} 1',
      'foreman_run_seconds_bucket{le="1",model="m"} 3',
      'foreman_run_seconds_bucket{le="10",model="m"} 3',
      'foreman_run_seconds_bucket{le="+Inf",model="m"} 4',
      'foreman_run_seconds_sum{model="m"} 43.55',
      'foreman_run_seconds_count{model="m"} 4',
      '',
    ].join('\n'));
  });

  it('renders an unlabelled histogram with zero buckets before any observation', () => {
    const r = createRegistry();
    r.histogram('foreman_journal_fsync_seconds', 'fsync time.', [], [0.001, 0.01]);
    assert.equal(r.render(), [
      '# HELP foreman_journal_fsync_seconds fsync time.',
      '# TYPE foreman_journal_fsync_seconds histogram',
      'foreman_journal_fsync_seconds_bucket{le="0.001"} 0',
      'foreman_journal_fsync_seconds_bucket{le="0.01"} 0',
      'foreman_journal_fsync_seconds_bucket{le="+Inf"} 0',
      'foreman_journal_fsync_seconds_sum 0',
      'foreman_journal_fsync_seconds_count 0',
      '',
    ].join('\n'));
  });

  it('escapes backslash, quote and newline in label values and help', () => {
    const r = createRegistry();
    const c = r.counter('foreman_tokens_generated_total', 'Tokens.\nSecond line with \\ backslash', ['model']);
    c.inc({ model: 'a\\b"c\nd' }, 9);
    const text = r.render();
    assert.match(text, /^# HELP foreman_tokens_generated_total Tokens\.\\nSecond line with \\\\ backslash$/m);
    assert.ok(text.includes('foreman_tokens_generated_total{model="a\\\\b\\"c\\nd"} 9\n'));
    assert.equal(text.split('\n').length, 4);
  });

  it('parses its own render back to the same values, keyed as rendered', () => {
    const r = createRegistry();
    const jobs = r.counter('foreman_jobs_total', 'Jobs.', ['state', 'origin']);
    jobs.inc({ state: 'completed', origin: 'sync' }, 3);
    const webhooks = r.counter('foreman_webhook_deliveries_total', 'Deliveries.', ['outcome']);
    webhooks.inc({ outcome: 'ok' });
    const weird = r.gauge('g', 'g', ['x']);
    weird.set({ x: 'a\\b"c\nd}, e="f' }, -1.5);
    weird.set({ x: 'inf' }, Infinity);
    const wait = r.histogram('foreman_queue_wait_seconds', 'Wait.', [], [1, 5]);
    wait.observe(0.5);
    wait.observe(7);
    const parsed = parsePrometheusText(r.render());
    assert.equal(parsed.get('foreman_jobs_total{origin="sync",state="completed"}'), 3);
    assert.equal(parsed.get('foreman_webhook_deliveries_total{outcome="ok"}'), 1);
    assert.equal(parsed.get('g{x="a\\\\b\\"c\\nd}, e=\\"f"}'), -1.5);
    assert.equal(parsed.get('g{x="inf"}'), Infinity);
    assert.equal(parsed.get('foreman_queue_wait_seconds_bucket{le="1"}'), 1);
    assert.equal(parsed.get('foreman_queue_wait_seconds_bucket{le="5"}'), 1);
    assert.equal(parsed.get('foreman_queue_wait_seconds_bucket{le="+Inf"}'), 2);
    assert.equal(parsed.get('foreman_queue_wait_seconds_sum'), 7.5);
    assert.equal(parsed.get('foreman_queue_wait_seconds_count'), 2);
    assert.equal(parsed.size, 9);
  });

  it('parses foreign label order and timestamps into the sorted key, and rejects garbage', () => {
    const parsed = parsePrometheusText('# TYPE x counter\nx{b="2",a="1"} 4 1700000000000\ny NaN\n');
    assert.equal(parsed.get('x{a="1",b="2"}'), 4);
    assert.ok(Number.isNaN(parsed.get('y')));
    assert.throws(() => parsePrometheusText('x{a="1} 2'), /line 1: unterminated/);
    assert.throws(() => parsePrometheusText('ok 1\nx abc'), /line 2: expected a value/);
  });

  it('exports the 0.0.4 content type', () => {
    assert.equal(METRICS_CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
  });
});
