// Unit tests for lib/sched/queue.ts: the drain-by-model pick rule of SPEC §1, checked by hand on small
// cases and against a brute-force reference on seeded random operation sequences.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createDrainQueue, effectivePriority } from '../lib/sched/queue.js';
import type { QueueItem } from '../lib/sched/queue.js';
import { seededRandom as prng } from './support/prng.js';

const AGING = 1000;

function job(id: string, group: string, priority: number, arrivalMs: number): QueueItem {
  return { id, group, priority, arrivalMs };
}

function queueOf(...items: QueueItem[]) {
  const queue = createDrainQueue<QueueItem>({ agingMs: AGING });
  for (const item of items) queue.enqueue(item);
  return queue;
}

function drain(queue: ReturnType<typeof queueOf>, nowMs: number, loaded: string | null): string[] {
  const ids: string[] = [];
  for (let item = queue.pick(nowMs, loaded); item; item = queue.pick(nowMs, loaded)) ids.push(item.id);
  return ids;
}


// The same rules written the slow, obvious way: linear scans, no heaps.
class Reference {
  readonly items: { item: QueueItem; seq: number }[] = [];
  #seq = 0;
  constructor(readonly agingMs: number) {}

  add(item: QueueItem): void {
    this.items.push({ item, seq: this.#seq++ });
  }
  remove(id: string): QueueItem | undefined {
    const i = this.items.findIndex((e) => e.item.id === id);
    return i < 0 ? undefined : this.items.splice(i, 1)[0]!.item;
  }
  #inGroupBefore(a: { item: QueueItem; seq: number }, b: { item: QueueItem; seq: number }): boolean {
    const ka = a.item.priority * this.agingMs - a.item.arrivalMs;
    const kb = b.item.priority * this.agingMs - b.item.arrivalMs;
    if (ka !== kb) return ka > kb;
    if (a.item.arrivalMs !== b.item.arrivalMs) return a.item.arrivalMs < b.item.arrivalMs;
    return a.seq < b.seq;
  }
  #eff(e: { item: QueueItem }, now: number): number {
    return e.item.priority + Math.floor(Math.max(0, now - e.item.arrivalMs) / this.agingMs);
  }
  #beats(a: { item: QueueItem; seq: number }, b: { item: QueueItem; seq: number }, now: number, loaded: string | null) {
    const ea = this.#eff(a, now);
    const eb = this.#eff(b, now);
    if (ea !== eb) return ea > eb;
    if (a.item.group === loaded) return true;
    if (b.item.group === loaded) return false;
    if (a.item.arrivalMs !== b.item.arrivalMs) return a.item.arrivalMs < b.item.arrivalMs;
    return a.seq < b.seq;
  }
  heads(now: number, loaded: string | null) {
    const heads = new Map<string, { item: QueueItem; seq: number }>();
    for (const e of this.items) {
      const h = heads.get(e.item.group);
      if (!h || this.#inGroupBefore(e, h)) heads.set(e.item.group, e);
    }
    return [...heads.values()].sort((a, b) => (this.#beats(a, b, now, loaded) ? -1 : 1));
  }
  peek(now: number, loaded: string | null): QueueItem | undefined {
    return this.heads(now, loaded)[0]?.item;
  }
  position(id: string, now: number, loaded: string | null): number | undefined {
    const e = this.items.find((x) => x.item.id === id);
    if (!e) return undefined;
    const own = this.items.filter((x) => x.item.group === e.item.group);
    let n = 1 + own.filter((x) => this.#inGroupBefore(x, e)).length;
    const heads = this.heads(now, loaded);
    const ownHead = heads.find((h) => h.item.group === e.item.group)!;
    for (const h of heads) {
      if (h !== ownHead && this.#beats(h, ownHead, now, loaded)) {
        n += this.items.filter((x) => x.item.group === h.item.group).length;
      }
    }
    return n;
  }
}

describe('queue', () => {
  it('computes effective priority with a floor and clamps negative waits to zero', () => {
    assert.equal(effectivePriority(0, 999, 1000), 0);
    assert.equal(effectivePriority(0, 1000, 1000), 1);
    assert.equal(effectivePriority(-5, 2500, 1000), -3);
    assert.equal(effectivePriority(3, -5000, 1000), 3);
  });

  it('rejects an aging interval that is not a positive finite number', () => {
    for (const agingMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => createDrainQueue({ agingMs }), RangeError);
    }
  });

  it('answers undefined and empty lists when nothing waits', () => {
    const queue = queueOf();
    assert.equal(queue.size, 0);
    assert.equal(queue.peek(0, null), undefined);
    assert.equal(queue.pick(0, 'a'), undefined);
    assert.equal(queue.remove('x'), undefined);
    assert.equal(queue.position('x', 0, null), undefined);
    assert.deepEqual(queue.groups(0), []);
  });

  it('serves equal-priority jobs of one group strictly first in, first out', () => {
    const queue = queueOf(job('a1', 'm', 0, 10), job('a2', 'm', 0, 10), job('a3', 'm', 0, 5), job('a4', 'm', 0, 20));
    assert.deepEqual(drain(queue, 100, null), ['a3', 'a1', 'a2', 'a4']);
  });

  it('serves higher priority first within a group and ages older jobs up by one per interval', () => {
    const queue = queueOf(job('low', 'm', 0, 0), job('high', 'm', 2, 0), job('mid', 'm', 1, 0));
    assert.deepEqual(drain(queue, 0, null), ['high', 'mid', 'low']);
    // 'old' waited 2.5 intervals longer than 'new', which has 2 more priority: old sorts first.
    const aged = queueOf(job('new', 'm', 2, 2500), job('old', 'm', 0, 0));
    assert.deepEqual(drain(aged, 3000, null), ['old', 'new']);
  });

  it('gives a tie in effective priority across groups to the loaded group', () => {
    const queue = queueOf(job('a', 'A', 0, 0), job('b', 'B', 0, 500));
    assert.equal(queue.peek(900, 'B')?.id, 'b');
    assert.equal(queue.peek(900, 'A')?.id, 'a');
    assert.equal(queue.size, 2);
    assert.equal(queue.pick(900, 'B')?.id, 'b');
    assert.equal(queue.size, 1);
  });

  it('gives a tie to the earliest head arrival when no group with a head is loaded', () => {
    const queue = queueOf(job('b', 'B', 0, 300), job('a', 'A', 0, 200), job('c', 'C', 0, 400));
    assert.equal(queue.peek(900, null)?.id, 'a');
    assert.equal(queue.peek(900, 'Z')?.id, 'a');
    assert.deepEqual(drain(queue, 900, 'Z'), ['a', 'b', 'c']);
  });

  it('lets another model win once its effective priority exceeds the loaded head, and not before', () => {
    const queue = queueOf(job('a', 'A', 0, 400), job('a2', 'A', 0, 401), job('b', 'B', 0, 0));
    assert.equal(queue.peek(999, 'A')?.id, 'a');
    assert.equal(queue.peek(1000, 'A')?.id, 'b');
    // With one priority less, it must have waited more than one extra interval longer.
    const behind = queueOf(job('a', 'A', 1, 1400), job('b', 'B', 0, 0));
    assert.equal(behind.peek(1999, 'A')?.id, 'a');
    assert.equal(behind.peek(2000, 'A')?.id, 'b');
  });

  it('does not starve another group while the loaded group keeps receiving work', () => {
    const queue = createDrainQueue<QueueItem>({ agingMs: AGING });
    queue.enqueue(job('b', 'B', 0, 0));
    let picks = 0;
    // One new job of A arrives and one job is picked every 100 ms; A starts with a backlog.
    for (let i = 0; i < 5; i++) queue.enqueue(job(`a-old-${i}`, 'A', 0, -1));
    for (let now = 100; ; now += 100) {
      queue.enqueue(job(`a${now}`, 'A', 0, now));
      const picked = queue.pick(now, 'A')!;
      picks++;
      if (picked.id === 'b') break;
      assert.ok(now < 2 * AGING, 'b waited more than two aging intervals');
    }
    assert.ok(picks > 5, 'b should not jump the loaded backlog of equal age');
  });

  it('lets a high priority job of another group preempt the drain of the loaded group', () => {
    const queue = queueOf(job('a1', 'A', 0, 0), job('a2', 'A', 0, 1), job('a3', 'A', 0, 2));
    assert.equal(queue.pick(10, 'A')?.id, 'a1');
    queue.enqueue(job('urgent', 'B', 10, 20));
    assert.deepEqual(drain(queue, 30, 'A'), ['urgent', 'a2', 'a3']);
  });

  it('throws on a duplicate id and accepts the id again once it has left', () => {
    const queue = queueOf(job('x', 'A', 0, 0));
    assert.throws(() => queue.enqueue(job('x', 'B', 5, 1)), /duplicate id x/);
    assert.equal(queue.size, 1);
    assert.equal(queue.remove('x')?.id, 'x');
    queue.enqueue(job('x', 'B', 5, 1));
    assert.equal(queue.get('x')?.group, 'B');
  });

  it('keeps order after removing from the head, the middle and the tail', () => {
    const items = Array.from({ length: 20 }, (_, i) => job(`j${i}`, 'A', i % 3, i));
    const queue = queueOf(...items);
    assert.equal(queue.remove('j2')?.id, 'j2'); // head: highest priority, earliest
    assert.equal(queue.remove('j10')?.id, 'j10');
    assert.equal(queue.remove('j18')?.id, 'j18'); // tail: lowest priority, latest
    assert.equal(queue.remove('j18'), undefined);
    assert.equal(queue.get('j10'), undefined);
    const expected = items
      .filter((it) => !['j2', 'j10', 'j18'].includes(it.id))
      .sort((a, b) => b.priority * AGING - b.arrivalMs - (a.priority * AGING - a.arrivalMs))
      .map((it) => it.id);
    assert.deepEqual(drain(queue, 0, null), expected);
  });

  it('matches a brute-force reference on random enqueue, remove, peek and pick sequences', () => {
    for (const seed of [1, 2, 3, 42, 1234, 99991]) {
      const rand = prng(seed);
      const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
      const queue = createDrainQueue<QueueItem>({ agingMs: AGING });
      const ref = new Reference(AGING);
      const groups = ['A', 'B', 'C', 'D'];
      let now = 0;
      let nextId = 0;
      for (let step = 0; step < 3000; step++) {
        now += int(0, 400);
        const loaded = rand() < 0.8 ? groups[int(0, 3)]! : null;
        const op = rand();
        if (op < 0.45 || ref.items.length === 0) {
          const wide = rand() < 0.2;
          const item = job(`i${nextId++}`, groups[int(0, 3)]!, wide ? int(-100, 100) : int(-2, 2), now - int(-50, 3000));
          queue.enqueue(item);
          ref.add(item);
        } else if (op < 0.65) {
          const id = rand() < 0.1 ? 'missing' : ref.items[int(0, ref.items.length - 1)]!.item.id;
          assert.equal(queue.remove(id)?.id, ref.remove(id)?.id);
        } else if (op < 0.9) {
          const expected = ref.peek(now, loaded);
          assert.equal(queue.peek(now, loaded)?.id, expected?.id, `seed ${seed} step ${step} peek`);
          const picked = queue.pick(now, loaded);
          assert.equal(picked?.id, expected?.id, `seed ${seed} step ${step} pick`);
          ref.remove(expected!.id);
        } else {
          const id = ref.items[int(0, ref.items.length - 1)]!.item.id;
          assert.equal(queue.position(id, now, loaded), ref.position(id, now, loaded));
          const heads = ref.heads(now, loaded).map((h) => h.item.id);
          assert.deepEqual(queue.groups(now, loaded).map((g) => g.headId), heads);
        }
        assert.equal(queue.size, ref.items.length);
      }
      const remaining = ref.items.map((e) => e.item.id).sort();
      assert.deepEqual([...queue.values()].map((it) => it.id).sort(), remaining);
    }
  });

  it('lists one entry per group with its head, count and ages, best head first', () => {
    const queue = queueOf(
      job('a1', 'A', 0, 1000), job('a2', 'A', 0, 1500),
      job('b1', 'B', 2, 2000),
      job('c1', 'C', 0, 500), job('c2', 'C', -1, 0), job('c3', 'C', 0, 4000),
    );
    const now = 2400;
    assert.deepEqual(queue.groups(now), [
      { group: 'B', count: 1, headId: 'b1', headPriority: 2, headWaitMs: 400, headEffectivePriority: 2, headArrivalMs: 2000 },
      { group: 'C', count: 3, headId: 'c1', headPriority: 0, headWaitMs: 1900, headEffectivePriority: 1, headArrivalMs: 500 },
      { group: 'A', count: 2, headId: 'a1', headPriority: 0, headWaitMs: 1400, headEffectivePriority: 1, headArrivalMs: 1000 },
    ]);
    // Loading A lifts it over C (a tie) but not over B; a head whose arrival lies ahead waits 0.
    assert.deepEqual(queue.groups(now, 'A').map((g) => g.group), ['B', 'A', 'C']);
    queue.remove('b1');
    assert.deepEqual(queue.groups(0).map((g) => [g.group, g.headWaitMs, g.headEffectivePriority]), [['C', 0, 0], ['A', 0, 0]]);
  });

  it('estimates positions from the job\'s rank in its group plus the groups that beat its head', () => {
    const queue = queueOf(
      job('a1', 'A', 0, 0), job('a2', 'A', 0, 1), job('a3', 'A', 0, 2),
      job('b1', 'B', 0, 3), job('b2', 'B', 0, 4),
    );
    assert.deepEqual(['a1', 'a2', 'a3', 'b1', 'b2'].map((id) => queue.position(id, 10, 'A')), [1, 2, 3, 4, 5]);
    assert.deepEqual(['b1', 'b2', 'a1', 'a2', 'a3'].map((id) => queue.position(id, 10, 'B')), [1, 2, 3, 4, 5]);
    queue.enqueue(job('urgent', 'C', 5, 20));
    assert.equal(queue.position('urgent', 30, 'A'), 1);
    assert.equal(queue.position('a1', 30, 'A'), 2);
    assert.equal(queue.position('b2', 30, 'A'), 6);
  });

  it('holds 100,000 jobs across several groups and picks each exactly once in a valid order', () => {
    const rand = prng(7);
    const queue = createDrainQueue<QueueItem>({ agingMs: 60_000 });
    const groupNames = Array.from({ length: 8 }, (_, i) => `model-${i}`);
    const total = 100_000;
    for (let i = 0; i < total; i++) {
      const group = groupNames[Math.floor(rand() * groupNames.length)]!;
      queue.enqueue(job(`j${i}`, group, Math.floor(rand() * 201) - 100, i * 10));
    }
    assert.equal(queue.size, total);
    const seen = new Set<string>();
    const lastKey = new Map<string, number>();
    let loaded: string | null = null;
    let now = total * 10;
    for (let item = queue.pick(now, loaded); item; item = queue.pick(now, loaded)) {
      assert.ok(!seen.has(item.id), `picked ${item.id} twice`);
      seen.add(item.id);
      const key = item.priority * 60_000 - item.arrivalMs;
      assert.ok(key <= (lastKey.get(item.group) ?? Infinity), `group ${item.group} out of order at ${item.id}`);
      lastKey.set(item.group, key);
      loaded = item.group;
      now += 3;
    }
    assert.equal(seen.size, total);
    assert.equal(queue.size, 0);
    assert.deepEqual(queue.groups(now), []);
  });

  it('orders the boundary priorities -100 and 100 and ages -100 up to meet 100', () => {
    const queue = queueOf(job('min', 'A', -100, 0), job('max', 'A', 100, 0), job('zero', 'A', 0, 0), job('neg', 'A', -1, 0));
    assert.deepEqual(drain(queue, 0, null), ['max', 'zero', 'neg', 'min']);
    // After 200 intervals, -100 ties a fresh 100: the loaded group decides, then the older head.
    const cross = queueOf(job('old', 'A', -100, 0), job('fresh', 'B', 100, 200 * AGING));
    assert.equal(cross.peek(200 * AGING - 1, 'A')?.id, 'fresh');
    assert.equal(cross.peek(200 * AGING, 'B')?.id, 'fresh');
    assert.equal(cross.peek(200 * AGING, 'A')?.id, 'old');
    assert.equal(cross.peek(200 * AGING, null)?.id, 'old');
  });
});
