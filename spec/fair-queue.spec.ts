// Unit tests for fair share in lib/sched/queue.ts (SPEC §15, ADR 0023): start-time fair queuing on
// run time over weight between owners of one group, no banked credit, running caps; checked by hand
// and against a slow reference on seeded random operation sequences.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createDrainQueue, effectivePriority, type QueueItem } from '../lib/sched/queue.js';
import { FairIndex } from '../lib/sched/fair-index.js';
import { seededRandom } from './support/prng.js';

const AGING = 1000;

const item = (id: string, owner: string, priority = 0, arrivalMs = 0, group = 'A'): QueueItem => ({ id, group, priority, arrivalMs, owner });

/** Runs picks one at a time (parallel 1), each taking runMs(owner); returns the run time per owner. */
function serve(queue: ReturnType<typeof createDrainQueue<QueueItem>>, picks: number, runMs: (owner: string) => number, now = 0) {
  const time = new Map<string, number>();
  const order: string[] = [];
  for (let i = 0; i < picks; i++) {
    const next = queue.pick(now, 'A');
    if (!next) break;
    const ms = runMs(next.owner!);
    queue.finished(next.id, ms);
    time.set(next.owner!, (time.get(next.owner!) ?? 0) + ms);
    order.push(next.owner!);
  }
  return { time, order };
}

describe('fair share between owners (queue)', () => {
  it('splits run time 1:3 between two flooding owners of weights 1 and 3', () => {
    const weights: Record<string, number> = { light: 1, heavy: 3 };
    const queue = createDrainQueue<QueueItem>({ agingMs: AGING, weightOf: (o) => weights[o] ?? 1 });
    for (let i = 0; i < 400; i++) {
      queue.enqueue(item(`l${i}`, 'light', 0, i));
      queue.enqueue(item(`h${i}`, 'heavy', 0, i));
    }
    const { time } = serve(queue, 400, () => 100);
    assert.equal(time.get('light'), 100 * 100);
    assert.equal(time.get('heavy'), 300 * 100);
  });

  it('charges run time, not job count: an owner with jobs twice as long gets half as many', () => {
    const queue = createDrainQueue<QueueItem>({ agingMs: AGING });
    for (let i = 0; i < 300; i++) {
      queue.enqueue(item(`s${i}`, 'short', 0, i));
      queue.enqueue(item(`L${i}`, 'long', 0, i));
    }
    const { time, order } = serve(queue, 300, (o) => (o === 'long' ? 200 : 100));
    const ratio = time.get('long')! / time.get('short')!;
    assert.ok(ratio > 0.95 && ratio < 1.05, `run time ratio ${ratio}`);
    assert.ok(order.filter((o) => o === 'short').length > 190);
  });

  it('serves a second owner\'s job next, not after the 500 jobs another owner queued first', () => {
    const queue = createDrainQueue<QueueItem>({ agingMs: AGING });
    for (let i = 0; i < 500; i++) queue.enqueue(item(`a${i}`, 'bulk', 0, i));
    serve(queue, 3, () => 100, 600);
    queue.enqueue(item('b', 'interactive', 0, 700));
    assert.equal(queue.peek(700, 'A')?.id, 'b');
    assert.equal(queue.position('b', 700, 'A'), 1);
    assert.equal(queue.position('a10', 700, 'A'), 8 + 1); // a3..a9 ahead, then b
  });

  it('banks no credit for an idle owner: a newcomer alternates with a busy owner instead of running alone', () => {
    const queue = createDrainQueue<QueueItem>({ agingMs: AGING });
    for (let i = 0; i < 200; i++) queue.enqueue(item(`a${i}`, 'busy', 0, i));
    serve(queue, 100, () => 100);
    for (let i = 0; i < 100; i++) queue.enqueue(item(`n${i}`, 'new', 0, 300 + i));
    const { order } = serve(queue, 10, () => 100);
    assert.deepEqual(order.slice(1), ['busy', 'new', 'busy', 'new', 'busy', 'new', 'busy', 'new', 'busy']);
  });

  it('keeps an owner\'s debt while it has a job running, so one-at-a-time callers get their weight, not more', () => {
    const weights: Record<string, number> = { flood: 3, single: 1 };
    const queue = createDrainQueue<QueueItem>({ agingMs: AGING, weightOf: (o) => weights[o] ?? 1 });
    for (let i = 0; i < 400; i++) queue.enqueue(item(`f${i}`, 'flood', 0, 0));
    let singles = 0;
    queue.enqueue(item('s0', 'single', 0, 0));
    for (let i = 0; i < 200; i++) {
      const next = queue.pick(0, 'A')!;
      if (next.owner === 'single') {
        singles++;
        queue.finished(next.id, 100);
        queue.enqueue(item(`s${singles}`, 'single', 0, 0)); // the caller sends its next request at once
      } else queue.finished(next.id, 100);
    }
    assert.ok(singles >= 45 && singles <= 55, `single owner got ${singles} of 200 picks`);
  });

  it('lets priority come before fair share, and only ties in effective priority share', () => {
    const queue = createDrainQueue<QueueItem>({ agingMs: AGING });
    for (let i = 0; i < 5; i++) queue.enqueue(item(`hi${i}`, 'rich', 5, 0));
    queue.enqueue(item('lo', 'poor', 0, 0));
    const { order } = serve(queue, 6, () => 100);
    assert.deepEqual(order, ['rich', 'rich', 'rich', 'rich', 'rich', 'poor']);
    // Aging makes a lower priority tie: then fair share decides, not arrival.
    const aged = createDrainQueue<QueueItem>({ agingMs: AGING });
    aged.enqueue(item('old', 'a', 0, 0));
    aged.enqueue(item('a2', 'a', 1, 1000));
    aged.pick(1500, 'A');
    aged.finished('old', 100);
    aged.enqueue(item('b1', 'b', 1, 1400));
    // a2 (priority 1, waited 500) and b1 tie at effective 1; a has been served, b not.
    assert.equal(aged.peek(1500, 'A')?.id, 'b1');
  });

  it('passes over a blocked owner without holding others back, and takes it up again when unblocked', () => {
    const queue = createDrainQueue<QueueItem>({ agingMs: AGING });
    queue.enqueue(item('c1', 'capped', 9, 0));
    queue.enqueue(item('c2', 'capped', 9, 1));
    queue.enqueue(item('o1', 'other', 0, 2, 'B'));
    queue.setBlocked('capped', true);
    assert.equal(queue.peek(10, 'A')?.id, 'o1'); // another model's job runs rather than nothing
    assert.equal(queue.pick(10, 'A')?.id, 'o1');
    assert.equal(queue.peek(10, 'A'), undefined);
    assert.equal(queue.size, 2);
    assert.equal(queue.groups(10)[0]?.count, 2); // still shown as waiting
    queue.setBlocked('capped', false);
    assert.equal(queue.peek(10, 'A')?.id, 'c1');
    assert.equal(queue.waitingOf('capped'), 2);
    assert.equal(queue.waitingOf('other'), 0);
  });

  it('forgets an idle group\'s virtual time: a later busy period starts everyone equal', () => {
    const queue = createDrainQueue<QueueItem>({ agingMs: AGING });
    for (let i = 0; i < 10; i++) queue.enqueue(item(`a${i}`, 'a', 0, i));
    serve(queue, 10, () => 100);
    queue.enqueue(item('a-late', 'a', 0, 100));
    queue.enqueue(item('b-late', 'b', 0, 101));
    assert.equal(queue.peek(200, 'A')?.id, 'a-late');
  });

  it('matches a slow reference on random enqueue, remove, take and finish sequences over owners and groups', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const random = seededRandom(seed);
      const weights: Record<string, number> = { k0: 1, k1: 2, k2: 3, k3: 1 };
      const queue = createDrainQueue<QueueItem>({ agingMs: AGING, weightOf: (o) => weights[o]! });
      const ref = new Reference((o) => weights[o]!);
      let now = 0;
      let n = 0;
      const running: string[] = [];
      for (let step = 0; step < 400; step++) {
        now += Math.floor(random() * 300);
        const r = random();
        if (r < 0.45) {
          const it = item(`j${n++}`, `k${Math.floor(random() * 4)}`, Math.floor(random() * 3), now - Math.floor(random() * 2000), `G${Math.floor(random() * 2)}`);
          queue.enqueue(it);
          ref.enqueue(it);
        } else if (r < 0.55 && ref.items.size > 0) {
          const ids = [...ref.items.keys()];
          const id = ids[Math.floor(random() * ids.length)]!;
          assert.equal(queue.remove(id)?.id, id);
          ref.remove(id);
        } else if (r < 0.85) {
          const loaded = random() < 0.5 ? 'G0' : 'G1';
          const expected = ref.peek(now, loaded);
          assert.equal(queue.peek(now, loaded)?.id, expected?.id, `seed ${seed} step ${step}`);
          if (expected && running.length < 3) {
            queue.take(expected.id);
            ref.take(expected.id);
            running.push(expected.id);
          }
        } else if (running.length > 0) {
          const id = running.splice(Math.floor(random() * running.length), 1)[0]!;
          const ms = 10 + Math.floor(random() * 500);
          queue.finished(id, ms);
          ref.finished(id, ms);
        }
      }
    }
  });
});

describe('FairIndex', () => {
  it('finds the least element of a prefix with leftmost ties, across inserts and removes', () => {
    const random = seededRandom(7);
    type E = { order: number; v: number };
    const index = new FairIndex<E>((a, b) => a.order < b.order, (a, b) => a.v < b.v, random);
    const held: E[] = [];
    for (let i = 0; i < 2000; i++) {
      if (held.length > 0 && random() < 0.4) {
        const e = held.splice(Math.floor(random() * held.length), 1)[0]!;
        index.remove(e);
      } else {
        const e = { order: i, v: Math.floor(random() * 20) };
        index.insert(e);
        held.push(e);
      }
      const limit = Math.floor(random() * 2000);
      const prefix = held.filter((e) => e.order <= limit).sort((a, b) => a.order - b.order);
      let expected: E | undefined;
      for (const e of prefix) if (expected === undefined || e.v < expected.v) expected = e;
      assert.equal(index.bestOfPrefix((e) => e.order <= limit), expected);
      assert.equal(index.size, held.length);
      assert.equal(index.first(), [...held].sort((a, b) => a.order - b.order)[0]);
    }
  });
});

// ---- the same rules, written slowly ----

interface RefEntry {
  item: QueueItem;
  seq: number;
}

class Reference {
  readonly items = new Map<string, RefEntry>();
  // per group: owner -> v; group time; estimate; running counts
  readonly groups = new Map<string, { v: Map<string, number>; vtime: number; est: number; running: number; runningBy: Map<string, number> }>();
  readonly taken = new Map<string, { group: string; owner: string; charged: number }>();
  #seq = 0;
  constructor(readonly weightOf: (o: string) => number) {}

  #group(name: string) {
    let g = this.groups.get(name);
    if (!g) this.groups.set(name, (g = { v: new Map(), vtime: 0, est: 0, running: 0, runningBy: new Map() }));
    return g;
  }
  #key(e: RefEntry) {
    return e.item.priority * AGING - e.item.arrivalMs;
  }
  #before(a: RefEntry, b: RefEntry) {
    const ka = this.#key(a);
    const kb = this.#key(b);
    if (ka !== kb) return ka > kb;
    if (a.item.arrivalMs !== b.item.arrivalMs) return a.item.arrivalMs < b.item.arrivalMs;
    return a.seq < b.seq;
  }
  #waiting(group: string, owner?: string) {
    return [...this.items.values()].filter((e) => e.item.group === group && (owner === undefined || e.item.owner === owner));
  }
  enqueue(item: QueueItem) {
    const g = this.#group(item.group);
    const owner = item.owner!;
    if (this.#waiting(item.group, owner).length === 0) g.v.set(owner, Math.max(g.v.get(owner) ?? g.vtime, g.vtime));
    this.items.set(item.id, { item, seq: this.#seq++ });
  }
  #tidy(group: string, owner: string) {
    const g = this.groups.get(group)!;
    if (this.#waiting(group, owner).length === 0 && (g.runningBy.get(owner) ?? 0) === 0 && (g.v.get(owner) ?? 0) <= g.vtime) g.v.delete(owner);
    if (this.#waiting(group).length === 0 && g.running === 0) this.groups.delete(group);
  }
  remove(id: string) {
    const e = this.items.get(id)!;
    this.items.delete(id);
    this.#tidy(e.item.group, e.item.owner!);
  }
  take(id: string) {
    const e = this.items.get(id)!;
    this.items.delete(id);
    const g = this.groups.get(e.item.group)!;
    const owner = e.item.owner!;
    const v = g.v.get(owner)!;
    g.vtime = Math.max(g.vtime, v);
    const charged = Math.max(g.est, 1) / this.weightOf(owner);
    g.v.set(owner, v + charged);
    g.running++;
    g.runningBy.set(owner, (g.runningBy.get(owner) ?? 0) + 1);
    this.taken.set(id, { group: e.item.group, owner, charged });
  }
  finished(id: string, ms: number) {
    const t = this.taken.get(id)!;
    this.taken.delete(id);
    const g = this.groups.get(t.group)!;
    g.est = g.est === 0 ? ms : g.est * 0.8 + ms * 0.2;
    g.v.set(t.owner, g.v.get(t.owner)! + ms / this.weightOf(t.owner) - t.charged);
    g.running--;
    g.runningBy.set(t.owner, g.runningBy.get(t.owner)! - 1);
    this.#tidy(t.group, t.owner);
  }
  peek(now: number, loaded: string | null): QueueItem | undefined {
    const eff = (e: RefEntry) => effectivePriority(e.item.priority, now - e.item.arrivalMs, AGING);
    let winner: RefEntry | undefined;
    for (const name of new Set([...this.items.values()].map((e) => e.item.group))) {
      let head: RefEntry | undefined;
      for (const e of this.#waiting(name)) if (!head || this.#before(e, head)) head = e;
      if (!winner) {
        winner = head;
        continue;
      }
      const [ea, eb] = [eff(head!), eff(winner)];
      const better = ea !== eb ? ea > eb
        : head!.item.group === loaded ? true : winner.item.group === loaded ? false
        : head!.item.arrivalMs !== winner.item.arrivalMs ? head!.item.arrivalMs < winner.item.arrivalMs : head!.seq < winner.seq;
      if (better) winner = head;
    }
    if (!winner) return undefined;
    const group = winner.item.group;
    const top = eff(winner);
    const g = this.groups.get(group)!;
    let chosen: RefEntry | undefined;
    const owners = new Set(this.#waiting(group).map((e) => e.item.owner!));
    for (const owner of owners) {
      let head: RefEntry | undefined;
      for (const e of this.#waiting(group, owner)) if (!head || this.#before(e, head)) head = e;
      if (eff(head!) !== top) continue;
      if (!chosen) chosen = head;
      else {
        const [va, vb] = [g.v.get(owner)!, g.v.get(chosen.item.owner!)!];
        if (va < vb || (va === vb && this.#before(head!, chosen))) chosen = head;
      }
    }
    return chosen?.item;
  }
}
