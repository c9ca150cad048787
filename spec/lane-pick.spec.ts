// The lane pick of SPEC §17 (ADR 0024) and the learned load costs (ADR 0025), as pure units.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pickForLane, RENT, type Candidate, type LaneState, type PickInput } from '../lib/sched/lane-pick.js';
import { DEFAULT_LOAD_MS, LoadCosts } from '../lib/sched/load-costs.js';
import { HostFleet, type FleetHost } from '../lib/sched/host-fleet.js';
import { createDrainQueue } from '../lib/sched/queue.js';
import type { LaneEntry } from '../lib/sched/lane.js';
import { silentLogger } from '../lib/log.js';
import type { Upstream } from '../lib/upstream.js';

const AGING = 60_000;
const NOW = 1_000_000;

function lane(name: string, over: Partial<LaneState> = {}): LaneState {
  return { name, up: true, loaded: null, running: 0, parallel: 1, switching: false, ...over };
}

function cand(group: string, over: Partial<Candidate> = {}): Candidate {
  return { key: group, group, priority: 0, arrivalMs: NOW - 1000, count: 1, ...over };
}

function input(l: LaneState, lanes: LaneState[], candidates: Candidate[], over: Partial<PickInput> = {}): PickInput {
  return {
    lane: l, lanes, candidates, nowMs: NOW, agingMs: AGING,
    canRun: () => true,
    loadMs: () => 5_000,
    runMs: () => 1_000,
    measured: () => true,
    waitingOf: (g) => candidates.filter((c) => c.group === g).reduce((a, c) => a + c.count, 0),
    ...over,
  };
}

describe('lane pick', () => {
  it('drains the group the lane has loaded before an older group of equal priority', () => {
    const a = lane('a', { loaded: 'A' });
    const p = pickForLane(input(a, [a], [cand('B', { arrivalMs: NOW - 5000 }), cand('A')]));
    assert.deepEqual(p, { kind: 'take', key: 'A', group: 'A' });
  });

  it('takes a group nobody has loaded rather than a second copy of a small backlog', () => {
    const a = lane('a');
    const b = lane('b', { loaded: 'B', running: 1 });
    const p = pickForLane(input(a, [a, b], [cand('B', { arrivalMs: NOW - 9000, count: 3 }), cand('C')]));
    assert.deepEqual(p, { kind: 'take', key: 'C', group: 'C' });
  });

  it('makes a second copy only when the backlog outlasts the load', () => {
    const a = lane('a');
    const b = lane('b', { loaded: 'B', running: 1 });
    const small = pickForLane(input(a, [a, b], [cand('B', { count: 4 })]));
    assert.deepEqual(small, { kind: 'none' }, '4 jobs x 1 s < 5 s load');
    const big = pickForLane(input(a, [a, b], [cand('B', { count: 6 })]));
    assert.deepEqual(big, { kind: 'take', key: 'B', group: 'B' }, '6 jobs x 1 s > 5 s load');
  });

  it('leaves a free group to an idle lane that loads it faster', () => {
    const slow = lane('slow');
    const fast = lane('fast');
    const loadMs = (l: string) => (l === 'fast' ? 2_000 : 20_000);
    assert.deepEqual(pickForLane(input(slow, [slow, fast], [cand('C')], { loadMs })), { kind: 'none' });
    assert.deepEqual(pickForLane(input(fast, [slow, fast], [cand('C')], { loadMs })), { kind: 'take', key: 'C', group: 'C' });
    // The fast lane ends its last job soon: still sooner there than 20 s of load here.
    const endingFast = lane('fast', { loaded: 'D', running: 1 });
    assert.deepEqual(pickForLane(input(slow, [slow, endingFast], [cand('C')], { loadMs })), { kind: 'none' });
  });

  it('takes a free group itself when the faster lane has a long drain of its own', () => {
    const slow = lane('slow');
    const fast = lane('fast', { loaded: 'D', running: 1 });
    const loadMs = (l: string) => (l === 'fast' ? 2_000 : 20_000);
    const cands = [cand('C'), cand('D', { count: 30 })]; // 30 s of D on the fast lane
    assert.deepEqual(pickForLane(input(slow, [slow, fast], [cand('C')], { loadMs, all: cands, waitingOf: (g) => (g === 'D' ? 30 : 1) })), { kind: 'take', key: 'C', group: 'C' });
  });

  it('plans free groups longest first, each where it ends first, counting the groups this lane cannot run', () => {
    const a = lane('a');
    const b = lane('b');
    const big = cand('BIG', { count: 10 });
    const small = cand('S', { count: 2 });
    const onlyB = cand('X', { count: 3 });
    const canRun = (l: LaneState, c: Candidate) => !(c.group === 'X' && l.name === 'a');
    // b takes X (only b can), a takes BIG; S then fits after X on b (3 + 5 + 2 < 15 on a).
    const all = [big, small, onlyB];
    assert.deepEqual(pickForLane(input(a, [a, b], [big, small], { all, canRun })), { kind: 'take', key: 'BIG', group: 'BIG' });
    assert.deepEqual(pickForLane(input(b, [a, b], all, { all, canRun })), { kind: 'take', key: 'X', group: 'X' });
  });

  it('improves the greedy plan by a swap when a lane that cannot run the last group would idle at the end', () => {
    const a = lane('a');
    const b = lane('b');
    // Greedy (longest first, each where it ends first): G1 (6 s) to a, G2 (4 s) to b, G3 (4 s,
    // a only) to a: a ends at 10 s, b at 4 s. Swapping G1 and G2 ends both by 8 s.
    const g1 = cand('G1', { count: 6 });
    const g2 = cand('G2', { count: 4, arrivalMs: NOW - 2000 });
    const g3 = cand('G3', { count: 4 });
    const all = [g1, g2, g3];
    const canRun = (l: LaneState, c: Candidate) => !(c.group === 'G3' && l.name === 'b');
    const over = { all, canRun, loadMs: () => 0 };
    assert.deepEqual(pickForLane(input(b, [a, b], [g1, g2], over)), { kind: 'take', key: 'G1', group: 'G1' });
    assert.deepEqual(pickForLane(input(a, [a, b], all, over)), { kind: 'take', key: 'G2', group: 'G2' });
  });

  it('moves no group of a higher priority to improve the plan of the lower ones', () => {
    const a = lane('a');
    const b = lane('b');
    // The same shape, but G1 is interactive: it stays where greedy put it (a, the first lane to
    // free) even though the backlog would pack better with it on b.
    const g1 = cand('G1', { count: 6, priority: 10 });
    const g2 = cand('G2', { count: 4, arrivalMs: NOW - 2000 });
    const g3 = cand('G3', { count: 4 });
    const all = [g1, g2, g3];
    const canRun = (l: LaneState, c: Candidate) => !(c.group === 'G3' && l.name === 'b');
    const over = { all, canRun, loadMs: () => 0 };
    assert.deepEqual(pickForLane(input(a, [a, b], all, over)), { kind: 'take', key: 'G1', group: 'G1' });
    assert.deepEqual(pickForLane(input(b, [a, b], [g1, g2], over)), { kind: 'take', key: 'G2', group: 'G2' });
  });

  it('lets a higher priority win over a long drain once it has waited RENT times the load it wastes, waiting for the running jobs first', () => {
    const a = lane('a', { loaded: 'A', running: 1, parallel: 2 });
    const long = cand('A', { count: 30 }); // 15 s of drain left at parallel 2
    const fresh = cand('B', { priority: 10, arrivalMs: NOW - 1_000 });
    assert.deepEqual(pickForLane(input(a, [a], [long, fresh])), { kind: 'take', key: 'A', group: 'A' }, 'waited 1 s < 2 x 5 s');
    const waited = cand('B', { priority: 10, arrivalMs: NOW - RENT * 5_000 });
    assert.deepEqual(pickForLane(input(a, [a], [long, waited])), { kind: 'wait' });
    const idle = lane('a', { loaded: 'A' });
    assert.deepEqual(pickForLane(input(idle, [idle], [long, waited])), { kind: 'take', key: 'B', group: 'B' });
  });

  it('leaves at once for a higher priority when another lane holds its group too (nothing to reload)', () => {
    const a = lane('a', { loaded: 'A' });
    const b = lane('b', { loaded: 'A', running: 1 });
    const cands = [cand('A', { count: 30 }), cand('B', { priority: 10, arrivalMs: NOW })];
    assert.deepEqual(pickForLane(input(a, [a, b], cands)), { kind: 'take', key: 'B', group: 'B' });
  });

  it('makes no early switch to copy a group another lane is serving', () => {
    const a = lane('a', { loaded: 'A' });
    const b = lane('b', { loaded: 'B', running: 1 });
    const cands = [cand('A', { count: 30 }), cand('B', { priority: 10, count: 40, arrivalMs: NOW - 60_000 })];
    assert.deepEqual(pickForLane(input(a, [a, b], cands)), { kind: 'take', key: 'A', group: 'A' });
    // Its own drain done, it copies a backlog that outlasts the load.
    const done = [cand('B', { priority: 10, count: 40 })];
    assert.deepEqual(pickForLane(input(lane('a', { loaded: 'A' }), [a, b], done)), { kind: 'take', key: 'B', group: 'B' });
  });

  it('finishes a short drain before a higher priority rather than pay two loads', () => {
    const a = lane('a', { loaded: 'A' });
    const p = pickForLane(input(a, [a], [cand('A', { count: 3 }), cand('B', { priority: 10 })]));
    assert.deepEqual(p, { kind: 'take', key: 'A', group: 'A' }, '3 s of drain < 5 s + 5 s of loads');
  });

  it('leaves a higher priority to a lane whose drain is done', () => {
    const a = lane('a', { loaded: 'A' });
    const b = lane('b', { loaded: 'C', running: 1 }); // nothing of C waits: b is free after this job
    const cands = [cand('A', { count: 30 }), cand('B', { priority: 10, arrivalMs: NOW - 60_000 })];
    assert.deepEqual(pickForLane(input(a, [a, b], cands)), { kind: 'take', key: 'A', group: 'A' }, 'planned for b, however long it waited');
  });

  it('makes no early switch by aging when the load costs more than the work it serves, for one more aging interval', () => {
    const a = lane('a', { loaded: 'A' });
    const agedOnce = cand('B', { arrivalMs: NOW - AGING - 1000 });
    const ownHead = cand('A', { arrivalMs: NOW - 10, count: 30 }); // a long drain: waiting for its end costs more
    assert.deepEqual(pickForLane(input(a, [a], [ownHead, agedOnce])), { kind: 'take', key: 'A', group: 'A' }, '1 s of work, 5 s load');
    // Cheap enough: the work covers the load.
    assert.deepEqual(pickForLane(input(a, [a], [ownHead, { ...agedOnce, count: 6 }])), { kind: 'take', key: 'B', group: 'B' });
    // Unmeasured load: the plain SPEC §1 rule.
    assert.deepEqual(pickForLane(input(a, [a], [ownHead, agedOnce], { measured: () => false })), { kind: 'take', key: 'B', group: 'B' });
    // Starvation stays bounded: two intervals ahead wins.
    const agedTwice = cand('B', { arrivalMs: NOW - 2 * AGING - 1000 });
    assert.deepEqual(pickForLane(input(a, [a], [ownHead, agedTwice])), { kind: 'take', key: 'B', group: 'B' });
  });

  it('takes nothing when down, switching or full', () => {
    for (const l of [lane('a', { up: false }), lane('a', { switching: true }), lane('a', { running: 1 })]) {
      assert.deepEqual(pickForLane(input(l, [l], [cand('A')])), { kind: 'none' });
    }
  });
});

describe('load costs', () => {
  it('learns a moving average per host and group, and falls back to the model elsewhere, the host, then all hosts', () => {
    const c = new LoadCosts();
    assert.equal(c.loadMs('h1', 'A'), DEFAULT_LOAD_MS);
    c.recordLoad('h1', 'A', 10_000);
    c.recordLoad('h1', 'A', 20_000);
    assert.equal(c.loadMs('h1', 'A'), 13_000);
    assert.equal(c.loadMs('h1', 'B'), 13_000, 'this host, another group: its average');
    c.recordLoad('h2', 'B', 1_000);
    assert.equal(c.loadMs('h2', 'A'), 13_000, 'the same model measured on another host');
    assert.equal(c.loadMs('h2', 'C'), 1_000, 'a model measured nowhere: this host\'s average');
    assert.equal(c.loadMs('h3', 'Z'), 7_000, 'an unseen host, an unseen model: the average over all hosts');
    assert.equal(c.loadMs('h3', 'A'), 13_000, 'an unseen host, a model measured elsewhere: that measurement');
    assert.deepEqual(c.measured('h1'), [{ group: 'A', loadMs: 13_000, loads: 2 }]);
  });

  it('ignores nonsense measurements', () => {
    const c = new LoadCosts();
    c.recordLoad('h', 'A', -5);
    c.recordRun('A', Number.NaN);
    assert.equal(c.measuredLoad('h', 'A'), undefined);
    assert.equal(c.hasRun('A'), false);
  });
});

describe('host fleet: a fresh queue', () => {
  function fleetOf(t: { after(fn: () => void): void }, clock: { now: number }) {
    let woken: () => void = () => {};
    const wake = () => woken();
    const host = (name: string): FleetHost => ({
      name, parallel: 1, state: 'up', upstream: {} as Upstream, hasModel: () => true,
    });
    const fleet = new HostFleet({
      hosts: [host('h1'), host('h2')], queue: createDrainQueue<LaneEntry>({ agingMs: AGING }), agingMs: AGING,
      unloadOnSwitch: false, log: silentLogger, now: () => clock.now, wake, markDown: () => {},
    });
    t.after(() => fleet.close());
    const entry = (id: string, group: string): LaneEntry => ({
      id, group, priority: 0, arrivalMs: clock.now, owner: '',
      job: { id, model: group, group, priority: 0, origin: 'async', kind: 'chat', run: async () => 'completed', dropped: () => {} },
    });
    return { fleet, entry, woken: () => new Promise<void>((r) => (woken = r)) };
  }

  it('waits a moment before a load so work submitted together is seen together, then takes the larger backlog', async (t) => {
    const clock = { now: 0 };
    const { fleet, entry, woken } = fleetOf(t, clock);
    const [h1] = fleet.lanes;
    const wake = woken();
    fleet.queue.enqueue(entry('a1', 'A'));
    assert.equal(fleet.nextFor(h1!, clock.now), null, 'no load decided on a queue 0 ms old');
    clock.now = 10;
    for (let i = 0; i < 5; i++) fleet.queue.enqueue(entry(`b${i}`, 'B'));
    assert.equal(fleet.nextFor(h1!, clock.now), null);
    await wake; // the fleet's own timer: 50 ms after the queue last grew (before 5 % of the default load)
    clock.now = 60;
    assert.equal(fleet.nextFor(h1!, clock.now)?.group, 'B', 'the larger backlog first, not the first job to land');
  });

  it('holds a lone request only until the queue has been quiet a moment, not for the whole share of a load', (t) => {
    const clock = { now: 0 };
    const { fleet, entry } = fleetOf(t, clock);
    const [h1] = fleet.lanes;
    fleet.queue.enqueue(entry('a1', 'A'));
    assert.equal(fleet.nextFor(h1!, clock.now), null, 'a moment to see what lands with it');
    clock.now = 49;
    assert.equal(fleet.nextFor(h1!, clock.now), null);
    clock.now = 50;
    assert.equal(fleet.nextFor(h1!, clock.now)?.id, 'a1', '50 ms quiet, well before 5 % of the 5 s default load');
  });

  it('keeps gathering while jobs keep landing, up to the share of the load', (t) => {
    const clock = { now: 0 };
    const { fleet, entry } = fleetOf(t, clock);
    const [h1] = fleet.lanes;
    for (let i = 0; clock.now < 0.05 * DEFAULT_LOAD_MS; i++, clock.now += 40) {
      fleet.queue.enqueue(entry(`a${i}`, 'A'));
      assert.equal(fleet.nextFor(h1!, clock.now), null, `still landing at ${clock.now} ms`);
    }
    clock.now = 0.05 * DEFAULT_LOAD_MS;
    assert.equal(fleet.nextFor(h1!, clock.now)?.group, 'A', 'the share of the load bounds the gather');
  });

  it('does not wait to run more of the group a lane has loaded', (t) => {
    const clock = { now: 0 };
    const { fleet, entry } = fleetOf(t, clock);
    const [h1] = fleet.lanes;
    h1!.loaded = 'A';
    fleet.queue.enqueue(entry('a1', 'A'));
    assert.equal(fleet.nextFor(h1!, clock.now)?.id, 'a1');
  });
});
