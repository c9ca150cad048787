// The hosts bench's workload (hosts-workload.ts) replayed in virtual time through the real lane
// pick (lib/sched/lane-pick.ts) and load-cost estimator (lib/sched/load-costs.ts): no processes,
// no noise, any number of seeds in a second. A dev tool to compare lane-pick policies before the
// real bench, which runs in scaled real time on a shared machine (ADR 0027 has its numbers).
// It models the fleet's rules around the pick (the gather before a load, one job per host, a
// switch timed from the pick) but not HTTP, the journal or the simulators' own timing.
//
//   node --import tsx spec/bench/hosts-sim.ts [seed ...]     (default: the bench's seed; "1-20" = a range)
// Env: HOSTS_SIM_WARM=1 (costs known from the start; default cold: learned as the bench's first
// run learns them), HOSTS_SIM_OVERHEAD_MS (per job, default 4), HOSTS_SIM_DEBUG=1 (load order per
// host: group@ms, * = sync jobs waiting for it, (n) = its async jobs waiting).
// Each line also gives the backlog's offline optimum without splits (every group on one host,
// best assignment by brute force, the same per-job overhead), against the same bound.

import { pickForLane, type Candidate, type LaneState } from '../../lib/sched/lane-pick.js';
import { LoadCosts } from '../../lib/sched/load-costs.js';
// The fleet's gather: a share of the load, at most GATHER_MAX_MS, or GATHER_QUIET_MS after the queue last grew.
import { GATHER_MAX_MS, GATHER_QUIET_MS, GATHER_SHARE } from '../../lib/sched/host-fleet.js';
import { DEFAULT_SEED, HOSTS, MODELS, hasModel, loadTable, modelIndex, runMs, workload, type Job } from './hosts-workload.js';

/** The bench's 144 concurrent POST /jobs land over about this long. */
const SUBMIT_SPREAD_MS = 35;
const SYNC_PRIORITY = 10;
const AGING_MS = 60_000;

interface SimLane extends LaneState {
  name: string;
  loaded: string | null;
  running: number;
  h: number;
  order: string[];
}

interface Waiting {
  job: Job;
  arrival: number;
}

export interface SimResult {
  loads: number;
  makespan: number;
  bound: number;
  ratio: number;
  syncP95: number;
  orders: string[][];
}

const prio = (w: Waiting) => (w.job.sync ? SYNC_PRIORITY : 0);
const headOf = (ws: Waiting[]) => ws.reduce((a, b) => (prio(b) > prio(a) || (prio(b) === prio(a) && b.arrival < a.arrival) ? b : a));

export function simulate(jobs: Job[], loads: number[][], opts: { overheadMs?: number; warm?: boolean } = {}): SimResult {
  const overhead = opts.overheadMs ?? 4;
  const lanes: SimLane[] = Array.from({ length: HOSTS }, (_, h) => ({ name: `h${h + 1}`, up: true, loaded: null, running: 0, parallel: 1, switching: false, h, order: [] }));
  const trueLoad = (lane: SimLane, group: string) => loads[lane.h]![modelIndex(group)]!;
  const meanRun = new Map<string, number>();
  for (const m of MODELS) {
    const js = jobs.filter((j) => j.model === m);
    if (js.length) meanRun.set(m, js.reduce((a, j) => a + runMs(j), 0) / js.length + overhead);
  }
  const costs = opts.warm ? null : new LoadCosts();
  const loadMs = (lane: SimLane, group: string) => (costs ? costs.loadMs(lane.name, group) : trueLoad(lane, group));
  const asyncCount = jobs.filter((j) => !j.sync).length;
  let nth = 0;
  const pending: Waiting[] = jobs
    .map((job) => ({ job, arrival: job.sync ? job.at : job.at + (SUBMIT_SPREAD_MS * nth++) / asyncCount }))
    .sort((a, b) => a.arrival - b.arrival);
  const queue: Waiting[] = [];
  const ends: Array<{ at: number; lane: SimLane; w: Waiting; load: number; group: string }> = [];
  const waits: number[] = [];
  let now = 0;
  let loadCount = 0;
  let makespan = 0;
  let wakeAt = Infinity;
  let grewAt = -Infinity;
  const pump = () => {
    for (let took = true; took;) {
      took = false;
      for (const lane of lanes) {
        if (lane.running >= lane.parallel || queue.length === 0) continue;
        const groups = new Map<string, Waiting[]>();
        for (const w of queue) {
          const list = groups.get(w.job.model);
          if (list) list.push(w);
          else groups.set(w.job.model, [w]);
        }
        const heads: Candidate[] = [...groups].map(([g, ws]) => {
          const head = headOf(ws);
          return { key: g, group: g, priority: prio(head), arrivalMs: head.arrival, count: ws.length };
        });
        const canRun = (l: LaneState, c: Candidate) => hasModel((l as SimLane).h, modelIndex(c.group));
        const mine = heads.filter((c) => canRun(lane, c));
        if (mine.length === 0) continue;
        const pick = pickForLane({
          lane, lanes, candidates: mine, all: heads, nowMs: now, agingMs: AGING_MS, canRun,
          loadMs: (host, g) => loadMs(lanes.find((l) => l.name === host)!, g),
          runMs: (g) => (costs ? costs.runMs(g) : meanRun.get(g)!),
          measured: (host, g) => !costs || costs.measuredLoad(host, g) !== undefined,
          waitingOf: (g) => groups.get(g)?.length ?? 0,
        });
        if (pick.kind !== 'take') continue;
        let load = 0;
        if (pick.group !== lane.loaded) {
          const oldest = Math.min(...queue.map((w) => w.arrival));
          const gather = Math.min(GATHER_MAX_MS, GATHER_SHARE * loadMs(lane, pick.group));
          const until = Math.min(oldest + gather, grewAt + GATHER_QUIET_MS);
          if (now < until) {
            wakeAt = Math.min(wakeAt, until);
            continue;
          }
          const ws = groups.get(pick.group)!;
          lane.order.push(`${pick.group}@${Math.round(now)}${ws.some((w) => w.job.sync) ? '*' : ''}(${ws.filter((w) => !w.job.sync).length})`);
          load = trueLoad(lane, pick.group);
          lane.loaded = pick.group;
          loadCount++;
        }
        const w = headOf(groups.get(pick.group)!);
        queue.splice(queue.indexOf(w), 1);
        lane.running++;
        if (w.job.sync) waits.push(now + load - w.arrival);
        ends.push({ at: now + load + runMs(w.job) + overhead, lane, w, load, group: pick.group });
        took = true;
      }
    }
  };
  while (pending.length || ends.length || queue.length) {
    ends.sort((a, b) => a.at - b.at);
    const t = Math.min(pending[0]?.arrival ?? Infinity, ends[0]?.at ?? Infinity, wakeAt);
    if (t === Infinity) throw new Error('replay stuck: jobs wait and nothing is due');
    now = t;
    if (t >= wakeAt) wakeAt = Infinity;
    while (pending.length && pending[0]!.arrival <= now) {
      queue.push(pending.shift()!);
      grewAt = now;
    }
    while (ends.length && ends[0]!.at <= now) {
      const e = ends.shift()!;
      e.lane.running--;
      makespan = Math.max(makespan, e.at);
      if (costs) {
        if (e.load > 0) costs.recordLoad(e.lane.name, e.group, e.load);
        costs.recordRun(e.group, runMs(e.w.job) + overhead);
      }
    }
    pump();
  }
  const work = jobs.reduce((a, j) => a + runMs(j), 0);
  const minLoad = (m: string) => Math.min(...loads.map((row, h) => (hasModel(h, modelIndex(m)) ? row[modelIndex(m)]! : Infinity)));
  const bound = (work + [...new Set(jobs.map((j) => j.model))].reduce((a, m) => a + minLoad(m), 0)) / HOSTS;
  waits.sort((a, b) => a - b);
  const syncP95 = waits.length ? waits[Math.ceil(0.95 * waits.length) - 1]! : NaN;
  return { loads: loadCount, makespan, bound, ratio: makespan / bound, syncP95, orders: lanes.map((l) => l.order) };
}

/** The backlog's best makespan over the bound with each group on one host (brute force over assignments). */
export function noSplitOptimum(jobs: Job[], loads: number[][], overheadMs = 4): number {
  const work = MODELS.map((m) => jobs.filter((j) => j.model === m).reduce((a, j) => a + runMs(j) + overheadMs, 0));
  let best = Infinity;
  const place = (i: number, ends: number[]): void => {
    if (Math.max(...ends) >= best) return;
    if (i === MODELS.length) {
      best = Math.max(...ends);
      return;
    }
    if (work[i] === 0) return place(i + 1, ends);
    for (let h = 0; h < HOSTS; h++) {
      if (!hasModel(h, i)) continue;
      const next = ends.slice();
      next[h]! += loads[h]![i]! + work[i]!;
      place(i + 1, next);
    }
  };
  place(0, Array.from({ length: HOSTS }, () => 0));
  const minLoad = (i: number) => Math.min(...loads.map((row, h) => (hasModel(h, i) ? row[i]! : Infinity)));
  const bound = (jobs.reduce((a, j) => a + runMs(j), 0) + MODELS.reduce((a, _, i) => a + (work[i]! > 0 ? minLoad(i) : 0), 0)) / HOSTS;
  return best / bound;
}

function seedsOf(args: string[]): number[] {
  if (args.length === 0) return [DEFAULT_SEED];
  return args.flatMap((a) => {
    const range = /^(\d+)-(\d+)$/.exec(a);
    if (!range) return [Number(a)];
    return Array.from({ length: Number(range[2]) - Number(range[1]) + 1 }, (_, i) => Number(range[1]) + i);
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const seeds = seedsOf(process.argv.slice(2));
  const opts = { warm: Boolean(process.env.HOSTS_SIM_WARM), overheadMs: Number(process.env.HOSTS_SIM_OVERHEAD_MS ?? 4) };
  const sum = { loads: 0, ratio: 0, p95: 0, bLoads: 0, bRatio: 0, opt: 0 };
  for (const seed of seeds) {
    const jobs = workload(false, seed);
    const table = loadTable(seed);
    const full = simulate(jobs, table, opts);
    const backlog = simulate(jobs.filter((j) => !j.sync), table, opts);
    const opt = noSplitOptimum(jobs.filter((j) => !j.sync), table, opts.overheadMs);
    sum.opt += opt;
    sum.loads += full.loads;
    sum.ratio += full.ratio;
    sum.p95 += full.syncP95;
    sum.bLoads += backlog.loads;
    sum.bRatio += backlog.ratio;
    console.log(`seed ${seed}: full ${full.loads} loads ${full.ratio.toFixed(3)}x sync p95 ${Math.round(full.syncP95)} ms | backlog ${backlog.loads} loads ${backlog.ratio.toFixed(3)}x (no-split optimum ${opt.toFixed(3)}x)`);
    if (process.env.HOSTS_SIM_DEBUG) console.log(full.orders.map((o, h) => `  h${h + 1}: ${o.join(' > ')}`).join('\n'));
  }
  const n = seeds.length;
  if (n > 1) console.log(`mean of ${n}: full ${(sum.loads / n).toFixed(2)} loads ${(sum.ratio / n).toFixed(3)}x sync p95 ${Math.round(sum.p95 / n)} ms | backlog ${(sum.bLoads / n).toFixed(2)} loads ${(sum.bRatio / n).toFixed(3)}x (no-split optimum ${(sum.opt / n).toFixed(3)}x)`);
}
