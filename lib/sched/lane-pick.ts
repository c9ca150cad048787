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

/** Time a lane needs to drain `count` jobs of a group: count × run / parallel. */
function workMs(input: PickInput, group: string, count: number, parallel: number): number {
  return (count * input.runMs(group)) / Math.max(1, parallel);
}

export function pickForLane(input: PickInput): Pick {
  const { lane, lanes, nowMs, agingMs } = input;
  if (!lane.up || lane.switching || lane.running >= lane.parallel) return { kind: 'none' };
  const others = lanes.filter((l) => l !== lane && l.up);
  const eff = (c: Candidate) => effectivePriority(c.priority, nowMs - c.arrivalMs, agingMs);

  const ranked: Array<{ c: Candidate; cls: Class; e: number }> = [];
  // The waiting work each lane would have if it were spread evenly: a group whose holders need
  // longer than that to drain it is the one that decides when everything ends (ADR 0024).
  let total = 0;
  for (const c of input.candidates) total += c.count * input.runMs(c.group);
  const share = total / (others.length + 1);
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
      const load = input.loadMs(lane.name, c.group);
      if (drain <= load) continue;
      // The bottleneck group is copied as soon as a lane is free, like a group nobody has loaded.
      ranked.push({ c, cls: drain - load > share ? 1 : 2, e: eff(c) });
      continue;
    }
    // A free group goes to the idle lane that loads it fastest: defer to a faster one that is
    // free to switch now (idle, and no drain of its own waiting).
    const mine = input.loadMs(lane.name, c.group);
    const faster = others.some((l) =>
      l.running === 0 && !l.switching && (l.loaded === null || input.waitingOf(l.loaded) === 0) &&
      input.canRun(l, c) && input.loadMs(l.name, c.group) < mine,
    );
    if (faster) continue;
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
    if (byAgingOnly && !cheap && input.measured(lane.name, best.c.group) && best.e < own.e + 2) best = own;
    else if (ownWaiting > 0) {
      // An early switch costs its own load and a second load of the backlog it leaves. Waiting is
      // cheaper when this lane's drain, or another lane's, ends sooner than those two loads take.
      const cost = load + input.loadMs(lane.name, own.c.group);
      const selfFree = workMs(input, own.c.group, ownWaiting, lane.parallel);
      let otherFree = Infinity;
      for (const m of others) {
        if (m.switching || !input.canRun(m, best.c)) continue;
        const left = m.loaded === null ? 0 : input.waitingOf(m.loaded);
        const busy = m.running > 0 && m.loaded !== null ? input.runMs(m.loaded) : 0;
        const free = (m.loaded === null ? 0 : workMs(input, m.loaded, left, m.parallel)) + busy;
        otherFree = Math.min(otherFree, free + input.loadMs(m.name, best.c.group) - load);
      }
      if (Math.min(selfFree, otherFree) <= cost) best = own;
    }
  }
  // A switch waits for the lane's running jobs to end (SPEC §1): the lane takes nothing meanwhile.
  if (best.cls !== 0 && lane.running > 0) return { kind: 'wait' };
  return { kind: 'take', key: best.c.key, group: best.c.group };
}
