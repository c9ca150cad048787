// The async job surface end to end (SPEC §4, §5): foreman + simulator on loopback, real fetch,
// a real webhook receiver that verifies every signature, restarts on the same data dir.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { silentLogger } from '../lib/log.js';
import { parsePrometheusText } from '../lib/ops/metrics.js';
import { startStack, type Stack } from './support/stack.js';
import type { Config } from '../lib/config.js';
import type { ForemanDeps } from '../lib/app.js';
import type { SimOptions } from '../lib/sim/index.js';
import {
  allJobs, getJson, newSecret, postJob, startReceiver, waitJob,
} from './support/jobs-receiver.js';
import { until } from './support/until.js';
import { JobService } from '../lib/jobs/service.js';
import { JobReplay } from '../lib/jobs/records.js';
import { JobStore } from '../lib/jobs/store.js';
import { Scheduler, type SchedulerJob } from '../lib/sched/scheduler.js';
import { isForemanError } from '../lib/errors.js';
import { openJournal } from '../lib/journal/journal.js';
import { realJournalIo, type JournalIo } from '../lib/journal/io.js';
import type { Upstream } from '../lib/upstream.js';

const CHAT = (content: string, model = 'llama3.2') => ({ model, messages: [{ role: 'user', content }] });
const STALL = { sim: { fault: 'stall', after: 1 } };
const WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
};

function stackOf(t: TestContext, o: { sim?: SimOptions; config?: Partial<Config>; deps?: ForemanDeps; dataDir?: string } = {}): Promise<Stack> {
  return startStack(t, { ...o, deps: { log: silentLogger, ...o.deps } });
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'foreman-jobs-'));
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 10 }));
  return dir;
}

async function artifact(stack: Stack, job: any, name: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await stack.call(`/jobs/${job.id}/artifacts/${name}`);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe('POST /jobs', () => {
  it('answers 202 with Location and the record, and a chat job completes with its artifacts', async (t) => {
    const stack = await stackOf(t);
    const posted = await postJob(stack, { ...CHAT('tell me about the sea', 'qwen3'), priority: 7, metadata: { ticket: 'T-1', n: [1, 2] } });
    assert.equal(posted.status, 202);
    const job = posted.job;
    assert.equal(posted.location, `/jobs/${job.id}`);
    assert.match(job.id, /^job_[0-9a-z]+$/);
    for (const key of ['id', 'state', 'model', 'kind', 'priority', 'created_at', 'started_at', 'finished_at', 'attempts', 'metadata',
      'state_webhook_url', 'result', 'error', 'artifacts', 'webhook']) {
      assert.ok(key in job, `record has ${key}`);
    }
    assert.ok(['queued', 'working'].includes(job.state));
    assert.equal(job.model, 'qwen3', 'the name as sent, no :latest added');
    assert.equal(job.kind, 'chat');
    assert.equal(job.priority, 7);
    assert.deepEqual(job.metadata, { ticket: 'T-1', n: [1, 2] });
    assert.equal(new Date(job.created_at).toISOString(), job.created_at);
    assert.equal(job.finished_at, null);
    assert.equal(job.result, null);

    const done = await waitJob(stack, job.id);
    assert.equal(done.state, 'completed');
    assert.equal(done.attempts, 1);
    assert.ok(Date.parse(done.started_at) >= Date.parse(done.created_at));
    assert.ok(Date.parse(done.finished_at) >= Date.parse(done.started_at));
    assert.equal(done.error, null);
    assert.equal(done.result.done_reason, 'stop');
    assert.equal(typeof done.result.eval_count, 'number');
    assert.ok(done.result.message.content.length > 0);
    assert.ok(done.result.message.thinking.length > 0, 'qwen3 thinks');
    assert.deepEqual(done.artifacts.map((a: any) => a.name), ['content.txt', 'thinking.txt', 'response.json']);

    const content = await artifact(stack, done, 'content.txt');
    assert.equal(content.status, 200);
    assert.match(content.type!, /^text\/plain/);
    assert.equal(content.text, done.result.message.content);
    assert.equal(done.artifacts[0].bytes, Buffer.byteLength(content.text));
    assert.equal(done.artifacts[0].url, `/jobs/${done.id}/artifacts/content.txt`);
    assert.equal((await artifact(stack, done, 'thinking.txt')).text, done.result.message.thinking);
    const response = JSON.parse((await artifact(stack, done, 'response.json')).text);
    assert.equal(response.done, true);
    assert.equal(response.message.content, content.text);
    assert.equal(response.eval_count, done.result.eval_count);
    assert.equal((await artifact(stack, done, 'tool_calls.json')).status, 404, 'no tool calls, no artifact');
  });

  it('keeps the tool calls of a chat job in tool_calls.json', async (t) => {
    const stack = await stackOf(t);
    const { job } = await postJob(stack, { ...CHAT('what is the weather in Oslo?'), tools: [WEATHER_TOOL] });
    const done = await waitJob(stack, job.id);
    assert.equal(done.state, 'completed');
    assert.ok(done.artifacts.some((a: any) => a.name === 'tool_calls.json'));
    const calls = JSON.parse((await artifact(stack, done, 'tool_calls.json')).text);
    assert.ok(Array.isArray(calls) && calls.length >= 1);
    assert.equal(calls[0].function.name, 'get_weather');
    assert.deepEqual(calls, done.result.message.tool_calls);
  });

  it('runs a generate job; the foreman fields are not forwarded and the answer is in content.txt', async (t) => {
    const stack = await stackOf(t);
    const posted = await postJob(stack, { model: 'llama3.2', prompt: 'hello', priority: -5, metadata: 'x', options: { num_predict: 7 } });
    assert.equal(posted.status, 202);
    assert.equal(posted.job.kind, 'generate');
    const done = await waitJob(stack, posted.job.id);
    assert.equal(done.state, 'completed');
    assert.equal(done.result.done_reason, 'length');
    assert.equal(done.result.eval_count, 7);
    assert.equal((await artifact(stack, done, 'content.txt')).text, done.result.response);
    const response = JSON.parse((await artifact(stack, done, 'response.json')).text);
    assert.equal(response.response, done.result.response);
    assert.deepEqual(done.artifacts.map((a: any) => a.name), ['content.txt', 'response.json']);
  });

  it('answers every bad input with a clear JSON error and creates no job', async (t) => {
    const stack = await stackOf(t);
    const { job: existing } = await postJob(stack, CHAT('seed'));
    await waitJob(stack, existing.id);
    const before = (await allJobs(stack)).length;
    const raw = (text: string) => ({ body: text });
    const cases: Array<[string, { body?: string; json?: unknown; headers?: Record<string, string> }, number, RegExp]> = [
      ['malformed JSON', raw('{"model": "llama3.2", "prompt": '), 400, /invalid JSON/],
      ['empty body', raw(''), 400, /body/],
      ['not an object', raw('[1,2]'), 400, /JSON object/],
      ['missing model', { json: { prompt: 'hi' } }, 400, /model is required/],
      ['model of the wrong type', { json: { model: 3, prompt: 'hi' } }, 400, /model/],
      ['both messages and prompt', { json: { ...CHAT('hi'), prompt: 'hi' } }, 400, /messages.*prompt/],
      ['neither messages nor prompt', { json: { model: 'llama3.2' } }, 400, /messages.*prompt/],
      ['messages of the wrong type', { json: { model: 'llama3.2', messages: 'hi' } }, 400, /messages/],
      ['priority 101', { json: { ...CHAT('hi'), priority: 101 } }, 400, /priority/],
      ['priority "x"', { json: { ...CHAT('hi'), priority: 'x' } }, 400, /priority/],
      ['priority 1.5', { json: { ...CHAT('hi'), priority: 1.5 } }, 400, /priority/],
      ['ftp webhook', { json: { ...CHAT('hi'), state_webhook_url: 'ftp://example.com/hook' } }, 400, /http or https/],
      ['link-local IPv4 webhook', { json: { ...CHAT('hi'), state_webhook_url: 'http://169.254.169.254/latest' } }, 400, /link-local/],
      ['link-local IPv6 webhook', { json: { ...CHAT('hi'), state_webhook_url: 'http://[fe80::1]/hook' } }, 400, /link-local/],
      ['webhook not a URL', { json: { ...CHAT('hi'), state_webhook_url: 'not a url' } }, 400, /http or https/],
      ['metadata nested 3,500 deep', raw(`{"model":"llama3.2","prompt":"hi","metadata":${'['.repeat(3500)}${']'.repeat(3500)}}`), 400, /nested deeper than 512/],
      ['metadata over 16 KiB', { json: { ...CHAT('hi'), metadata: { blob: 'x'.repeat(16 * 1024) } } }, 400, /metadata/],
      ['Idempotency-Key too long', { json: CHAT('hi'), headers: { 'idempotency-key': 'k'.repeat(256) } }, 400, /Idempotency-Key/],
    ];
    for (const [name, init, status, message] of cases) {
      const res = await stack.call('/jobs', { method: 'POST', ...init });
      assert.equal(res.status, status, name);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/, name);
      const body = (await res.json()) as any;
      assert.equal(typeof body.error, 'string', name);
      assert.match(body.error, message, name);
    }
    assert.equal((await allJobs(stack)).length, before, 'no job was created');
    assert.equal(stack.foreman.jobs.size, before);
  });

  it('returns the same job for the same Idempotency-Key and body, and 422 for another body', async (t) => {
    const stack = await stackOf(t);
    const body = CHAT('once only');
    const key = { 'idempotency-key': 'order-42' };
    const first = await postJob(stack, body, key);
    assert.equal(first.status, 202);
    const again = await postJob(stack, body, key);
    assert.equal(again.status, 200);
    assert.equal(again.job.id, first.job.id);
    assert.equal(again.location, `/jobs/${first.job.id}`);
    const other = await postJob(stack, CHAT('something else'), key);
    assert.equal(other.status, 422);
    assert.match(other.job.error, /Idempotency-Key/);
    // Concurrent first use of a key: one job, both answers name it.
    const [a, b] = await Promise.all([postJob(stack, body, { 'idempotency-key': 'race' }), postJob(stack, body, { 'idempotency-key': 'race' })]);
    assert.deepEqual([a.status, b.status].sort(), [200, 202]);
    assert.equal(a.job.id, b.job.id);
    assert.equal((await allJobs(stack)).length, 2);
  });

  it('refuses jobs beyond max_queue with 503 and keeps none of the refused ones', async (t) => {
    const stack = await stackOf(t, { config: { max_queue: 2 } });
    const { job: holder } = await postJob(stack, { ...CHAT('hold'), ...STALL });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => postJob(stack, CHAT(`burst ${i}`))));
    const accepted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status === 503);
    assert.equal(accepted.length + refused.length, 8, `statuses ${results.map((r) => r.status)}`);
    assert.ok(accepted.length <= 2, `at most max_queue accepted, got ${accepted.length}`);
    for (const r of refused) assert.equal(typeof r.job.error, 'string');
    const listed = await allJobs(stack);
    assert.equal(listed.length, 1 + accepted.length, 'refused jobs left nothing behind');
    for (const r of accepted) {
      const { body } = await getJson(stack, `/jobs/${r.job.id}`);
      assert.equal(body.state, 'queued');
      assert.equal(typeof body.queue_position, 'number', 'an accepted job is in the queue');
    }
    assert.equal((await getJson(stack, `/jobs/${holder.id}/cancel`, { method: 'POST' })).body.state, 'cancelled');
    for (const r of accepted) assert.equal((await waitJob(stack, r.job.id)).state, 'completed');
  });
});

describe('JobService admission', () => {
  /** The real journal, but every append waits for open(): each submit of a burst is inside its fsync at once. */
  async function gatedJournal(dir: string) {
    const real = await openJournal({ dir, log: silentLogger });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let appended = 0;
    const journal = new Proxy(real, {
      get(target, name) {
        if (name === 'append') {
          return async (record: object, keep?: string) => {
            appended++;
            await gate;
            return target.append(record, keep);
          };
        }
        const value = Reflect.get(target, name) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return { journal, open, appended: () => appended };
  }

  it('counts submissions still waiting for their fsync against max_queue, so a burst cannot overfill it', async (t) => {
    const upstream = {
      exists: async () => true, unload: async () => {}, loadedModels: async () => [], capabilities: async () => [],
    } as unknown as Upstream;
    const scheduler = new Scheduler({ parallel: 1, maxQueue: 2, agingMs: 60_000, unloadOnSwitch: false, upstream });
    // A job that never ends holds the only slot, so whatever is admitted stays waiting.
    const holder: SchedulerJob = {
      id: 'holder', model: 'other', group: 'other', priority: 0, origin: 'sync', kind: 'chat',
      run: (rc) => new Promise((resolve) => rc.signal.addEventListener('abort', () => resolve('cancelled'))),
      dropped: () => {},
    };
    scheduler.enqueue(holder);
    const dir = await tempDir(t);
    const { journal, open, appended } = await gatedJournal(dir);
    const jobs = new JobService({
      journal, replay: new JobReplay(), store: new JobStore(dir, journal), files: { bodies: new Set(), results: new Set() },
      scheduler, upstream, maxQueue: 2, maxAttempts: 3, retentionMs: 3_600_000, webhookMaxResult: 1024, log: silentLogger,
    });
    const outcomes = Array.from({ length: 8 }, (_, i) =>
      jobs
        .submit({ kind: 'chat', model: 'llama3.2', body: CHAT(`burst ${i}`), priority: 0, metadata: null, webhookUrl: null, idempotency: null })
        .then(() => 'accepted', (err: unknown) => (isForemanError(err, 'queue_full') ? 'refused' : Promise.reject(err))),
    );
    // Both admitted submits are waiting for the journal; none of the burst is queued in the scheduler yet.
    await until(() => appended() === 2, 'both admitted submits to reach the journal');
    assert.equal(scheduler.waiting, 0);
    open();
    const settled = await Promise.all(outcomes);
    assert.deepEqual(settled.filter((o) => o === 'accepted').length, 2);
    assert.deepEqual(settled.filter((o) => o === 'refused').length, 6);
    assert.equal(scheduler.waiting, 2, 'never more waiting than max_queue');
    assert.equal(jobs.size, 2, 'a refused submit leaves no job behind');
    await scheduler.shutdown(0);
    await jobs.close();
    await journal.close();
  });
});

describe('GET /jobs', () => {
  it('pages newest first with no duplicates and no gaps, and filters by state and model', async (t) => {
    const stack = await stackOf(t);
    // Submitted at once, so many share a millisecond.
    const posted = await Promise.all(Array.from({ length: 30 }, (_, i) => postJob(stack, CHAT(`job ${i}`, i % 3 === 0 ? 'mistral' : 'llama3.2'))));
    assert.ok(posted.every((p) => p.status === 202));
    const ids = new Set(posted.map((p) => p.job.id));
    for (const id of ids) await waitJob(stack, id);
    const { job: failed } = await postJob(stack, CHAT('x', 'no-such-model'));
    await waitJob(stack, failed.id);

    const seen: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { status, body } = await getJson(stack, `/jobs?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(status, 200);
      assert.ok(body.jobs.length <= 7);
      seen.push(...body.jobs);
      cursor = body.next_cursor;
      pages++;
    } while (cursor && pages < 50);
    const seenIds = seen.map((j) => j.id);
    assert.equal(new Set(seenIds).size, seenIds.length, 'no duplicates');
    assert.deepEqual(new Set(seenIds), new Set([...ids, failed.id]), 'no gaps');
    assert.equal(seenIds[0], failed.id, 'newest first');
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1].created_at >= seen[i].created_at, 'created_at never increases');

    const completed = await allJobs(stack, 'state=completed');
    assert.equal(completed.length, 30);
    assert.ok(completed.every((j) => j.state === 'completed'));
    const failedOnly = await allJobs(stack, 'state=failed');
    assert.deepEqual(failedOnly.map((j) => j.id), [failed.id]);
    const mistral = await allJobs(stack, 'model=mistral');
    assert.equal(mistral.length, 10);
    assert.ok(mistral.every((j) => j.model === 'mistral'));
    const page = await getJson(stack, '/jobs?model=mistral:latest&state=completed&limit=4');
    assert.equal(page.body.jobs.length, 4);
    assert.ok(page.body.next_cursor);
  });

  it('pages correctly through jobs created in the same millisecond', async (t) => {
    const stack = await stackOf(t, { config: { max_queue: 1000 } });
    // Straight to the service, so every id shares its time prefix and differs only in its random tail.
    const submitted = await Promise.all(Array.from({ length: 40 }, (_, i) => stack.foreman.jobs.submit({
      kind: 'generate', model: 'llama3.2:latest', body: { model: 'llama3.2', prompt: `p${i}` }, priority: 0,
      metadata: null, webhookUrl: null, idempotency: null,
    })));
    const ids = submitted.map((s) => s.job.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const { body } = await getJson(stack, `/jobs?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...body.jobs.map((j: any) => j.id));
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    assert.equal(new Set(seen).size, seen.length, 'no duplicates');
    assert.deepEqual([...seen].sort(), [...ids].sort(), 'no gaps');
    await stack.foreman.scheduler.idle();
  });

  it('rejects bad list parameters', async (t) => {
    const stack = await stackOf(t);
    for (const bad of ['state=done', 'limit=0', 'limit=501', 'limit=abc']) {
      const { status, body } = await getJson(stack, `/jobs?${bad}`);
      assert.equal(status, 400, bad);
      assert.equal(typeof body.error, 'string');
    }
  });
});

describe('GET /jobs/{id}, events and artifacts', () => {
  it('answers 404 for unknown jobs and artifacts, 405 for other methods', async (t) => {
    const stack = await stackOf(t);
    for (const [method, path] of [['GET', '/jobs/job_nope'], ['GET', '/jobs/job_nope/events'], ['GET', '/jobs/job_nope/artifacts/content.txt'],
      ['POST', '/jobs/job_nope/cancel'], ['DELETE', '/jobs/job_nope']] as const) {
      const { status, body } = await getJson(stack, path, { method });
      assert.equal(status, 404, `${method} ${path}`);
      assert.match(body.error, /job_nope/);
    }
    const { job } = await postJob(stack, CHAT('hi'));
    await waitJob(stack, job.id);
    assert.equal((await getJson(stack, `/jobs/${job.id}/artifacts/secrets.txt`)).status, 404);
    assert.equal((await getJson(stack, `/jobs/${job.id}/artifacts/..%2F..%2Fjournal.jsonl`)).status, 404);
    assert.equal((await getJson(stack, `/jobs/${job.id}`, { method: 'PUT' })).status, 405);
    assert.equal((await getJson(stack, '/jobs/nope?wait=abc')).status, 404);
    assert.equal((await getJson(stack, `/jobs/${job.id}?wait=-1`)).status, 400);
    // Above the 300 s cap a long poll is clamped to it, not refused.
    const long = await getJson(stack, `/jobs/${job.id}?wait=86400`);
    assert.equal(long.status, 200);
    assert.equal(long.body.state, 'completed');
  });

  it('lists a job\'s events in order, seq 1..n, with the previous state chained', async (t) => {
    const stack = await stackOf(t);
    const { job } = await postJob(stack, { ...CHAT('hello'), metadata: { a: 1 } });
    await waitJob(stack, job.id);
    const { status, body } = await getJson(stack, `/jobs/${job.id}/events`);
    assert.equal(status, 200);
    const events = body.events;
    assert.deepEqual(events.map((e: any) => [e.seq, e.state, e.previous_state]), [
      [1, 'queued', null], [2, 'working', 'queued'], [3, 'completed', 'working'],
    ]);
    for (const e of events) {
      assert.equal(e.type, 'job.state');
      assert.equal(e.job_id, job.id);
      assert.equal(e.job.id, job.id);
      assert.equal(e.job.state, e.state);
      assert.deepEqual(e.job.metadata, { a: 1 });
    }
    assert.equal(events[0].job.result, null);
    assert.equal(events[1].job.attempts, 1);
    assert.ok(events[2].job.result.message.content.length > 0);
    assert.ok(events[0].at <= events[1].at && events[1].at <= events[2].at);
  });

  it('records a failed job\'s error message and upstream status', async (t) => {
    const stack = await stackOf(t);
    const { job: before } = await postJob(stack, { ...CHAT('boom'), sim: { fault: 'error_before', status: 500, message: 'the GPU caught fire' } });
    const { job: unknown } = await postJob(stack, CHAT('hi', 'no-such-model'));
    const { job: mid } = await postJob(stack, { ...CHAT('boom'), sim: { fault: 'error_mid', after: 2, message: 'lost the thread' } });
    const a = await waitJob(stack, before.id);
    assert.equal(a.state, 'failed');
    assert.equal(a.error.status, 500);
    assert.match(a.error.message, /the GPU caught fire/);
    assert.equal(a.result, null);
    assert.deepEqual(a.artifacts, []);
    const b = await waitJob(stack, unknown.id);
    assert.equal(b.state, 'failed');
    assert.equal(b.error.status, 404);
    assert.match(b.error.message, /no-such-model/);
    const c = await waitJob(stack, mid.id);
    assert.equal(c.state, 'failed');
    assert.match(c.error.message, /lost the thread/);
    const events = (await getJson(stack, `/jobs/${before.id}/events`)).body.events;
    assert.deepEqual(events.map((e: any) => e.state), ['queued', 'working', 'failed']);
    assert.equal(events[2].job.error.status, 500);
  });
});

describe('cancel', () => {
  it('cancels a queued job and a working one, aborting its upstream request; a finished one is 409', async (t) => {
    const secret = newSecret();
    const receiver = await startReceiver(t, secret);
    const stack = await stackOf(t, { config: { webhook_secret: secret } });
    const { job: working } = await postJob(stack, { ...CHAT('hold the slot'), ...STALL, state_webhook_url: receiver.url });
    await receiver.until((all) => all.some((d) => d.body.job_id === working.id && d.body.state === 'working'));
    const { status, job: queued } = await postJob(stack, CHAT('behind it'));
    assert.equal(status, 202);
    assert.equal(queued.state, 'queued');
    assert.equal(queued.queue_position, 1);

    const c1 = await getJson(stack, `/jobs/${queued.id}/cancel`, { method: 'POST' });
    assert.equal(c1.status, 200);
    assert.equal(c1.body.state, 'cancelled');
    assert.equal(c1.body.started_at, null);
    assert.ok(c1.body.finished_at);
    assert.deepEqual((await getJson(stack, `/jobs/${queued.id}/events`)).body.events.map((e: any) => e.state), ['queued', 'cancelled']);

    assert.equal(stack.sim.stats().aborted, 0);
    const c2 = await getJson(stack, `/jobs/${working.id}`, { method: 'DELETE' });
    assert.equal(c2.status, 200);
    assert.equal(c2.body.state, 'cancelled');
    assert.ok(c2.body.started_at);
    await until(() => stack.sim.stats().aborted === 1, 'the simulator saw the request aborted');
    assert.equal(stack.sim.stats().active, 0);
    assert.deepEqual((await getJson(stack, `/jobs/${working.id}/events`)).body.events.map((e: any) => e.state), ['queued', 'working', 'cancelled']);

    const again = await getJson(stack, `/jobs/${working.id}/cancel`, { method: 'POST' });
    assert.equal(again.status, 409);
    assert.match(again.body.error, /cancelled/);
    const { job: next } = await postJob(stack, CHAT('after'));
    const done = await waitJob(stack, next.id);
    assert.equal(done.state, 'completed', 'the slot is free again');
    const finished = await getJson(stack, `/jobs/${next.id}/cancel`, { method: 'POST' });
    assert.equal(finished.status, 409);
    assert.equal((await getJson(stack, `/jobs/${next.id}`)).body.state, 'completed', 'a refused cancel changes nothing');
    await receiver.until((all) => all.some((d) => d.body.job_id === working.id && d.body.state === 'cancelled'));
  });
});

describe('state webhooks', () => {
  it('delivers queued, working, completed in order, signed, with seq 1..3 and a previous_state chain', async (t) => {
    const secret = newSecret();
    const receiver = await startReceiver(t, secret);
    const stack = await stackOf(t, { config: { webhook_secret: secret } });
    const jobs = await Promise.all([1, 2, 3].map((i) => postJob(stack, { ...CHAT(`hook ${i}`), state_webhook_url: receiver.url })));
    for (const { job } of jobs) await waitJob(stack, job.id);
    await receiver.until((all) => all.length >= 9);
    await stack.foreman.jobs.webhooksIdle();
    assert.equal(receiver.deliveries.length, 9);
    for (const d of receiver.deliveries) {
      assert.ok(d.verified, `signature of ${d.id} verifies`);
      assert.equal(d.headers['content-type'], 'application/json');
      assert.equal(d.id, `evt_${d.body.job_id}_${d.body.seq}`);
      assert.ok(Math.abs(Number(d.timestamp) - Date.now() / 1000) < 600);
    }
    for (const { job } of jobs) {
      const got = receiver.of(job.id);
      assert.deepEqual(got.map((d) => [d.body.seq, d.body.state, d.body.previous_state]), [
        [1, 'queued', null], [2, 'working', 'queued'], [3, 'completed', 'working'],
      ]);
      assert.equal(got[2]!.body.job.result.message.content.length > 0, true);
      assert.equal(got[0]!.body.job.result, null);
      const events = (await getJson(stack, `/jobs/${job.id}/events`)).body.events;
      assert.deepEqual(got.map((d) => d.body), events, 'GET events has the same payloads');
      const record = (await getJson(stack, `/jobs/${job.id}`)).body;
      assert.deepEqual(record.webhook, { delivered: 3, pending: 0, last_error: null });
      assert.equal(record.state_webhook_url, receiver.url);
    }
  });

  it('retries a 500 with the same webhook-id and keeps later events behind it', async (t) => {
    const secret = newSecret();
    const receiver = await startReceiver(t, secret, (d, nth) => (d.body.seq === 1 && nth < 2 ? 500 : 200));
    const stack = await stackOf(t, { config: { webhook_secret: secret }, deps: { webhookSchedule: [0, 10, 20] } });
    const { job } = await postJob(stack, { ...CHAT('retry me'), state_webhook_url: receiver.url });
    await waitJob(stack, job.id);
    await receiver.until((all) => all.filter((d) => d.body.seq === 3).length === 1);
    const got = receiver.of(job.id);
    assert.deepEqual(got.map((d) => d.body.seq), [1, 1, 1, 2, 3]);
    assert.deepEqual(got.slice(0, 3).map((d) => d.id), [`evt_${job.id}_1`, `evt_${job.id}_1`, `evt_${job.id}_1`]);
    assert.equal(got[0]!.raw, got[2]!.raw, 'a retry sends the same body');
    assert.ok(got.every((d) => d.verified));
    await stack.foreman.jobs.webhooksIdle();
    const record = (await getJson(stack, `/jobs/${job.id}`)).body;
    assert.deepEqual(record.webhook, { delivered: 3, pending: 0, last_error: 'HTTP 500' });
  });

  it('stops delivering a job\'s events after a 410, and other jobs still get theirs', async (t) => {
    const receiver = await startReceiver(t, null, (d) => (d.body.job.metadata === 'gone' ? 410 : 200));
    const stack = await stackOf(t, { deps: { webhookSchedule: [0, 10, 20] } });
    const { job: gone } = await postJob(stack, { ...CHAT('go away'), metadata: 'gone', state_webhook_url: receiver.url });
    const { job: kept } = await postJob(stack, { ...CHAT('stay'), metadata: 'kept', state_webhook_url: receiver.url });
    await waitJob(stack, gone.id);
    await waitJob(stack, kept.id);
    await receiver.until((all) => all.filter((d) => d.body.job_id === kept.id).length === 3);
    await stack.foreman.jobs.webhooksIdle();
    assert.deepEqual(receiver.of(gone.id).map((d) => d.body.seq), [1], 'nothing after the 410');
    assert.equal(receiver.deliveries[0]!.headers['webhook-signature'], undefined, 'no secret, no signature');
    const record = (await getJson(stack, `/jobs/${gone.id}`)).body;
    assert.equal(record.state, 'completed');
    assert.deepEqual(record.webhook, { delivered: 0, pending: 0, last_error: 'HTTP 410' });
    assert.deepEqual((await getJson(stack, `/jobs/${kept.id}`)).body.webhook, { delivered: 3, pending: 0, last_error: null });
  });

  it('cuts a large result in the completion event at webhook_max_result and keeps the artifact whole', async (t) => {
    const secret = newSecret();
    const receiver = await startReceiver(t, secret);
    const stack = await stackOf(t, { config: { webhook_secret: secret, webhook_max_result: 300 } });
    const { job } = await postJob(stack, { ...CHAT('write at length', 'qwen3'), options: { num_predict: 300 }, state_webhook_url: receiver.url });
    const done = await waitJob(stack, job.id);
    const [, , completed] = await receiver.until((all) => all.length === 3);
    assert.equal(completed!.body.state, 'completed');
    assert.ok(completed!.verified);
    const result = completed!.body.job.result;
    assert.equal(result.truncated, true);
    assert.ok(Buffer.byteLength(JSON.stringify(result)) <= 300 + 64, `cut result is ${Buffer.byteLength(JSON.stringify(result))} bytes`);
    assert.ok(done.result.message.content.startsWith(result.message.content));
    assert.equal(result.eval_count, done.result.eval_count);
    const content = await artifact(stack, done, 'content.txt');
    assert.ok(Buffer.byteLength(content.text) > 300);
    assert.equal(content.text, done.result.message.content, 'the artifact is whole');
    assert.equal(done.result.truncated, undefined, 'the record itself is not cut');
  });

  it('resumes pending deliveries after a restart with the same webhook-id and bytes', async (t) => {
    const secret = newSecret();
    let up = false;
    const receiver = await startReceiver(t, secret, () => (up ? 200 : 503));
    const dataDir = await tempDir(t);
    // One immediate retry, then an hour: the event is pending when foreman stops.
    const first = await stackOf(t, { dataDir, config: { webhook_secret: secret }, deps: { webhookSchedule: [0, 3_600_000] } });
    const { job } = await postJob(first, { ...CHAT('remember me'), state_webhook_url: receiver.url });
    await waitJob(first, job.id);
    await receiver.until((all) => all.length === 2);
    await first.foreman.jobs.webhooksIdle();
    const before = (await getJson(first, `/jobs/${job.id}`)).body;
    assert.deepEqual(before.webhook, { delivered: 0, pending: 3, last_error: 'HTTP 503' });
    await first.foreman.close();

    up = true;
    // Two hours later: the retry is due at once.
    const second = await stackOf(t, { dataDir, config: { webhook_secret: secret }, deps: { now: () => Date.now() + 7_200_000 } });
    const all = await receiver.until((d) => d.length === 5);
    assert.deepEqual(all.map((d) => d.body.seq), [1, 1, 1, 2, 3]);
    assert.deepEqual(all.map((d) => d.id), [1, 1, 1, 2, 3].map((s) => `evt_${job.id}_${s}`));
    assert.equal(all[2]!.raw, all[0]!.raw, 'the resumed event is byte for byte the first one');
    assert.ok(all.every((d) => d.verified));
    await second.foreman.jobs.webhooksIdle();
    const after = (await getJson(second, `/jobs/${job.id}`)).body;
    assert.equal(after.state, 'completed');
    assert.deepEqual(after.webhook, { delivered: 3, pending: 0, last_error: 'HTTP 503' });
  });

  it('sends again after a restart an event whose delivery was in flight when foreman stopped', async (t) => {
    let hang = true;
    const receiver = await startReceiver(t, null, () => 200);
    const dataDir = await tempDir(t);
    const first = await stackOf(t, { dataDir, deps: { webhookSchedule: [0, 10] } });
    // Hold the first delivery unanswered by answering only when told.
    const original = receiver.answer;
    receiver.answer = (d, nth) => (hang ? 0 : original(d, nth));
    const { job } = await postJob(first, { ...CHAT('in flight'), state_webhook_url: receiver.url });
    await waitJob(first, job.id);
    await receiver.until((all) => all.length >= 1);
    await first.foreman.close();
    hang = false;
    const second = await stackOf(t, { dataDir });
    const all = await receiver.until((d) => d.filter((x) => x.body.seq === 3).length === 1);
    assert.deepEqual(all.map((d) => d.body.seq), [1, 1, 2, 3]);
    await second.foreman.jobs.webhooksIdle();
    assert.deepEqual((await getJson(second, `/jobs/${job.id}`)).body.webhook, { delivered: 3, pending: 0, last_error: null });
  });
});

describe('restart', () => {
  it('keeps every record across a restart; queued and interrupted jobs run again; compaction keeps each transition once', async (t) => {
    const dataDir = await tempDir(t);
    const first = await stackOf(t, { dataDir, config: { shutdown_grace_ms: 50 } });
    const { job: done } = await postJob(first, CHAT('finished before'));
    await waitJob(first, done.id);
    const { job: holder } = await postJob(first, { ...CHAT('hold'), ...STALL });
    const { job: waiting } = await postJob(first, CHAT('waits for the restart'));
    const { job: cancelled } = await postJob(first, CHAT('cancelled while compacting'));
    // A transition made while a compaction is pending must end up in the journal once.
    const compacted = first.foreman.jobs.compact();
    const cancelling = getJson(first, `/jobs/${cancelled.id}/cancel`, { method: 'POST' });
    await compacted;
    assert.equal((await cancelling).body.state, 'cancelled');
    const views = new Map<string, any>();
    const events = new Map<string, any>();
    for (const id of [done.id, cancelled.id]) {
      views.set(id, (await getJson(first, `/jobs/${id}`)).body);
      events.set(id, (await getJson(first, `/jobs/${id}/events`)).body.events);
    }
    // Shutdown: the queued job stays queued; the stalled one outlives the grace and goes back to the queue.
    await first.foreman.close();

    const second = await stackOf(t, { dataDir });
    for (const [id, view] of views) assert.deepEqual((await getJson(second, `/jobs/${id}`)).body, view, `${id} survives as it was`);
    for (const [id, list] of events) assert.deepEqual((await getJson(second, `/jobs/${id}/events`)).body.events, list, `${id} events`);
    assert.deepEqual(events.get(cancelled.id).map((e: any) => e.state), ['queued', 'cancelled']);
    assert.equal((await getJson(second, `/jobs/${holder.id}`)).body.state, 'working', 'the interrupted job runs again first (it is older)');
    const stopped = await getJson(second, `/jobs/${holder.id}/cancel`, { method: 'POST' });
    assert.equal(stopped.body.state, 'cancelled');
    assert.deepEqual((await getJson(second, `/jobs/${holder.id}/events`)).body.events.map((e: any) => [e.state, e.job.attempts]), [
      ['queued', 0], ['working', 1], ['queued', 1], ['working', 2], ['cancelled', 2],
    ]);
    const ran = await waitJob(second, waiting.id);
    assert.equal(ran.state, 'completed');
    assert.equal(ran.attempts, 1);
    assert.deepEqual((await getJson(second, `/jobs/${waiting.id}/events`)).body.events.map((e: any) => e.state), ['queued', 'working', 'completed']);
    const health = (await getJson(second, '/health')).body;
    assert.equal(health.journal.orphan_records, 0);
    assert.equal(health.journal.torn_tail, false);
  });

  it('drops finished jobs older than retention at compaction and keeps the rest, across a restart', async (t) => {
    const dataDir = await tempDir(t);
    let skew = 0;
    const deps = { now: () => Date.now() + skew };
    const first = await stackOf(t, { dataDir, config: { retention_ms: 60_000 }, deps });
    const { job: old } = await postJob(first, CHAT('old news'), { 'idempotency-key': 'old' });
    await waitJob(first, old.id);
    skew = 120_000; // two minutes later
    const { job: recent } = await postJob(first, CHAT('fresh'), { 'idempotency-key': 'recent' });
    await waitJob(first, recent.id);
    await first.foreman.jobs.compact();
    assert.equal((await getJson(first, `/jobs/${old.id}`)).status, 404, 'past retention, gone');
    assert.equal((await getJson(first, `/jobs/${recent.id}`)).body.state, 'completed');
    const again = await postJob(first, CHAT('fresh'), { 'idempotency-key': 'recent' });
    assert.equal(again.status, 200, 'idempotency still holds for a kept job');
    assert.equal(again.job.id, recent.id);
    const view = (await getJson(first, `/jobs/${recent.id}`)).body;
    await first.foreman.close();

    const second = await stackOf(t, { dataDir, config: { retention_ms: 60_000 }, deps });
    assert.equal((await getJson(second, `/jobs/${old.id}`)).status, 404, 'and gone from the journal');
    assert.deepEqual((await getJson(second, `/jobs/${recent.id}`)).body, view);
    assert.deepEqual((await allJobs(second)).map((j) => j.id), [recent.id]);
    const reused = await postJob(second, CHAT('a new job under an old key'), { 'idempotency-key': 'old' });
    assert.equal(reused.status, 202, 'the key of a dropped job is free again');
  });
});

describe('async jobs when upstream is down', () => {
  it('requeue with backoff while Ollama is unreachable and complete once it is back', async (t) => {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as import('node:net').AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const stack = await startStack(t, { config: { upstream: `http://127.0.0.1:${port}` } });
    const { job } = await postJob(stack, { model: 'llama3.2', prompt: 'survive a restart of Ollama' });
    await until(async () => {
      const j = (await getJson(stack, `/jobs/${job.id}`)).body;
      return j.state === 'queued' && j.attempts === 1 && /upstream unreachable/.test(j.error?.message ?? '');
    }, 'the first attempt to fail and requeue');
    const { startSim } = await import('../lib/sim/index.js');
    const sim = await startSim({ port });
    t.after(() => sim.close());
    const done = await waitJob(stack, job.id);
    assert.equal(done.state, 'completed');
    assert.equal(done.attempts, 2);
    assert.equal(done.error, null);
    const states = (await getJson(stack, `/jobs/${job.id}/events`)).body.events.map((e: any) => e.state);
    assert.deepEqual(states, ['queued', 'working', 'queued', 'working', 'completed']);
    const metrics = parsePrometheusText(await (await stack.call('/metrics')).text());
    assert.equal(metrics.get('foreman_jobs_total{origin="async",state="requeued"}'), 1, 'the unreachable run is booked as requeued');
    assert.equal(metrics.get('foreman_jobs_total{origin="async",state="failed"}'), undefined);
    assert.equal(metrics.get('foreman_jobs_total{origin="async",state="completed"}'), 1);
  });
});


describe('async jobs and the lane slot', () => {
  it('gives the slot back once upstream is done: the next job runs while the last outcome is still being made durable', async (t) => {
    // The first result file write is held: the first job's outcome cannot become durable. The
    // journal itself stays free (a held journal write would hold the next job's 'working' too).
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding: (() => void) | null = null;
    const reached = new Promise<void>((r) => (holding = r));
    const io: JournalIo = {
      write: async (fh, data) => {
        if (holding && !data.subarray(0, 5).equals(Buffer.from('{"t":'))) {
          holding();
          holding = null;
          await held;
        }
        await realJournalIo.write(fh, data);
      },
      datasync: (fh) => realJournalIo.datasync(fh),
    };
    t.after(() => release()); // before the stack's own close, which waits for the held outcome
    const stack = await stackOf(t, { config: { parallel: 1 }, deps: { journalIo: io } });
    const first = (await postJob(stack, CHAT('first'))).job;
    await reached;
    const second = (await postJob(stack, CHAT('second'))).job;
    await until(() => (stack.sim.stats().requests['llama3.2:latest'] ?? 0) === 2, 'the second job to reach upstream while the first outcome is held');
    assert.equal((await waitJob(stack, second.id)).state, 'completed');
    assert.equal((await getJson(stack, `/jobs/${first.id}`)).body.state, 'working', 'not completed before its outcome is durable');
    release();
    const done = await waitJob(stack, first.id);
    assert.equal(done.state, 'completed');
    assert.ok(done.result, 'its result is stored');
  });
});
