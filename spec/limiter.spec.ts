import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLimiter } from '../lib/sched/limiter.js';
import { isForemanError, toHttpError } from '../lib/errors.js';

/** A task the test ends by hand, recording when it started. */
function task(log: string[], name: string) {
  let end!: () => void;
  const done = new Promise<void>((r) => (end = r));
  return { run: async () => { log.push(name); await done; return name; }, end };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('createLimiter', () => {
  it('runs at most max at once and starts the waiters in arrival order', async () => {
    const limiter = createLimiter(2, 10);
    const log: string[] = [];
    const tasks = ['a', 'b', 'c', 'd'].map((n) => task(log, n));
    const results = tasks.map((t) => limiter.run(t.run));
    await turn();
    assert.deepEqual(log, ['a', 'b']);
    assert.equal(limiter.active, 2);
    assert.equal(limiter.waiting, 2);
    tasks[1]!.end();
    await turn();
    assert.deepEqual(log, ['a', 'b', 'c']);
    assert.equal(limiter.active, 2, 'the freed slot passed straight to a waiter');
    for (const t of tasks) t.end();
    assert.deepEqual(await Promise.all(results), ['a', 'b', 'c', 'd']);
    assert.equal(limiter.active, 0);
  });

  it('takes a new limit at once: a raised one starts waiters, a lowered one lets the running finish', async () => {
    const limiter = createLimiter(1, 10);
    const log: string[] = [];
    const tasks = ['a', 'b', 'c', 'd'].map((n) => task(log, n));
    const results = tasks.map((t) => limiter.run(t.run));
    await turn();
    assert.deepEqual(log, ['a']);
    limiter.setMax(3);
    await turn();
    assert.deepEqual(log, ['a', 'b', 'c'], 'two waiters started by the raise, in arrival order');
    assert.equal(limiter.active, 3);
    assert.equal(limiter.max, 3);
    limiter.setMax(1);
    tasks[0]!.end();
    tasks[1]!.end();
    await turn();
    assert.deepEqual(log, ['a', 'b', 'c'], 'freed slots above the new limit are given up, not passed on');
    assert.equal(limiter.active, 1);
    tasks[2]!.end();
    await turn();
    assert.deepEqual(log, ['a', 'b', 'c', 'd'], 'the last waiter starts when the count is under the limit');
    assert.equal(limiter.active, 1);
    tasks[3]!.end();
    assert.deepEqual(await Promise.all(results), ['a', 'b', 'c', 'd']);
    assert.equal(limiter.active, 0);
  });

  it('refuses beyond maxWaiting with code queue_full, which answers 503 busy', async () => {
    const limiter = createLimiter(1, 1);
    const log: string[] = [];
    const a = task(log, 'a');
    const b = task(log, 'b');
    const ra = limiter.run(a.run);
    const rb = limiter.run(b.run);
    await assert.rejects(limiter.run(async () => 'c'), (err: unknown) => {
      assert.ok(isForemanError(err, 'queue_full'));
      assert.equal(toHttpError(err).status, 503);
      return true;
    });
    a.end();
    b.end();
    await Promise.all([ra, rb]);
  });

  it('lets an aborted waiter leave the line without taking a slot', async () => {
    const limiter = createLimiter(1, 5);
    const log: string[] = [];
    const a = task(log, 'a');
    const ra = limiter.run(a.run);
    const controller = new AbortController();
    const waiting = limiter.run(async () => log.push('never'), controller.signal);
    assert.equal(limiter.waiting, 1);
    controller.abort(new Error('caller left'));
    await assert.rejects(waiting, /caller left/);
    assert.equal(limiter.waiting, 0);
    a.end();
    await ra;
    assert.equal(limiter.active, 0);
    assert.deepEqual(log, ['a']);
  });

  it('refuses a signal that was aborted before the call', async () => {
    const limiter = createLimiter(1, 5);
    await assert.rejects(limiter.run(async () => 'x', AbortSignal.abort(new Error('already gone'))), /already gone/);
    assert.equal(limiter.active, 0);
  });

  it('frees the slot when the task throws', async () => {
    const limiter = createLimiter(1, 5);
    await assert.rejects(limiter.run(async () => { throw new Error('boom'); }), /boom/);
    assert.equal(limiter.active, 0);
    assert.equal(await limiter.run(async () => 'next'), 'next');
  });
});
