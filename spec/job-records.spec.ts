// Tests for lib/jobs/records.ts and lib/jobs/stream-merge.ts (SPEC §4, §5): the replay reducer, the
// compacted record, the public view, event payloads and the stream merger. Pure: no I/O, no clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  eventId, eventPayload, JobReplay, jobView, replayRecords, type JobRecord,
} from '../lib/jobs/records.js';
import { StreamMerger } from '../lib/jobs/stream-merge.js';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);
const iso = (ms: number) => new Date(ms).toISOString();

function submit(id: string, at: number, extra: Partial<Extract<JobRecord, { t: 'submit' }>> = {}): JobRecord {
  return {
    t: 'submit', id, at, model: 'llama3.2:latest', kind: 'chat', priority: 5, metadata: { ticket: 7 },
    webhook_url: 'http://127.0.0.1:9/hook', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] },
    idem: null, ...extra,
  };
}

const RESPONSE = {
  model: 'llama3.2:latest', created_at: iso(T0 + 300), done: true, done_reason: 'stop',
  message: { role: 'assistant', content: 'Hello there', thinking: 'greet them' },
  total_duration: 1000, load_duration: 10, prompt_eval_count: 3, prompt_eval_duration: 20, eval_count: 2, eval_duration: 30,
};

/** A completed job with a crash in the middle, a failed one, a cancelled one, and webhook progress. */
function history(): JobRecord[] {
  return [
    submit('job_a', T0),
    submit('job_b', T0 + 1, { kind: 'generate', body: { model: 'qwen3', prompt: 'x' }, webhook_url: null, priority: -3 }),
    { t: 'state', id: 'job_a', at: T0 + 10, state: 'working', attempts: 1 },
    { t: 'webhook', id: 'job_a', seq: 1, outcome: 'delivered', attempts: 1, next_at: null, error: null },
    { t: 'state', id: 'job_a', at: T0 + 20, state: 'queued', attempts: 1 }, // a restart put it back
    { t: 'webhook', id: 'job_a', seq: 2, outcome: 'retrying', attempts: 1, next_at: T0 + 5000, error: 'HTTP 500' },
    { t: 'state', id: 'job_a', at: T0 + 30, state: 'working', attempts: 2 },
    { t: 'result', id: 'job_a', at: T0 + 40, response: RESPONSE },
    { t: 'state', id: 'job_a', at: T0 + 40, state: 'completed', attempts: 2 },
    { t: 'state', id: 'job_b', at: T0 + 50, state: 'working', attempts: 1 },
    { t: 'state', id: 'job_b', at: T0 + 60, state: 'failed', attempts: 1, error: { message: 'model not found', status: 404 } },
    submit('job_c', T0 + 70, { webhook_url: null }),
    { t: 'state', id: 'job_c', at: T0 + 80, state: 'cancelled', attempts: 0, error: { message: 'cancelled' } },
  ];
}

describe('replayRecords', () => {
  it('rebuilds each job from submit, state, result and webhook records', () => {
    const { jobs, orphans } = replayRecords(history());
    assert.equal(orphans, 0);
    assert.deepEqual([...jobs.keys()], ['job_a', 'job_b', 'job_c']);
    const a = jobs.get('job_a')!;
    assert.equal(a.state, 'completed');
    assert.equal(a.attempts, 2);
    assert.deepEqual(a.transitions.map((t) => [t.seq, t.prev, t.state, t.attempts]), [
      [1, null, 'queued', 0], [2, 'queued', 'working', 1], [3, 'working', 'queued', 1], [4, 'queued', 'working', 2], [5, 'working', 'completed', 2],
    ]);
    assert.equal(a.startedAt, T0 + 30);
    assert.equal(a.finishedAt, T0 + 40);
    assert.deepEqual(a.response, RESPONSE);
    assert.deepEqual(a.webhook, {
      settledSeq: 1, delivered: 1, gone: false, lastError: 'HTTP 500', retry: { seq: 2, attempts: 1, nextAt: T0 + 5000 },
    });
    const b = jobs.get('job_b')!;
    assert.equal(b.state, 'failed');
    assert.deepEqual(b.error, { message: 'model not found', status: 404 });
    assert.equal(b.kind, 'generate');
    assert.equal(jobs.get('job_c')!.state, 'cancelled');
    assert.equal(jobs.get('job_c')!.startedAt, null);
  });

  it('counts records of unknown jobs and junk as orphans and skips them', () => {
    const { jobs, orphans } = replayRecords([
      submit('job_a', T0),
      { t: 'state', id: 'job_zzz', at: T0, state: 'working', attempts: 1 },
      null,
      42,
      { t: 'mystery', id: 'job_a' },
    ]);
    assert.equal(orphans, 4);
    assert.equal(jobs.get('job_a')!.state, 'queued');
    assert.equal(jobs.get('job_a')!.transitions.length, 1);
  });

  it('replays a compacted job record to the same view as the records it replaced', () => {
    const original = replayRecords(history()).jobs;
    // What compaction writes: one {t:'job'} line per job, through JSON.
    const compacted: unknown[] = [...original.values()].map((job) => JSON.parse(JSON.stringify({ t: 'job', job })));
    const again = replayRecords(compacted).jobs;
    assert.deepEqual([...again.keys()], [...original.keys()]);
    for (const [id, job] of original) {
      const opts = { queuePosition: null, pendingWebhooks: 1 };
      assert.deepEqual(jobView(again.get(id)!, opts), jobView(job, opts), id);
      for (let seq = 1; seq <= job.transitions.length; seq++) {
        assert.deepEqual(eventPayload(again.get(id)!, seq, 1024), eventPayload(job, seq, 1024), `${id} seq ${seq}`);
      }
    }
  });

  it('applies records appended after a compaction on top of the compacted state', () => {
    const records = [submit('job_q', T0), submit('job_r', T0 + 1)];
    const before = replayRecords(records).jobs;
    const compacted = [...before.values()].map((job) => JSON.parse(JSON.stringify({ t: 'job', job })));
    const { jobs, orphans } = replayRecords([
      ...compacted,
      { t: 'state', id: 'job_q', at: T0 + 5, state: 'working', attempts: 1 },
      { t: 'webhook', id: 'job_q', seq: 1, outcome: 'gone', attempts: 1, next_at: null, error: 'HTTP 410' },
    ]);
    assert.equal(orphans, 0);
    assert.equal(jobs.get('job_q')!.state, 'working');
    assert.deepEqual(jobs.get('job_q')!.transitions.map((t) => t.seq), [1, 2]);
    assert.equal(jobs.get('job_q')!.webhook.gone, true);
    assert.equal(jobs.get('job_r')!.state, 'queued');
  });
});

describe('JobReplay after a compaction that ran beside appends', () => {
  it('replays records that became durable during the copy after a snapshot already holding their effect', () => {
    const full = history();
    const original = replayRecords(full).jobs;
    // The snapshot caught job_a completed; its submit and later records were durable during the copy.
    const snapshot = [...original.values()].map((job) => JSON.parse(JSON.stringify({ t: 'job', job })));
    // As foreman writes them: each state record carries its seq (the submit is seq 1).
    let seq = 1;
    const tail = full.filter((r) => 'id' in r && r.id === 'job_a').map((r) => (r.t === 'state' ? { ...r, seq: ++seq } : r));
    const replay = new JobReplay();
    const kept = [...snapshot, ...tail].map((r) => replay.visit(r as object));
    const a = replay.jobs.get('job_a')!;
    assert.equal(a.state, 'completed');
    assert.deepEqual(a.transitions.map((t) => t.state), original.get('job_a')!.transitions.map((t) => t.state));
    // The submit line of a job the snapshot shows ended is not kept (its body is no longer needed).
    assert.equal(kept[snapshot.length], true);
  });

  it('still keeps the body line of a job the snapshot shows waiting', () => {
    const replay = new JobReplay();
    const waiting = replayRecords([submit('job_w', T0)]).jobs.get('job_w')!;
    replay.visit(JSON.parse(JSON.stringify({ t: 'job', job: waiting })));
    assert.equal(replay.visit(submit('job_w', T0)), 'job_w');
  });
});

describe('jobView', () => {
  it('has every record field of SPEC §4 in ISO 8601 and artifacts derived from the response', () => {
    const a = replayRecords(history()).jobs.get('job_a')!;
    const view = jobView(a, { pendingWebhooks: 4 });
    assert.deepEqual(Object.keys(view).sort(), [
      'artifacts', 'attempts', 'created_at', 'error', 'finished_at', 'id', 'key', 'kind', 'metadata', 'model', 'priority',
      'result', 'started_at', 'state', 'state_webhook_url', 'webhook',
    ]);
    assert.equal(view.created_at, iso(T0));
    assert.equal(view.key, null); // a journal from before keys: no owner, seen by admins only
    assert.equal(view.started_at, iso(T0 + 30));
    assert.equal(view.finished_at, iso(T0 + 40));
    assert.deepEqual(view.metadata, { ticket: 7 });
    assert.deepEqual(view.webhook, { delivered: 1, pending: 4, last_error: 'HTTP 500' });
    assert.deepEqual((view.artifacts as Array<{ name: string }>).map((x) => x.name), ['content.txt', 'thinking.txt', 'response.json']);
    assert.deepEqual(view.artifacts, [
      { name: 'content.txt', bytes: 11, url: '/jobs/job_a/artifacts/content.txt' },
      { name: 'thinking.txt', bytes: 10, url: '/jobs/job_a/artifacts/thinking.txt' },
      { name: 'response.json', bytes: Buffer.byteLength(JSON.stringify(RESPONSE)), url: '/jobs/job_a/artifacts/response.json' },
    ]);
    assert.deepEqual(view.result, {
      message: RESPONSE.message, done_reason: 'stop', total_duration: 1000, load_duration: 10,
      prompt_eval_count: 3, prompt_eval_duration: 20, eval_count: 2, eval_duration: 30,
    });
  });

  it('shows queue_position only while queued and no webhook block without a URL', () => {
    const { jobs } = replayRecords([submit('job_q', T0, { webhook_url: null })]);
    const view = jobView(jobs.get('job_q')!, { queuePosition: 3 });
    assert.equal(view.queue_position, 3);
    assert.equal(view.webhook, null);
    assert.equal(view.result, null);
    assert.deepEqual(view.artifacts, []);
    const done = replayRecords(history()).jobs.get('job_b')!;
    assert.equal('queue_position' in jobView(done, { queuePosition: 3 }), false);
  });
});

describe('eventPayload', () => {
  it('reflects the record as it stood at each seq, with the result only on the terminal event', () => {
    const a = replayRecords(history()).jobs.get('job_a')!;
    const events = a.transitions.map((_, i) => eventPayload(a, i + 1, 1 << 20));
    assert.deepEqual(events.map((e) => [e.seq, e.state, e.previous_state, e.at]), [
      [1, 'queued', null, iso(T0)],
      [2, 'working', 'queued', iso(T0 + 10)],
      [3, 'queued', 'working', iso(T0 + 20)],
      [4, 'working', 'queued', iso(T0 + 30)],
      [5, 'completed', 'working', iso(T0 + 40)],
    ]);
    const jobs = events.map((e) => e.job as Record<string, unknown>);
    assert.deepEqual(jobs.map((j) => j.state), ['queued', 'working', 'queued', 'working', 'completed']);
    assert.deepEqual(jobs.map((j) => j.attempts), [0, 1, 1, 2, 2]);
    assert.deepEqual(jobs.map((j) => j.started_at), [null, iso(T0 + 10), null, iso(T0 + 30), iso(T0 + 30)]);
    assert.deepEqual(jobs.map((j) => j.finished_at), [null, null, null, null, iso(T0 + 40)]);
    assert.deepEqual(jobs.map((j) => j.result === null), [true, true, true, true, false]);
    assert.deepEqual(jobs.map((j) => (j.artifacts as unknown[]).length), [0, 0, 0, 0, 3]);
    for (const e of events) {
      assert.equal(e.type, 'job.state');
      assert.equal(e.job_id, 'job_a');
      assert.equal('webhook' in (e.job as object), false, 'delivery progress is not part of the event');
      assert.equal('queue_position' in (e.job as object), false, 'queue position changes; the payload must not');
    }
    assert.equal((jobs[4]!.result as { message: { content: string } }).message.content, 'Hello there');
    assert.equal((jobs[4]!.result as Record<string, unknown>).truncated, undefined);
  });

  it('is the same bytes whenever it is computed, so a retry after a restart is identical', () => {
    const first = replayRecords(history()).jobs.get('job_a')!;
    const second = replayRecords(history()).jobs.get('job_a')!;
    second.webhook.delivered = 99; // delivery progress must not leak into the payload
    for (let seq = 1; seq <= 5; seq++) {
      assert.equal(JSON.stringify(eventPayload(first, seq, 100)), JSON.stringify(eventPayload(second, seq, 100)));
    }
    assert.equal(eventId('job_a', 3), 'evt_job_a_3');
  });

  it('carries the error on a failed terminal event and no result', () => {
    const b = replayRecords(history()).jobs.get('job_b')!;
    const last = eventPayload(b, 3, 1024);
    const job = last.job as Record<string, unknown>;
    assert.equal(last.state, 'failed');
    assert.deepEqual(job.error, { message: 'model not found', status: 404 });
    assert.equal(job.result, null);
    assert.equal((eventPayload(b, 2, 1024).job as Record<string, unknown>).error, null);
  });

  it('cuts a large result at the limit, marks it truncated and keeps the artifact whole', () => {
    const big = 'é'.repeat(20_000) + ' end'; // two bytes a character: cuts land inside characters
    const records: JobRecord[] = [
      submit('job_big', T0),
      { t: 'state', id: 'job_big', at: T0 + 1, state: 'working', attempts: 1 },
      { t: 'result', id: 'job_big', at: T0 + 2, response: { ...RESPONSE, message: { role: 'assistant', content: big, thinking: big } } },
      { t: 'state', id: 'job_big', at: T0 + 2, state: 'completed', attempts: 1 },
    ];
    const job = replayRecords(records).jobs.get('job_big')!;
    const max = 1001;
    const event = eventPayload(job, 3, max);
    const result = (event.job as Record<string, unknown>).result as { truncated?: boolean; message: { content: string; thinking?: string }; eval_count: number };
    assert.equal(result.truncated, true);
    assert.ok(big.startsWith(result.message.content), 'content is a prefix of the original');
    assert.ok(!result.message.content.includes('\uFFFD'), 'no half character at the cut');
    assert.ok(Buffer.byteLength(JSON.stringify(result)) <= max + 64, `result is about the limit, got ${Buffer.byteLength(JSON.stringify(result))}`);
    assert.equal(result.eval_count, 2, 'metrics survive the cut');
    const whole = jobView(job).artifacts as Array<{ name: string; bytes: number }>;
    assert.equal(whole.find((a) => a.name === 'content.txt')!.bytes, Buffer.byteLength(big));
    // Under the limit nothing is marked.
    const small = eventPayload(job, 3, 1 << 20);
    assert.equal(((small.job as Record<string, unknown>).result as Record<string, unknown>).truncated, undefined);
  });

  it('cuts a generate response and its thinking too', () => {
    const long = 'word '.repeat(1000);
    const job = replayRecords([
      submit('job_g', T0, { kind: 'generate', body: { model: 'qwen3', prompt: 'p' } }),
      { t: 'state', id: 'job_g', at: T0 + 1, state: 'working', attempts: 1 },
      { t: 'result', id: 'job_g', at: T0 + 2, response: { done: true, done_reason: 'length', response: long, thinking: long } },
      { t: 'state', id: 'job_g', at: T0 + 2, state: 'completed', attempts: 1 },
    ]).jobs.get('job_g')!;
    const result = (eventPayload(job, 3, 300).job as Record<string, unknown>).result as Record<string, string | boolean>;
    assert.equal(result.truncated, true);
    assert.ok(long.startsWith(result.response as string));
    assert.ok(Buffer.byteLength(JSON.stringify(result)) <= 300 + 64);
    assert.equal(result.done_reason, 'length');
  });
});

describe('StreamMerger', () => {
  it('merges chat chunks: content, thinking, tool calls and the final metrics', () => {
    const m = new StreamMerger('chat');
    const base = { model: 'qwen3:latest', created_at: iso(T0), done: false };
    assert.equal(m.push({ ...base, message: { role: 'assistant', content: '', thinking: 'Let me ' } }), null);
    m.push({ ...base, message: { role: 'assistant', content: '', thinking: 'think.' } });
    m.push({ ...base, message: { role: 'assistant', content: 'Hel' } });
    m.push({ ...base, message: { role: 'assistant', content: 'lo 🚀' } });
    m.push({ ...base, message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Oslo' } } }] } });
    assert.equal(m.done, false);
    assert.equal(m.result(), null, 'no result before the done chunk');
    m.push({
      ...base, done: true, done_reason: 'stop', message: { role: 'assistant', content: '' },
      total_duration: 9, load_duration: 1, prompt_eval_count: 4, prompt_eval_duration: 2, eval_count: 5, eval_duration: 3,
    });
    assert.equal(m.done, true);
    assert.deepEqual(m.result(), {
      model: 'qwen3:latest', created_at: iso(T0), done: true, done_reason: 'stop',
      message: {
        role: 'assistant', content: 'Hello 🚀', thinking: 'Let me think.',
        tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Oslo' } } }],
      },
      total_duration: 9, load_duration: 1, prompt_eval_count: 4, prompt_eval_duration: 2, eval_count: 5, eval_duration: 3,
    });
  });

  it('merges generate chunks into response and thinking', () => {
    const m = new StreamMerger('generate');
    m.push({ model: 'qwen3', response: '', thinking: 'hmm', done: false });
    m.push({ model: 'qwen3', response: 'one ', done: false });
    m.push({ model: 'qwen3', response: 'two', done: false });
    m.push({ model: 'qwen3', response: '', done: true, done_reason: 'length', context: [1, 2, 3], eval_count: 2 });
    assert.deepEqual(m.result(), {
      model: 'qwen3', response: 'one two', thinking: 'hmm', done: true, done_reason: 'length', context: [1, 2, 3], eval_count: 2,
    });
  });

  it('returns the text of an error line instead of merging it', () => {
    const m = new StreamMerger('chat');
    m.push({ message: { role: 'assistant', content: 'par' }, done: false });
    assert.equal(m.push({ error: 'model crashed' }), 'model crashed');
    assert.equal(m.done, false);
  });
});
