// The lane pick of SPEC §17 (ADR 0024): which group a free host lane takes next. Drain what
// it has loaded; else a group no lane has loaded or is loading; else a group loaded elsewhere
// only when its waiting work outlasts the load of a second copy. Between groups, priority and
// aging decide (SPEC §1); a switch is not made early when its load costs more than the work it
// serves; a free group goes to the idle lane that loads it fastest. Pure: no I/O, no clock.

import { effectivePriority } from './queue.js';

export interface LaneState {
  readonly name: string;
  readonly up: boolean;
  /** the group loaded or loading here (what a switch chose), null when none */
  readonly loaded: string | null;
  readonly running: number;
  readonly parallel: number;
  /** unloading before a switch: takes nothing until done */
  readonly switching: boolean;
}

/** The pickable head of one queue group (fair share inside the group already chose it). */
export interface Candidate {
  /** the queue's group key */
  readonly key: string;
  /** the group a host loads for it (a session-pinned key maps to its plain group) */
  readonly group: string;
  readonly priority: number;
  readonly arrivalMs: number;
  readonly count: number;
}

export interface PickInput {
  readonly lane: LaneState;
  readonly lanes: readonly LaneState[];
  /** candidates this lane may run (its catalogue has the model; pins respected), any order */
  readonly candidates: readonly Candidate[];
  /** every waiting group, also those this lane cannot run (they keep other lanes busy); default: candidates */
  readonly all?: readonly Candidate[];
  /** whether another lane may run the candidate (its catalogue), for host choice */
  canRun(lane: LaneState, c: Candidate): boolean;
  /** expected load time of a group on a lane, ms */
  loadMs(lane: string, group: string): number;
  /** expected run time of one job of a group, ms */
  runMs(group: string): number;
  /** whether the run time of the group was measured (the early-switch rule needs one) */
  measured(lane: string, group: string): boolean;
  /** waiting jobs of a group a lane could start at once (its drain), over all its keys */
  waitingOf(group: string): number;
  readonly nowMs: number;
  readonly agingMs: number;
}

export type Pick =
  | { kind: 'take'; key: string; group: string }
  | { kind: 'wait' }
  | { kind: 'none' };

type Class = 0 | 1 | 2; // own, free, elsewhere: the tie order

/**
 * Rent or buy (ADR 0027): a higher-priority group planned for a lane that still has its own
 * drain waits up to RENT times the load an early switch would waste before the lane leaves.
 */
export const RENT = 2;

/** Time a lane needs to drain `count` jobs of a group: count × run / parallel. */
function workMs(input: PickInput, group: string, count: number, parallel: number): number {
  return (count * input.runMs(group)) / Math.max(1, parallel);
}

/** How long a lane is busy with what it has loaded: its waiting drain, half a running job, a load under way. */
function busyMs(input: PickInput, m: LaneState): number {
  if (m.loaded === null) return 0;
  let t = workMs(input, m.loaded, input.waitingOf(m.loaded), m.parallel);
  if (m.running > 0) t += input.runMs(m.loaded) / 2;
  if (m.switching) t += input.loadMs(m.name, m.loaded);
  return t;
}

/**
 * The groups nobody has loaded or is loading, planned over the lanes that are up (list
 * scheduling, ADR 0027): in pick order (effective priority, then the larger backlog), each goes
 * to the lane where it would end first: that lane's own drain, plus its measured load of the
 * group, plus the group's work. Returns the keys planned for this lane. So a group goes to the
 * host that loads it fastest unless that host is busy for longer than the difference, and a
 * high-priority group goes to the lane whose drain ends first rather than interrupt one.
 */
function planFree(input: PickInput, eff: (c: Candidate) => number): Set<string> {
  const up = input.lanes.filter((l) => l.up);
  const loaded = new Set(up.map((l) => l.loaded));
  const free = (input.all ?? input.candidates).filter((c) => !loaded.has(c.group));
  const mine = new Set<string>();
  if (free.length === 0) return mine;
  const until = new Map<LaneState, number>(up.map((m) => [m, busyMs(input, m)]));
  const work = (c: Candidate) => c.count * input.runMs(c.group);
  free.sort((a, b) => eff(b) - eff(a) || work(b) - work(a) || a.arrivalMs - b.arrivalMs);
  const runs = new Set(input.candidates.map((c) => c.key));
  const can = (m: LaneState, c: Candidate) => (m === input.lane ? runs.has(c.key) : input.canRun(m, c));
  const cost = (m: LaneState, c: Candidate) => input.loadMs(m.name, c.group) + workMs(input, c.group, c.count, m.parallel);
  const at = new Map<Candidate, LaneState>();
  for (const c of free) {
    let best: LaneState | undefined;
    let end = Infinity;
    for (const m of up) {
      if (!can(m, c)) continue;
      const e = until.get(m)! + cost(m, c);
      // Ties go to the first lane in order, so every lane computes the same plan.
      if (e < end) {
        best = m;
        end = e;
      }
    }
    if (!best) continue;
    until.set(best, end);
    at.set(c, best);
  }
  // Greedy placement leaves the hosts' ends uneven (a host that cannot run the last groups idles
  // at the end): improve it by moves and swaps among the groups of the plan's lowest priority,
  // so no group of a higher priority starts later than the greedy pass put it.
  const last = eff(free[free.length - 1]!);
  improvePlan(free.filter((c) => at.has(c) && eff(c) === last), at, until, up, can, cost);
  for (const [c, m] of at) if (m === input.lane) mine.add(c.key);
  return mine;
}

/** The local search looks at most this many groups (beyond, the greedy plan stands: O(n^2) a step). */
const SEARCH_GROUPS = 24;

/**
 * Local search on the greedy plan (ADR 0027): the best single move or swap of two groups between
 * lanes while it lowers the latest lane end, or keeps it and lowers the sum of lane ends (cheaper
 * loads). Deterministic (first best in order), so every lane finds the same plan.
 */
function improvePlan(
  movable: Candidate[], at: Map<Candidate, LaneState>, until: Map<LaneState, number>, up: LaneState[],
  can: (m: LaneState, c: Candidate) => boolean, cost: (m: LaneState, c: Candidate) => number,
): void {
  if (movable.length === 0 || movable.length > SEARCH_GROUPS || up.length < 2) return;
  const EPS = 1e-6;
  const ends = up.map((m) => until.get(m)!);
  const lane = new Map<Candidate, number>(movable.map((c) => [c, up.indexOf(at.get(c)!)]));
  const costs = movable.map((c) => up.map((m) => (can(m, c) ? cost(m, c) : Infinity)));
  // The score of the plan with lanes i and j changed to ei and ej.
  const score = (i: number, ei: number, j: number, ej: number): [number, number] => {
    let max = 0;
    let sum = 0;
    for (let k = 0; k < ends.length; k++) {
      const v = k === i ? ei : k === j ? ej : ends[k]!;
      max = Math.max(max, v);
      sum += v;
    }
    return [max, sum];
  };
  for (let step = 0; step < 2 * movable.length; step++) {
    let best = score(-1, 0, -1, 0);
    let change: Array<[number, number]> | null = null;
    let touched: [number, number, number, number] = [0, 0, 0, 0];
    const consider = (s: [number, number], moves: Array<[number, number]>, t: [number, number, number, number]) => {
      if (!(s[0] < best[0] - EPS || (s[0] <= best[0] + EPS && s[1] < best[1] - EPS))) return;
      best = s;
      change = moves;
      touched = t;
    };
    for (let a = 0; a < movable.length; a++) {
      const from = lane.get(movable[a]!)!;
      for (let to = 0; to < up.length; to++) {
        if (to === from || costs[a]![to] === Infinity) continue;
        const ef = ends[from]! - costs[a]![from]!;
        const et = ends[to]! + costs[a]![to]!;
        consider(score(from, ef, to, et), [[a, to]], [from, ef, to, et]);
      }
      for (let b = a + 1; b < movable.length; b++) {
        const to = lane.get(movable[b]!)!;
        if (to === from || costs[a]![to] === Infinity || costs[b]![from] === Infinity) continue;
        const ef = ends[from]! - costs[a]![from]! + costs[b]![from]!;
        const et = ends[to]! - costs[b]![to]! + costs[a]![to]!;
        consider(score(from, ef, to, et), [[a, to], [b, from]], [from, ef, to, et]);
      }
    }
    if (change === null) break;
    for (const [g, to] of change as Array<[number, number]>) lane.set(movable[g]!, to);
    ends[touched[0]] = touched[1];
    ends[touched[2]] = touched[3];
  }
  for (const c of movable) at.set(c, up[lane.get(c)!]!);
  up.forEach((m, i) => until.set(m, ends[i]!));
}

export function pickForLane(input: PickInput): Pick {
  const { lane, lanes, nowMs, agingMs } = input;
  if (!lane.up || lane.switching || lane.running >= lane.parallel) return { kind: 'none' };
  const others = lanes.filter((l) => l !== lane && l.up);
  const eff = (c: Candidate) => effectivePriority(c.priority, nowMs - c.arrivalMs, agingMs);

  const ranked: Array<{ c: Candidate; cls: Class; e: number }> = [];
  const planned = planFree(input, eff);
  for (const c of input.candidates) {
    if (c.group === lane.loaded) {
      ranked.push({ c, cls: 0, e: eff(c) });
      continue;
    }
    const holders = others.filter((l) => l.loaded === c.group);
    if (holders.length > 0) {
      // A second copy pays a load here; worth it only while the holders would still be busy
      // with this backlog when the load here ends.
      const parallel = holders.reduce((a, l) => a + l.parallel, 0);
      const drain = workMs(input, c.group, c.count, parallel);
      if (drain <= input.loadMs(lane.name, c.group)) continue;
      ranked.push({ c, cls: 2, e: eff(c) });
      continue;
    }
    // A free group goes where the plan of free groups puts it (planFree): maybe another lane.
    if (!planned.has(c.key)) continue;
    ranked.push({ c, cls: 1, e: eff(c) });
  }
  if (ranked.length === 0) return { kind: 'none' };
  // Equal priorities: the larger backlog first (longest work first packs the hosts best), so a
  // big group starts early and the small ones fill the ends; aging still bounds any wait.
  const work = (r: { c: Candidate }) => r.c.count * input.runMs(r.c.group);
  ranked.sort((a, b) => b.e - a.e || a.cls - b.cls || work(b) - work(a) || a.c.arrivalMs - b.c.arrivalMs);
  // A second copy only when this lane has nothing of its own to drain and no group is free: a
  // group loaded elsewhere is being served there, and every copy is one more load.
  const primary = ranked.filter((r) => r.cls !== 2);
  let best = (primary.length > 0 ? primary : ranked)[0]!;
  const own = ranked.find((r) => r.cls === 0);
  if (best.cls !== 0 && own) {
    const ownWaiting = input.waitingOf(own.c.group);
    // No early switch whose load costs more than the work it serves (ADR 0025): when the rival
    // wins by aging alone, it must then win by two aging intervals, so starvation stays bounded.
    const byAgingOnly = best.c.priority <= own.c.priority;
    const load = input.loadMs(lane.name, best.c.group);
    const cheap = workMs(input, best.c.group, best.c.count, lane.parallel) >= load;
    const held = others.some((l) => l.loaded === best.c.group);
    // A group loaded or loading elsewhere is served there: no early switch to copy it.
    if (held && ownWaiting > 0) best = own;
    else if (byAgingOnly && !cheap && input.measured(lane.name, best.c.group) && best.e < own.e + 2) best = own;
    else if (ownWaiting > 0) {
      // An early switch wastes one load: the backlog it leaves is loaded again later (nothing,
      // when another lane holds that group too and drains it). The rival's own load is paid
      // whenever it runs. Rent or buy (ADR 0027): the rival waits while it has waited less than
      // RENT times that waste, or twice that while a drain (this lane's or another's) ends
      // within the waste; then the lane leaves. Bursts for a model nobody has loaded mostly meet
      // a lane at the natural end of its drain, and no caller waits much more than a few loads.
      const shared = others.some((l) => l.loaded === own.c.group && !l.switching);
      const waste = shared ? 0 : input.loadMs(lane.name, own.c.group);
      const waited = nowMs - best.c.arrivalMs;
      const selfFree = workMs(input, own.c.group, ownWaiting, lane.parallel);
      let otherFree = Infinity;
      for (const m of others) {
        if (m.switching || !input.canRun(m, best.c)) continue;
        const left = m.loaded === null ? 0 : input.waitingOf(m.loaded);
        const busy = m.running > 0 && m.loaded !== null ? input.runMs(m.loaded) : 0;
        const free = (m.loaded === null ? 0 : workMs(input, m.loaded, left, m.parallel)) + busy;
        otherFree = Math.min(otherFree, free + input.loadMs(m.name, best.c.group) - load);
      }
      const soon = Math.min(selfFree, otherFree) <= waste;
      if (waited < RENT * waste || (soon && waited < 2 * RENT * waste)) best = own;
    }
  }
  // A switch waits for the lane's running jobs to end (SPEC §1): the lane takes nothing meanwhile.
  if (best.cls !== 0 && lane.running > 0) return { kind: 'wait' };
  return { kind: 'take', key: best.c.key, group: best.c.group };
}
