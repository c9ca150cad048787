import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { QueueSnapshot } from '../lib/ops/queue-view.js';
import { formatDuration, renderStatus, renderWatchFrame, WATCH_FRAME_PREFIX } from '../lib/ops/status-render.js';

const snapshot = (): QueueSnapshot => ({
  at: '2025-01-02T10:00:00.000Z',
  upstream: 'http://127.0.0.1:11434',
  loaded_group: 'llama3.2',
  loaded_model: 'llama3.2',
  running: [{
    id: 'j_01abc', model: 'llama3.2', group: 'llama3.2', origin: 'sync', kind: 'chat',
    priority: 10, started_at: '2025-01-02T09:59:48.000Z', elapsed_ms: 12_345, queue_ms: 800,
  }],
  groups: [
    { group: 'llama3.2', model: 'llama3.2', count: 3, head_priority: 10, head_wait_ms: 4_200, head_effective_priority: 10 },
    { group: 'qwen2.5:14b num_ctx=8192', model: 'qwen2.5:14b', count: 12, head_priority: 0, head_wait_ms: 125_000,
      head_effective_priority: 4.25 },
  ],
  lanes: [
    { name: 'local', kind: 'local', parallel: 2, running: 1, waiting: 15, loaded_group: 'llama3.2:latest' },
    { name: 'cloud', kind: 'cloud', parallel: 4, running: 0, waiting: 0, loaded_group: null },
  ],
  totals: { waiting: 15, running: 1, max_queue: 1000, parallel: 2, completed: 40, failed: 2, cancelled: 1, requeued: 0, switches: 7 },
  switches: [
    { at: '2025-01-02T09:50:00.000Z', from: null, to: 'qwen2.5:14b', load_ms: 9_100 },
    { at: '2025-01-02T09:59:30.000Z', from: 'qwen2.5:14b', to: 'llama3.2', load_ms: 2_500 },
  ],
  recent: [
    { id: 'j_00zzz', model: 'qwen2.5:14b', origin: 'async', state: 'failed', queue_ms: 3_000, run_ms: 450,
      finished_at: '2025-01-02T09:59:00.000Z' },
  ],
  embeddings: { in_flight: 1, max: 4 },
});

describe('status-render', () => {
  it('prints the loaded model, running jobs, groups and totals as aligned plain text', () => {
    const text = renderStatus(snapshot());
    assert.equal(text, [
      'foreman  http://127.0.0.1:11434  at 2025-01-02T10:00:00.000Z',
      'loaded   llama3.2',
      'running  1/2',
      '  ID       MODEL     ORIGIN  KIND  PRIO  ELAPSED',
      '  j_01abc  llama3.2  sync    chat    10    12.3s',
      'waiting  15/1000',
      '  GROUP                     WAITING  HEAD PRIO  HEAD WAIT  EFF PRIO',
      '  llama3.2                        3         10       4.2s        10',
      '  qwen2.5:14b num_ctx=8192       12          0      2m05s       4.3',
      'cloud    0/4 running  0 waiting',
      'totals   completed 40  failed 2  cancelled 1  switches 7  embeddings 1/4',
      'switches last 2',
      '        WHEN  FROM         TO           LOAD',
      '   30.0s ago  qwen2.5:14b  llama3.2     2.5s',
      '  10m00s ago  -            qwen2.5:14b  9.1s',
      'recent   last 1',
      '  ID       MODEL        ORIGIN  STATE   QUEUE    RUN',
      '  j_00zzz  qwen2.5:14b  async   failed   3.0s  450ms',
      '',
    ].join('\n'));
  });

  it('shows each host\'s measured load times, then its estimated ones marked ~', () => {
    const hosts: QueueSnapshot['hosts'] = [{
      name: 'studio', url: 'http://studio.lan:11434', state: 'up', error: null, version: '0.12.6', parallel: 1, running: 0,
      loaded_group: 'llama3.2', loaded_model: 'llama3.2', switches: 1, loads: [{ group: 'llama3.2', load_ms: 4_200, loads: 2 }],
      estimated_loads: [{ group: 'qwen3', load_ms: 6_100, from: 'model' }], models: ['llama3.2', 'qwen3'],
      embeddings: { in_flight: 0, max: 4, loaded: null },
    }];
    const text = renderStatus({ ...snapshot(), hosts }, { width: 120 });
    assert.match(text, /studio +up +llama3\.2 +0\/1 +1 +llama3\.2 4\.2s, qwen3 ~6\.1s\n/);
  });

  it('uses no escape sequences unless color is asked for', () => {
    assert.doesNotMatch(renderStatus(snapshot()), /\x1b/);
    const colored = renderStatus(snapshot(), { color: true });
    assert.match(colored, /\x1b\[32mllama3\.2\x1b\[0m/);
    assert.match(colored, /\x1b\[31mfailed 2\x1b\[0m/);
    // Stripping the colour gives back exactly the plain layout.
    assert.equal(colored.replace(/\x1b\[\d+m/g, ''), renderStatus(snapshot()));
  });

  it('says none when no model is loaded and omits empty tables', () => {
    const s = { ...snapshot(), loaded_group: null, loaded_model: null, running: [], groups: [], switches: [], recent: [] };
    const text = renderStatus(s);
    assert.match(text, /^loaded   none$/m);
    assert.doesNotMatch(text, /GROUP|ELAPSED|switches last|recent/);
  });

  it('cuts long group names to fit the terminal width', () => {
    const s = snapshot();
    s.groups[1]!.group = 'x'.repeat(200);
    const lines = renderStatus(s, { width: 60 }).split('\n');
    const row = lines.find((l) => l.startsWith('  xxx'))!;
    assert.equal(row.length, 60);
    assert.match(row, /x…\s+12\s+0\s+2m05s\s+4.3$/);
  });

  it('replaces control characters in names so a model cannot drive the terminal', () => {
    const s = snapshot();
    s.groups[0]!.group = 'evil\x1b[2Jname';
    const text = renderStatus(s);
    assert.doesNotMatch(text, /\x1b/);
    assert.match(text, /evil\?\[2Jname/);
  });

  it('prefixes a watch frame with cursor-home and clear-screen', () => {
    const frame = renderWatchFrame(snapshot(), { color: false });
    assert.equal(WATCH_FRAME_PREFIX, '\x1b[H\x1b[2J');
    assert.ok(frame.startsWith('\x1b[H\x1b[2Jforeman  http://'));
    assert.equal(frame.slice(WATCH_FRAME_PREFIX.length), renderStatus(snapshot()));
  });

  it('formats durations compactly', () => {
    assert.deepEqual([0, 999, 1000, 59_999, 60_000, 3_599_999, 3_600_000, -1].map(formatDuration),
      ['0ms', '999ms', '1.0s', '59.9s', '1m00s', '59m59s', '1h00m', '-']);
  });
});
