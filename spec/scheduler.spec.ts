import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler, type FinishState, type RunContext, type SchedulerJob } from '../lib/sched/scheduler.js';
import { BUSY_MESSAGE, ForemanError, isForemanError, stopCodeOf, toHttpError } from '../lib/errors.js';
import { buildQueueView } from '../lib/ops/queue-view.js';

/** An upstream stand-in that records what the scheduler asked of it (the scheduler's only I/O). */
function fakeUpstream(loaded: string[] = [], embedding: string[] = [], unknown: string[] = []) {
  const calls: string[] = [];
  return {
    calls,
    async exists(model: string) {
      calls.push(`show ${model}`);
      return !unknown.includes(model);
    },
    async unload(model: string) {
      calls.push(`unload ${model}`);
    },
    async loadedModels() {
      calls.push('ps');
      return loaded.map((name) => ({ name, model: name }));
    },
    async capabilities(model: string) {
      return embedding.includes(model) ? ['embedding'] : ['completion'];
    },
  };
}

interface Controlled extends SchedulerJob {
  started: Promise<RunContext>;
  finish(state?: FinishState): void;
  droppedWith: string | null;
}

function job(id: string, model: string, priority = 0, log: string[] = []): Controlled {
  let onStart!: (rc: RunContext) => void;
  let end!: (s: FinishState) => void;
  const started = new Promise<RunContext>((r) => (onStart = r));
  const ended = new Promise<FinishState>((r) => (end = r));
  const j: Controlled = {
    id, model, group: model, priority, origin: 'sync', kind: 'chat',
    started,
    droppedWith: null,
    finish: (s = 'completed') => end(s),
    run(rc) {
      log.push(id);
      onStart(rc);
      rc.signal.addEventListener('abort', () => end('cancelled'));
      return ended;
    },
    dropped(reason) {
      j.droppedWith = reason;
    },
  };
  return j;
}

const tick = () => new Promise((r) => setImmediate(r));

function scheduler(overrides: Partial<ConstructorParameters<typeof Scheduler>[0]> = {}) {
  let now = 1_000_000;
  const upstream = fakeUpstream();
  const s = new Scheduler({
    parallel: 1, maxQueue: 100, agingMs: 60_000, unloadOnSwitch: false, upstream, now: () => now, ...overrides,
  });
  return { s, upstream: (overrides.upstream as ReturnType<typeof fakeUpstream>) ?? upstream, advance: (ms: number) => (now += ms) };
}

describe('Scheduler', () => {
  it('drains the loaded model before switching, whatever the arrival order', async () => {
    const { s } = scheduler();
    const log: string[] = [];
    const jobs = [job('a1', 'A', 0, log), job('b1', 'B', 0, log), job('a2', 'A', 0, log), job('b2', 'B', 0, log), job('a3', 'A', 0, log)];
    for (const j of jobs) s.enqueue(j);
    for (const id of ['a1', 'a2', 'a3', 'b1', 'b2']) {
      const j = jobs.find((x) => x.id === id)!;
      await j.started;
      j.finish();
      await tick();
    }
    assert.deepEqual(log, ['a1', 'a2', 'a3', 'b1', 'b2']);
    assert.equal(s.state().counts.switches, 2);
  });

  it('switches to a waiting model once its head has aged a full interval beyond the loaded one', async () => {
    const { s, advance } = scheduler();
    const log: string[] = [];
    const a1 = job('a1', 'A', 0, log);
    s.enqueue(a1);
    await a1.started;
    const b1 = job('b1', 'B', 0, log);
    s.enqueue(b1);
    advance(60_000); // b1 has waited one aging interval
    const a2 = job('a2', 'A', 0, log);
    s.enqueue(a2);
    a1.finish();
    await b1.started;
    assert.deepEqual(log, ['a1', 'b1']);
    b1.finish();
    await a2.started;
    a2.finish();
  });

  it('lets a higher priority of another model win over the drain', async () => {
    const { s } = scheduler();
    const log: string[] = [];
    const a1 = job('a1', 'A', 0, log);
    s.enqueue(a1);
    await a1.started;
    const a2 = job('a2', 'A', 0, log);
    const b1 = job('b1', 'B', 10, log);
    s.enqueue(a2);
    s.enqueue(b1);
    a1.finish();
    await b1.started;
    b1.finish();
    await a2.started;
    a2.finish();
    assert.deepEqual(log, ['a1', 'b1', 'a2']);
  });

  it('runs up to parallel jobs of one model, and a switch waits for all of them', async () => {
    const { s } = scheduler({ parallel: 2 });
    const log: string[] = [];
    const a1 = job('a1', 'A', 0, log);
    const a2 = job('a2', 'A', 0, log);
    const b1 = job('b1', 'B', 20, log);
    s.enqueue(a1);
    s.enqueue(a2);
    await Promise.all([a1.started, a2.started]);
    s.enqueue(b1);
    a1.finish();
    await tick();
    assert.deepEqual(log, ['a1', 'a2'], 'b1 must not start while a2 (old model) runs');
    assert.equal(s.runningCount, 1);
    a2.finish();
    await b1.started;
    b1.finish();
  });

  it('asks upstream to unload the old model before the first job of the new one', async () => {
    const upstream = fakeUpstream();
    const { s } = scheduler({ unloadOnSwitch: true, upstream });
    const a1 = job('a1', 'A');
    const b1 = job('b1', 'B');
    s.enqueue(a1);
    await a1.started;
    s.enqueue(b1);
    a1.finish();
    await b1.started;
    assert.deepEqual(upstream.calls.filter((c) => c.startsWith('unload')), ['unload A']);
    b1.finish();
  });

  it('keeps the loaded model when the next job names a model upstream does not have', async () => {
    const upstream = fakeUpstream([], [], ['typo']);
    const { s } = scheduler({ unloadOnSwitch: true, upstream });
    const a1 = job('a1', 'A');
    const bad = job('bad', 'typo');
    s.enqueue(a1);
    await a1.started;
    s.enqueue(bad);
    a1.finish();
    await bad.started;
    assert.deepEqual(upstream.calls.filter((c) => c.startsWith('unload')), [], 'no unload for an unknown model');
    assert.ok(upstream.calls.includes('show typo'));
    bad.finish('failed');
  });

  it("refuses with code queue_full beyond max_queue, which http/ answers with Ollama's exact busy error", async () => {
    const { s } = scheduler({ maxQueue: 2 });
    const a1 = job('a1', 'A');
    s.enqueue(a1);
    await a1.started; // running jobs do not count as waiting
    s.enqueue(job('a2', 'A'));
    s.enqueue(job('a3', 'A'));
    assert.throws(() => s.enqueue(job('a4', 'A')), (err: unknown) => {
      assert.ok(err instanceof ForemanError);
      assert.equal(err.code, 'queue_full');
      const http = toHttpError(err);
      assert.equal(http.status, 503);
      assert.equal(http.message, BUSY_MESSAGE);
      assert.equal(http.message, 'server busy, please try again.  maximum pending requests exceeded');
      assert.ok(http.headers['retry-after']);
      return true;
    });
    assert.equal(s.waiting, 2);
  });

  it('removes a cancelled queued job without running it, and aborts a running one', async () => {
    const { s } = scheduler();
    const log: string[] = [];
    const a1 = job('a1', 'A', 0, log);
    const a2 = job('a2', 'A', 0, log);
    const a3 = job('a3', 'A', 0, log);
    s.enqueue(a1);
    s.enqueue(a2);
    s.enqueue(a3);
    const rc = await a1.started;
    assert.equal(s.cancel('a2'), true);
    assert.equal(a2.droppedWith, 'cancelled');
    assert.equal(s.cancel('a1'), true);
    assert.equal(rc.signal.aborted, true);
    assert.equal(stopCodeOf(rc.signal), 'cancelled');
    await a3.started;
    a3.finish();
    await s.idle();
    assert.deepEqual(log, ['a1', 'a3']);
    assert.equal(s.cancel('nope'), false);
  });

  it('on shutdown drops queued jobs and lets running ones finish', async () => {
    const { s } = scheduler();
    const a1 = job('a1', 'A');
    const a2 = job('a2', 'A');
    s.enqueue(a1);
    s.enqueue(a2);
    await a1.started;
    const done = s.shutdown(60_000);
    assert.equal(a2.droppedWith, 'shutdown');
    a1.finish();
    await done;
    assert.throws(() => s.enqueue(job('a3', 'A')), (e: unknown) => isForemanError(e, 'shutting_down'));
  });

  it('learns the resident generation model from /api/ps, ignoring embedding models', async () => {
    const upstream = fakeUpstream(['nomic-embed-text:latest', 'B'], ['nomic-embed-text:latest']);
    const { s, advance } = scheduler({ upstream });
    await s.refreshResidency();
    assert.equal(s.loadedGroup, 'b:latest', 'the group key of the name /api/ps gave');
    // A arrived first, but B is loaded and both heads tie: B goes first. Both must be waiting
    // when the pick happens, so a running job of the loaded group holds the only slot meanwhile.
    const log: string[] = [];
    const holder = job('holder', 'b:latest', 0, log);
    s.enqueue(holder);
    await holder.started;
    const a = job('a', 'A', 0, log);
    const b = job('b', 'b:latest', 0, log);
    s.enqueue(a, { arrivalMs: 1_000_000 });
    s.enqueue(b, { arrivalMs: 1_000_000 + 10 });
    assert.equal(s.waiting, 2);
    advance(20);
    holder.finish();
    await Promise.race([a.started, b.started]);
    assert.deepEqual(log, ['holder', 'b'], 'the loaded group wins the tie');
    b.finish();
    await a.started;
    a.finish();
    assert.deepEqual(log, ['holder', 'b', 'a']);
  });

  it('reports queue groups and running jobs in its state, which ops/ renders as the /queue view', async () => {
    const { s, advance } = scheduler();
    const a1 = job('a1', 'A');
    s.enqueue(a1);
    await a1.started;
    s.enqueue(job('b1', 'B', 5));
    s.enqueue(job('b2', 'B', 5));
    advance(1500);
    const snap = buildQueueView(s.state(), { nowMs: 1_000_000 + 1500, upstream: 'u', maxQueue: 9, parallel: 1, embeddings: { active: 0, max: 1 } });
    assert.equal(snap.running.length, 1);
    assert.equal(snap.running[0]!.id, 'a1');
    assert.equal(snap.running[0]!.elapsed_ms, 1500);
    assert.deepEqual(snap.groups.map((g) => [g.group, g.count, g.head_priority, g.head_wait_ms]), [['B', 2, 5, 1500]]);
    a1.finish();
  });
  it('shares run time by key weight and runs at most max_running of a key, with an injected clock', async () => {
    const policies: Record<string, { weight: number; maxRunning: number | null; maxQueued: number | null }> = {
      light: { weight: 1, maxRunning: null, maxQueued: null },
      heavy: { weight: 3, maxRunning: null, maxQueued: 2000 },
    };
    const { s, advance } = scheduler({ keyPolicy: (k) => policies[k]!, maxQueue: 10_000 });
    const log: string[] = [];
    const all: Controlled[] = [];
    for (let i = 0; i < 200; i++) {
      for (const key of ['light', 'heavy']) {
        const j = { ...job(`${key}${i}`, 'A', 0, log), key };
        all.push(j as Controlled);
      }
    }
    for (const j of all) s.enqueue(j);
    for (let n = 0; n < 200; n++) {
      const id = log[n]!;
      const j = all.find((x) => x.id === id)!;
      await j.started;
      advance(100); // every job runs 100 ms of the injected clock
      j.finish();
      await tick();
    }
    const light = log.slice(0, 200).filter((id) => id.startsWith('light')).length;
    assert.ok(light >= 48 && light <= 52, `light got ${light} of 200 runs, 50 is 1:3`);
    assert.equal(s.waitingOf('heavy') + s.waitingOf('light'), 199); // the 201st is running
    // A cap that arrives with a reload applies to jobs already waiting.
    policies.heavy = { weight: 3, maxRunning: 0, maxQueued: 2000 };
    s.refreshKeys();
    const next = all.find((x) => x.id === log[200])!;
    await next.started;
    advance(100);
    next.finish();
    await tick();
    assert.ok(log.length > 201 && log.slice(201).every((id) => id.startsWith('light')), 'a capped key waits; the others run');
    assert.equal(s.runningOf('heavy'), 0);
  });
});
