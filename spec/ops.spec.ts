import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, TOKEN, type Stack } from './support/stack.js';
import { chromiumDumpDom } from './support/chromium.js';
import { parsePrometheusText } from '../lib/ops/metrics.js';
import { until } from './support/until.js';


const queue = async (stack: Stack) => (await stack.call('/queue')).json() as Promise<any>;
const metrics = async (stack: Stack) => parsePrometheusText(await (await stack.call('/metrics')).text());

/** One running stalled job on `model`, plus the given waiting requests; returns a release function. */
async function busyStack(stack: Stack, waiting: Array<{ model: string; priority?: number }>) {
  const blocker = new AbortController();
  const held = stack.call('/api/chat', {
    json: { model: 'llama3.2', messages: [{ role: 'user', content: 'hold' }], sim: { fault: 'stall', after: 1 } },
    signal: blocker.signal,
  }).then((r) => r.text()).catch(() => null);
  await until(async () => (await queue(stack)).totals.running === 1, 'the blocker');
  const waiters = waiting.map((w, i) => {
    const c = new AbortController();
    const done = stack.call('/api/generate', {
      json: { model: w.model, prompt: `w${i}`, stream: false },
      headers: w.priority === undefined ? {} : { 'x-foreman-priority': String(w.priority) },
      signal: c.signal,
    }).then((r) => r.status).catch(() => null);
    return { abort: () => c.abort(), done };
  });
  await until(async () => (await queue(stack)).totals.waiting === waiting.length, 'the waiting jobs');
  return {
    release: async () => {
      blocker.abort();
      await held;
    },
    abortWaiting: async () => {
      for (const w of waiters) w.abort();
      await Promise.all(waiters.map((w) => w.done));
    },
    waiters,
  };
}

describe('GET /queue', () => {
  it('shows the loaded model, the running job and each waiting group with its head', async (t) => {
    const stack = await startStack(t);
    const busy = await busyStack(stack, [{ model: 'qwen3' }, { model: 'qwen3', priority: 50 }, { model: 'gemma3' }]);
    const q = await queue(stack);
    assert.equal(q.loaded_model, 'llama3.2:latest');
    assert.equal(q.running.length, 1);
    assert.equal(q.running[0].model, 'llama3.2', 'a job shows its model as sent; the group key normalises');
    assert.equal(q.running[0].origin, 'sync');
    assert.equal(q.totals.waiting, 3);
    assert.equal(q.totals.max_queue, 512);
    const byModel = Object.fromEntries(q.groups.map((g: any) => [g.model, g]));
    assert.equal(byModel['qwen3:latest'].count, 2);
    assert.equal(byModel['qwen3:latest'].head_priority, 50);
    assert.equal(byModel['qwen3:latest'].head_effective_priority, 50);
    assert.equal(byModel['gemma3:latest'].count, 1);
    assert.equal(byModel['gemma3:latest'].head_priority, 10, 'sync_priority by default');
    assert.equal(q.groups[0].model, 'qwen3:latest', 'groups in pick order: the priority-50 head first');
    assert.equal(q.switches[0].to, 'llama3.2:latest');
    await busy.release();
    await Promise.all(busy.waiters.map((w) => w.done));
    const after = await queue(stack);
    assert.equal(after.totals.waiting, 0);
    assert.deepEqual(after.switches.slice(0, 2).map((s: any) => s.to), ['gemma3:latest', 'qwen3:latest']);
    assert.ok(after.switches.every((s: any) => s.load_ms === null || s.load_ms >= 0));
    assert.equal(after.recent.length, 4);
  });
});

describe('groups', () => {
  it('split one model by load-relevant options, and join native and /v1 requests of one model', async (t) => {
    const stack = await startStack(t);
    const blocker = new AbortController();
    const held = stack.call('/api/chat', {
      json: { model: 'llama3.2', messages: [{ role: 'user', content: 'hold' }], sim: { fault: 'stall', after: 1 } }, signal: blocker.signal,
    }).then((r) => r.text()).catch(() => null);
    await until(async () => (await queue(stack)).totals.running === 1, 'the blocker');
    const waiting = new AbortController();
    const send = (path: string, body: unknown) => stack.call(path, { json: body, signal: waiting.signal }).then((r) => r.text()).catch(() => null);
    const sent = [
      send('/api/generate', { model: 'qwen3', prompt: 'a', options: { num_ctx: 8192 } }),
      send('/api/generate', { model: 'qwen3:latest', prompt: 'b', options: { temperature: 0.1 } }),
      send('/v1/chat/completions', { model: 'qwen3', messages: [{ role: 'user', content: 'c' }] }),
    ];
    await until(async () => (await queue(stack)).totals.waiting === 3, 'three waiting');
    const groups = Object.fromEntries((await queue(stack)).groups.map((g: any) => [g.group, g.count]));
    assert.deepEqual(groups, { 'qwen3:latest num_ctx=8192': 1, 'qwen3:latest': 2 });
    waiting.abort();
    blocker.abort();
    await Promise.all([...sent, held]);
  });
});

describe('GET /metrics', () => {
  it('counts jobs by state and origin, switches, queue depth and tokens', async (t) => {
    const stack = await startStack(t);
    const gen = (model: string) => stack.call('/api/generate', { json: { model, prompt: 'count me', stream: false, options: { num_predict: 5 } } });
    assert.equal((await gen('llama3.2')).status, 200);
    assert.equal((await gen('llama3.2')).status, 200);
    assert.equal((await gen('llama9')).status, 404); // upstream says not found: a failed job
    const job = await (await stack.call('/jobs', { json: { model: 'llama3.2', prompt: 'async', options: { num_predict: 5 } } })).json();
    await stack.call(`/jobs/${job.id}?wait=30`);
    const streamed = await stack.call('/api/generate', { json: { model: 'qwen3', prompt: 'stream', think: false, options: { num_predict: 7 } } });
    await streamed.text();

    let m = await metrics(stack);
    assert.equal(m.get('foreman_jobs_total{origin="sync",state="completed"}'), 3);
    assert.equal(m.get('foreman_jobs_total{origin="sync",state="failed"}'), 1);
    assert.equal(m.get('foreman_jobs_total{origin="async",state="completed"}'), 1);
    assert.equal(m.get('foreman_model_switches_total'), stack.foreman.snapshot().totals.switches);
    assert.ok(m.get('foreman_model_switches_total')! >= 3);
    assert.equal(m.get('foreman_queue_wait_seconds_count{origin="sync"}'), 4);
    assert.equal(m.get('foreman_run_seconds_count{origin="async"}'), 1);
    assert.equal(m.get('foreman_tokens_generated_total{model="qwen3:latest"}'), 7, 'eval_count of the streamed final chunk');
    assert.equal(m.get('foreman_time_to_first_token_seconds_count'), 1, 'one streamed job');
    assert.ok((m.get('foreman_journal_fsync_seconds_count') ?? 0) >= 1, 'the async job was journaled');

    const busy = await busyStack(stack, [{ model: 'gemma3' }, { model: 'gemma3' }]);
    m = await metrics(stack);
    assert.equal(m.get('foreman_queue_depth{group="gemma3:latest",model="gemma3:latest"}'), 2);
    assert.equal(m.get('foreman_jobs_running'), 1);
    await busy.abortWaiting();
    await busy.release();
  });

  it('counts tokens of /v1 streams from the usage chunk', async (t) => {
    const stack = await startStack(t);
    const res = await stack.call('/v1/chat/completions', {
      json: { model: 'llama3.2', stream: true, stream_options: { include_usage: true }, max_tokens: 6, messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.match(await res.text(), /data: \[DONE\]\n\n$/);
    const m = await metrics(stack);
    assert.equal(m.get('foreman_tokens_generated_total{model="llama3.2:latest"}'), 6);
  });

  it('counts webhook deliveries by outcome', async (t) => {
    const { createServer } = await import('node:http');
    let hits = 0;
    const receiver = createServer((req, res) => {
      hits++;
      req.resume();
      res.writeHead(hits === 1 ? 500 : 204).end();
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    t.after(() => receiver.close());
    const port = (receiver.address() as import('node:net').AddressInfo).port;
    const stack = await startStack(t, { deps: { webhookSchedule: [0, 1, 1, 1] } });
    const job = await (await stack.call('/jobs', { json: { model: 'llama3.2', prompt: 'hook', state_webhook_url: `http://127.0.0.1:${port}/h` } })).json();
    await stack.call(`/jobs/${job.id}?wait=30`);
    await until(async () => (await (await stack.call(`/jobs/${job.id}`)).json()).webhook.delivered === 3, 'three deliveries');
    const m = await metrics(stack);
    assert.equal(m.get('foreman_webhook_deliveries_total{outcome="retrying"}'), 1);
    assert.equal(m.get('foreman_webhook_deliveries_total{outcome="delivered"}'), 3);
  });
});

describe('GET /health', () => {
  it('needs no token and reports upstream, version and journal', async (t) => {
    const stack = await startStack(t);
    const res = await fetch(`${stack.url}/health`);
    assert.equal(res.status, 200);
    const h = (await res.json()) as any;
    assert.equal(h.status, 'ok');
    assert.equal(h.upstream.reachable, true);
    assert.equal(typeof h.version, 'string');
    assert.equal(typeof h.uptime_s, 'number');
    assert.equal(h.journal.bad_lines, 0);
  });
});

describe('GET /ui', () => {
  it('shows the waiting jobs of a live foreman in a real browser', async (t) => {
    const stack = await startStack(t);
    const busy = await busyStack(stack, [{ model: 'qwen3' }, { model: 'qwen3' }, { model: 'gemma3' }]);
    const page = await fetch(`${stack.url}/ui`);
    assert.equal(page.status, 200, 'the page itself needs no token');
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const dom = await chromiumDumpDom(`${stack.url}/ui#token=${TOKEN}`, 3000);
    const lane = (group: string) => new RegExp(`data-group="${group}"[^>]*>.*?class="lane-count" data-count="(\\d+)"`, 's').exec(dom)?.[1];
    assert.equal(lane('qwen3:latest'), '2');
    assert.equal(lane('gemma3:latest'), '1');
    assert.match(dom, /id="loaded-model"[^>]*>llama3\.2:latest</);
    assert.doesNotMatch(dom, new RegExp(TOKEN), 'the token is not written into the page');
    await busy.abortWaiting();
    await busy.release();
  });
});

describe('logs', () => {
  it('write one line per request and per job transition, with model and times, and never a prompt or token', async (t) => {
    const lines: string[] = [];
    const { createLogger } = await import('../lib/log.js');
    const log = createLogger('json', { write: (line: string) => lines.push(line) });
    const stack = await startStack(t, { deps: { log } });
    const secretPrompt = 'purple-elephant-prompt-7731';
    await (await stack.call('/api/generate', { json: { model: 'llama3.2', prompt: secretPrompt, stream: false } })).text();
    const job = await (await stack.call('/jobs', { json: { model: 'llama3.2', messages: [{ role: 'user', content: secretPrompt }] } })).json();
    await stack.call(`/jobs/${job.id}?wait=30`);
    await fetch(`${stack.url}/api/tags`, { headers: { authorization: 'Bearer wrong-token-9981' } });

    const all = lines.join('');
    assert.doesNotMatch(all, new RegExp(secretPrompt), 'no prompt in the logs');
    assert.doesNotMatch(all, new RegExp(TOKEN), 'no configured token in the logs');
    assert.doesNotMatch(all, /wrong-token-9981/, 'no presented token in the logs');
    const records = lines.map((l) => JSON.parse(l));
    const generate = records.find((r) => r.event === 'request' && r.path === '/api/generate');
    assert.equal(generate.model, 'llama3.2', 'the model as sent');
    assert.equal(generate.status, 200);
    assert.equal(typeof generate.queue_ms, 'number');
    assert.equal(typeof generate.ms, 'number');
    const done = records.find((r) => r.event === 'job completed' && r.origin === 'sync');
    assert.equal(typeof done.run_ms, 'number');
    const asyncStates = records.filter((r) => r.job === job.id && r.event.startsWith('job ')).map((r) => r.event);
    assert.deepEqual(asyncStates, ['job queued', 'job working', 'job completed']);
    assert.ok(records.some((r) => r.event === 'request' && r.status === 401));
  });
});
