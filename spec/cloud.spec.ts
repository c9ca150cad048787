import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isCloudModel, parseModelRef } from '../lib/sched/model-ref.js';
import { groupKey, normalizeModel } from '../lib/sched/model-group.js';
import { Scheduler, type FinishState, type RunContext, type SchedulerJob } from '../lib/sched/scheduler.js';
import { parseRetryAfter } from '../lib/upstream.js';
import { startStack, type Stack } from './support/stack.js';
import { until } from './support/until.js';

const CLOUD = 'gpt-oss:120b-cloud';
const chat = (model: string, content: string, extra: Record<string, unknown> = {}) => ({
  model, messages: [{ role: 'user', content }], stream: false, ...extra,
});

describe('cloud model names (as Ollama parses them)', () => {
  it('reads :cloud, a -cloud tag and :local, and nothing else', () => {
    assert.deepEqual(parseModelRef('gpt-oss:120b-cloud'), { base: 'gpt-oss:120b', source: 'cloud' });
    assert.deepEqual(parseModelRef('gpt-oss:120b:cloud'), { base: 'gpt-oss:120b', source: 'cloud' });
    assert.deepEqual(parseModelRef('kimi-k2:CLOUD'), { base: 'kimi-k2', source: 'cloud' });
    assert.deepEqual(parseModelRef('llama3.2:local'), { base: 'llama3.2', source: 'local' });
    assert.deepEqual(parseModelRef('llama3.2:3b'), { base: 'llama3.2:3b', source: 'unspecified' });
    // A registry port is not a tag; a name merely containing "cloud" is local.
    assert.equal(isCloudModel('registry.example.com:5000-cloud/x'), false);
    assert.equal(isCloudModel('cloudy:latest'), false);
    assert.equal(isCloudModel('my-cloud'), false);
  });

  it('puts x:local in the group of x', () => {
    assert.equal(normalizeModel('llama3.2:local'), 'llama3.2:latest');
    assert.equal(groupKey('llama3.2:local', { num_ctx: 8192 }), groupKey('llama3.2', { num_ctx: 8192 }));
    assert.notEqual(groupKey(CLOUD, undefined), groupKey('gpt-oss:120b', undefined));
  });

  it('reads Retry-After as seconds or as a date', () => {
    assert.equal(parseRetryAfter('7', 0), 7000);
    assert.equal(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4000), 6000);
    assert.equal(parseRetryAfter(null, 0), null);
    assert.equal(parseRetryAfter('soon', 0), null);
  });
});

/** An upstream stand-in that records what the scheduler asked of it. */
function fakeUpstream() {
  const calls: string[] = [];
  return {
    calls,
    async exists(model: string) { calls.push(`show ${model}`); return true; },
    async unload(model: string) { calls.push(`unload ${model}`); },
    async loadedModels() { calls.push('ps'); return []; },
    async capabilities() { return ['completion']; },
  };
}

interface Controlled extends SchedulerJob {
  started: Promise<RunContext>;
  isStarted(): boolean;
  finish(state?: FinishState): void;
}

function job(id: string, model: string, priority = 0): Controlled {
  let onStart!: (rc: RunContext) => void;
  let end!: (s: FinishState) => void;
  let began = false;
  const started = new Promise<RunContext>((r) => (onStart = r));
  const ended = new Promise<FinishState>((r) => (end = r));
  return {
    id, model, group: model, priority, origin: 'sync', kind: 'chat', started,
    isStarted: () => began,
    finish: (s = 'completed') => end(s),
    run(rc) {
      began = true;
      onStart(rc);
      return ended;
    },
    dropped() {},
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('the cloud lane (scheduler)', () => {
  it('runs cloud jobs beside the local model while another local model waits for its drain, without a switch', async () => {
    const upstream = fakeUpstream();
    const s = new Scheduler({ parallel: 1, maxQueue: 100, agingMs: 60_000, unloadOnSwitch: true, upstream, cloudParallel: 4 });
    const a = job('a', 'A');
    const b = job('b', 'B', 50); // higher priority, but a switch: it waits for a's drain
    const c1 = job('c1', CLOUD);
    const c2 = job('c2', 'qwen3-coder:480b-cloud', -50); // low priority does not hold it behind local work
    s.enqueue(a);
    await a.started;
    s.enqueue(b);
    s.enqueue(c1);
    s.enqueue(c2);
    await c1.started;
    await c2.started;
    assert.equal(b.isStarted(), false);
    const snap = s.state();
    assert.deepEqual(snap.lanes.map((l) => [l.name, l.running, l.waiting]), [['local', 1, 1], ['cloud', 2, 0]]);
    assert.deepEqual(snap.running.map((r) => [r.job.id, r.lane]).sort(), [['a', 'local'], ['c1', 'cloud'], ['c2', 'cloud']]);
    c1.finish();
    c2.finish();
    await tick();
    assert.equal(snap.loadedGroup, 'A');
    assert.equal(s.state().counts.switches, 1); // only a's own start: the cloud jobs switched nothing
    assert.deepEqual(upstream.calls, []); // no unload, no /api/show, no /api/ps for cloud work
    a.finish();
    await b.started;
    assert.deepEqual(upstream.calls, ['show B', 'unload A']);
    b.finish();
    await s.idle();
  });

  it('runs at most cloud_parallel cloud jobs, in priority order', async () => {
    const s = new Scheduler({ parallel: 1, maxQueue: 100, agingMs: 60_000, unloadOnSwitch: false, upstream: fakeUpstream(), cloudParallel: 2 });
    const jobs = [job('c1', CLOUD), job('c2', CLOUD), job('c3', CLOUD, 0), job('c4', CLOUD, 9)];
    for (const j of jobs) s.enqueue(j);
    await jobs[0]!.started;
    await jobs[1]!.started;
    await tick();
    assert.equal(s.state().lanes[1]!.running, 2);
    assert.deepEqual(jobs.map((j) => j.isStarted()), [true, true, false, false]);
    assert.equal(s.position('c4'), 1); // counted within the cloud lane
    jobs[0]!.finish();
    await jobs[3]!.started; // the higher priority goes first
    assert.equal(jobs[2]!.isStarted(), false);
    jobs[1]!.finish();
    await jobs[2]!.started;
    jobs[2]!.finish();
    jobs[3]!.finish();
    await s.idle();
  });
});

async function queueOf(stack: Stack) {
  return (await (await stack.call('/queue')).json()) as {
    lanes: Array<{ name: string; running: number; waiting: number; parallel: number }>;
    running: Array<{ id: string; lane: string; model: string }>;
  };
}
const lane = async (stack: Stack, name: string) => (await queueOf(stack)).lanes.find((l) => l.name === name)!;

describe('cloud models through foreman (simulator)', () => {
  it('finishes cloud requests while the local queue still drains, with no unload or load', async (t) => {
    const stack = await startStack(t, { config: { parallel: 1, unload_on_switch: true } });
    const hold = new AbortController();
    const held = stack.call('/api/chat', { json: chat('llama3.2', 'hold', { stream: true, sim: { fault: 'stall', after: 1 } }), signal: hold.signal })
      .then((r) => r.text()).catch(() => 'aborted');
    await until(async () => (await lane(stack, 'local')).running === 1, 'the local model to work');
    const waiting = stack.call('/api/chat', { json: chat('qwen3', 'after the drain') });
    await until(async () => (await lane(stack, 'local')).waiting === 1, 'the switch to wait');
    const answers = await Promise.all([1, 2, 3].map((i) => stack.call('/api/chat', { json: chat(CLOUD, `cloud ${i}`) })));
    for (const res of answers) {
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.done, true);
      assert.equal(body.model, 'gpt-oss:120b'); // Ollama answers a cloud request under its base name
    }
    const stats: any = await (await fetch(`${stack.sim.url}/sim/stats`)).json();
    assert.deepEqual(stats.loads, { 'llama3.2:latest': 1 });
    assert.deepEqual(stats.unloads, {});
    assert.deepEqual(stats.loaded, ['llama3.2:latest']);
    assert.deepEqual(stats.cloud.requests, { [CLOUD]: 3 });
    assert.equal((await lane(stack, 'local')).waiting, 1); // qwen3 still waits for the drain
    hold.abort();
    await held;
    assert.equal((await waiting).status, 200);
    const after: any = await (await fetch(`${stack.sim.url}/sim/stats`)).json();
    assert.deepEqual(after.unloads, { 'llama3.2:latest': 1 }); // the one real switch
  });

  it('respects cloud_parallel and shows the cloud lane in /queue', async (t) => {
    const stack = await startStack(t, { config: { cloud_parallel: 2 } });
    const controllers = [1, 2, 3, 4].map(() => new AbortController());
    const calls = controllers.map((c, i) =>
      stack.call('/api/chat', { json: chat(CLOUD, `stall ${i}`, { sim: { fault: 'stall_before' } }), signal: c.signal }).catch(() => null));
    await until(async () => {
      const l = await lane(stack, 'cloud');
      return l.running === 2 && l.waiting === 2;
    }, 'two cloud jobs running and two waiting');
    const q = await queueOf(stack);
    assert.equal(q.lanes.find((l) => l.name === 'cloud')!.parallel, 2);
    assert.ok(q.running.every((r) => r.lane === 'cloud' && r.model === CLOUD));
    assert.equal(stack.sim.stats().cloud.active, 2);
    for (const c of controllers) c.abort();
    await Promise.all(calls);
    await stack.foreman.scheduler.idle();
    assert.ok(stack.sim.stats().cloud.maxConcurrent <= 2);
  });

  it('passes a 429 through with its Retry-After, on the native and /v1 surfaces', async (t) => {
    const stack = await startStack(t);
    stack.sim.limitCloud(2, 7);
    const native = await stack.call('/api/chat', { json: chat(CLOUD, 'over the limit') });
    assert.equal(native.status, 429);
    assert.equal(native.headers.get('retry-after'), '7');
    assert.match((await native.json()).error, /usage limit/);
    const v1 = await stack.call('/v1/chat/completions', { json: chat(CLOUD, 'over the limit') });
    assert.equal(v1.status, 429);
    assert.equal(v1.headers.get('retry-after'), '7');
    assert.match((await v1.json()).error.message, /usage limit/);
    assert.equal((await stack.call('/api/chat', { json: chat(CLOUD, 'fine now') })).status, 200);
  });

  it('runs an async cloud job again after Retry-After without using up an attempt', async (t) => {
    const stack = await startStack(t, { config: { max_attempts: 1 } });
    stack.sim.limitCloud(1, 1);
    const submitted = await stack.call('/jobs', { json: { model: CLOUD, prompt: 'limited at first' } });
    assert.equal(submitted.status, 202);
    const { id } = await submitted.json();
    let job: any;
    // While it waits out the Retry-After, the record says why, with its attempt given back.
    await until(async () => {
      job = await (await stack.call(`/jobs/${id}`)).json();
      return job.state === 'queued' && job.error !== null;
    }, 'the job to wait after its 429');
    assert.equal(job.error.status, 429);
    assert.match(job.error.message, /usage limit/);
    assert.equal(job.attempts, 0);
    await until(async () => {
      job = await (await stack.call(`/jobs/${id}?wait=5`)).json();
      return job.state === 'completed' || job.state === 'failed';
    }, 'the job to end');
    assert.equal(job.state, 'completed'); // max_attempts 1, yet the 429 did not fail it
    assert.equal(job.attempts, 1);
    const events = (await (await stack.call(`/jobs/${id}/events`)).json()).events;
    assert.deepEqual(events.map((e: any) => [e.state, e.job.attempts]), [
      ['queued', 0], ['working', 1], ['queued', 0], ['working', 1], ['completed', 1],
    ]);
    // It waited at least the second upstream asked for.
    assert.ok(Date.parse(events[3].at) - Date.parse(events[2].at) >= 1000);
    assert.equal(stack.sim.stats().cloud.limited, 1);
  });
});
