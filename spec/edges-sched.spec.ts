// Edges of the scheduler and the embeddings limiter (issue 11): the /queue order, coalesced /api/ps reads,
// a switch that neither hangs picking nor reloads what it just unloaded, and an already-aborted signal.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler, type FinishState, type RunContext, type SchedulerJob } from '../lib/sched/scheduler.js';
import { createLimiter } from '../lib/sched/limiter.js';
import { groupKey } from '../lib/sched/model-group.js';
import { until } from './support/until.js';

interface Controlled extends SchedulerJob {
  started: Promise<RunContext>;
  finish(state?: FinishState): void;
}

function job(id: string, model: string, priority = 0, log: string[] = []): Controlled {
  let onStart!: (rc: RunContext) => void;
  let end!: (s: FinishState) => void;
  const started = new Promise<RunContext>((r) => (onStart = r));
  const ended = new Promise<FinishState>((r) => (end = r));
  return {
    id, model, group: model, priority, origin: 'sync', kind: 'chat', started,
    finish: (s = 'completed') => end(s),
    run(rc) {
      log.push(id);
      onStart(rc);
      return ended;
    },
    dropped() {},
  };
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Rejects when the signal aborts (at once if it already has): an upstream that never answers. */
function hang(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

type SchedUpstream = ConstructorParameters<typeof Scheduler>[0]['upstream'];
const upstreamBase: SchedUpstream = {
  async exists() { return true; },
  async unload() {},
  async loadedModels() { return []; },
  async capabilities() { return ['completion']; },
};

function make(upstream: Partial<SchedUpstream>, extra: Partial<ConstructorParameters<typeof Scheduler>[0]> = {}) {
  let now = 1_000_000;
  const s = new Scheduler({
    parallel: 1, maxQueue: 100, agingMs: 60_000, unloadOnSwitch: true,
    upstream: { ...upstreamBase, ...upstream },
    now: () => now, ...extra,
  });
  return { s, advance: (ms: number) => (now += ms) };
}

describe('scheduler edges', () => {
  it('lists groups in pick order, the loaded group winning a tie (what /queue and the page call next)', async () => {
    const { s, advance } = make({}, { unloadOnSwitch: false });
    const a1 = job('a1', 'A');
    s.enqueue(a1);
    await a1.started;
    s.enqueue(job('b1', 'B'));
    advance(1000);
    s.enqueue(job('a2', 'A')); // arrived later than b1, same priority: the loaded A still goes first
    assert.deepEqual(s.state().groups.map((g) => g.group), ['A', 'B']);
    const log: string[] = [];
    a1.finish();
    await new Promise((r) => setImmediate(r));
    log.push(...s.state().running.map((r) => r.job.id));
    assert.deepEqual(log, ['a2'], 'the pick agrees with the order shown');
  });

  it('shares one /api/ps read among a burst of refresh requests, plus at most one after it', async () => {
    let reads = 0;
    const gates: Array<ReturnType<typeof deferred<void>>> = [];
    const { s } = make({
      async loadedModels() {
        reads++;
        const gate = deferred();
        gates.push(gate);
        await gate.promise;
        return [];
      },
    });
    const all = Array.from({ length: 20 }, () => s.refreshResidency());
    assert.equal(reads, 1);
    gates[0]!.resolve();
    await until(() => gates.length >= 2, 'the second /api/ps read');
    gates[1]!.resolve();
    await Promise.all(all);
    assert.equal(reads, 2);
  });

  it('reads /api/ps once for a burst of failed jobs, not once each', async () => {
    let reads = 0;
    const gate = deferred();
    const { s } = make({
      async loadedModels() {
        reads++;
        await gate.promise;
        return [];
      },
    }, { parallel: 8, unloadOnSwitch: false });
    const jobs = Array.from({ length: 8 }, (_, i) => job(`a${i}`, 'A'));
    for (const j of jobs) s.enqueue(j);
    await Promise.all(jobs.map((j) => j.started));
    for (const j of jobs) j.finish('failed');
    await s.idle();
    await new Promise((r) => setImmediate(r));
    gate.resolve();
    await s.refreshResidency();
    assert.ok(reads <= 2, `reads: ${reads}`);
  });

  it('gives a switch one budget for its upstream calls, so a hanging upstream holds picking once, not twice', async (t) => {
    const seen: Array<{ call: string; abortedAtCall: boolean }> = [];
    const { s } = make({
      exists(_m: string, signal?: AbortSignal) {
        seen.push({ call: 'show', abortedAtCall: signal?.aborted ?? false });
        return hang(signal);
      },
      unload(_m: string, signal?: AbortSignal) {
        seen.push({ call: 'unload', abortedAtCall: signal?.aborted ?? false });
        return hang(signal);
      },
    }, { switchBudgetMs: 30 });
    const keepAlive = setInterval(() => {}, 1000); // AbortSignal.timeout's timer does not hold the process open
    t.after(() => clearInterval(keepAlive));
    const a1 = job('a1', 'A');
    s.enqueue(a1);
    await a1.started;
    const b1 = job('b1', 'B');
    s.enqueue(b1);
    a1.finish();
    await b1.started;
    assert.deepEqual(seen, [{ call: 'show', abortedAtCall: false }, { call: 'unload', abortedAtCall: true }]);
    b1.finish();
  });

  it('starts the group it switched to, not a job of the model it just unloaded that arrived meanwhile', async () => {
    const unloading = deferred();
    const unloadStarted = deferred();
    const { s } = make({
      async unload() {
        unloadStarted.resolve();
        await unloading.promise;
      },
    });
    const log: string[] = [];
    const a1 = job('a1', 'A', 0, log);
    s.enqueue(a1);
    await a1.started;
    const b1 = job('b1', 'B', 0, log);
    s.enqueue(b1);
    a1.finish();
    await unloadStarted.promise;
    const a2 = job('a2', 'A', 50, log); // higher priority, but A is being unloaded for B
    s.enqueue(a2);
    unloading.resolve();
    await b1.started;
    assert.deepEqual(log, ['a1', 'b1']);
    b1.finish();
    await a2.started;
    a2.finish();
    await s.idle();
  });
});

describe('group keys', () => {
  it('ignore the case of model names and the fraction Ollama drops from runner options', () => {
    assert.equal(groupKey('Llama3.2', undefined), groupKey('llama3.2:latest', {}));
    assert.equal(groupKey('LLAMA3.2:LATEST', { num_ctx: 8192.7 }), groupKey('llama3.2', { num_ctx: 8192 }));
    assert.notEqual(groupKey('llama3.2', { num_ctx: 8192 }), groupKey('llama3.2', { num_ctx: 4096 }));
    assert.equal(groupKey('llama3.2', { temperature: 0.1 }), groupKey('llama3.2', {}), 'sampling options share a runner');
  });
});

describe('embeddings limiter', () => {
  it('refuses at once a signal that was aborted before the call, free slot or not', async () => {
    const limiter = createLimiter(1, 10);
    const aborted = AbortSignal.abort(new Error('gone'));
    let ran = false;
    await assert.rejects(limiter.run(async () => { ran = true; }, aborted), /gone/);
    assert.equal(ran, false);
    assert.equal(limiter.active, 0);
    const hold = deferred();
    const first = limiter.run(() => hold.promise);
    await assert.rejects(limiter.run(async () => { ran = true; }, aborted), /gone/);
    assert.equal(limiter.waiting, 0, 'an aborted caller never joins the line');
    hold.resolve();
    await first;
    assert.equal(ran, false);
    assert.equal(limiter.active, 0);
  });
});
