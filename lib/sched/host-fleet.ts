// Several Ollama hosts as lanes of one queue (SPEC §17): each host lane has its own loaded
// group, `parallel` and measured load times; lane-pick.ts chooses what a free lane takes.
// Session turns are pinned to the host that served the previous turn while it holds the model
// (their queue key gets ` @host`); a host that fails before a job's first byte is marked down
// and the job goes back to the queue. No HTTP here; hosts/pool.ts knows the hosts' health.

import type { DrainQueue } from './queue.js';
import { modelKey, modelOfGroup, sameModel } from './model-group.js';
import { isCloudModel } from './model-ref.js';
import { pickForLane, type Candidate, type LaneState as PickLane } from './lane-pick.js';
import type { FinishState, Lane, LaneEntry, LaneState, RunContext, SchedulerJob } from './lane.js';
import { LoadCosts, type LoadCost, type LoadSource } from './load-costs.js';
import type { Logger } from '../log.js';
import type { Upstream } from '../upstream.js';

/** What the fleet needs of a host (hosts/host.ts provides it). */
export interface FleetHost {
  readonly name: string;
  readonly parallel: number;
  readonly state: 'up' | 'down';
  readonly upstream: Upstream;
  hasModel(model: string): boolean | undefined;
  /** the model's size on its disk (its /api/tags), a prior for its load time before one is measured */
  sizeOf?(model: string): number | undefined;
  /** what it has installed, null until known (/queue shows an estimated load time for each) */
  installed?(): readonly string[] | null;
  /** the embedding model its /api/ps shows loaded (its own slot, SPEC §3); embeddings go there first */
  embedLoaded?: string | null;
}

/** One host's lane as plain state; ops/queue-view.ts renders it for /queue. */
export interface HostLaneState {
  readonly name: string;
  readonly state: 'up' | 'down';
  readonly parallel: number;
  readonly running: number;
  readonly loadedGroup: string | null;
  readonly switching: boolean;
  /** removed from hosts_file: finishing its running jobs, takes no new ones */
  readonly retiring: boolean;
  readonly switches: number;
  /** measured load times on this host */
  readonly loads: readonly LoadCost[];
  /** installed models not measured here yet: the load time the pick assumes, and where it comes from */
  readonly estimates: ReadonlyArray<{ readonly group: string; readonly loadMs: number; readonly source: Exclude<LoadSource, 'measured'> }>;
}

export interface FleetSwitch {
  atMs: number;
  host: string;
  from: string | null;
  to: string;
  loadMs: number | null;
}

export interface FleetOptions {
  hosts: readonly FleetHost[];
  queue: DrainQueue<LaneEntry>;
  agingMs: number;
  unloadOnSwitch: boolean;
  log: Logger;
  now: () => number;
  /** The fleet may start work it refused before (an unload ended, a host came back). */
  wake: () => void;
  switched?: (from: string | null, to: string, host: string) => void;
  /** A host could not be reached: mark it down (hosts/pool.ts). */
  markDown: (host: FleetHost, reason: string) => void;
  /** A host answered 404 for a model: read its catalogue again. */
  modelMissing?: (host: FleetHost) => void;
  /** A retired host's lane ended (its last job finished): the scheduler drops it, the pool closes the host. */
  retired?: (host: FleetHost) => void;
  /** A load or run time was measured (hosts/load-times-file.ts keeps them across restarts). */
  costsChanged?: () => void;
}

const PIN = ' @';
const SWITCH_LIMIT = 20;
const SESSION_LIMIT = 10_000;
/** A switch's upstream calls (the /api/show check and the unload) share this budget: the lane waits on it. */
const SWITCH_BUDGET_MS = 10_000;
/** An idle host waits this share of a load (at most GATHER_MAX_MS) for a new queue to fill before it loads. */
export const GATHER_SHARE = 0.05;
export const GATHER_MAX_MS = 1_000;
/** The gather ends sooner once the queue has not grown for this long: what was submitted together has landed. */
export const GATHER_QUIET_MS = 50;

/** A queue key `group @host` pins a session's turn; the plain group is what a host loads. */
export function splitKey(key: string): { group: string; pinned: string | null } {
  const at = key.lastIndexOf(PIN);
  return at === -1 ? { group: key, pinned: null } : { group: key.slice(0, at), pinned: key.slice(at + PIN.length) };
}

/** One host as a lane of the scheduler (lane.ts); the fleet decides what it takes. */
export class HostLane implements Lane, PickLane {
  readonly host: FleetHost;
  readonly kind = 'local' as const;
  readonly #fleet: HostFleet;
  loaded: string | null = null;
  running = 0;
  switching = false;
  switchCount = 0;
  pending: FleetSwitch | null = null;
  /** removed by a hosts_file reload: takes nothing, ends once its running jobs did */
  retiring = false;
  constructor(host: FleetHost, fleet: HostFleet) {
    this.host = host;
    this.#fleet = fleet;
  }
  get name(): string {
    return this.host.name;
  }
  get up(): boolean {
    return !this.retiring && this.host.state === 'up';
  }
  get parallel(): number {
    return this.host.parallel;
  }
  get queue(): DrainQueue<LaneEntry> {
    return this.#fleet.queue;
  }
  get active(): number {
    return this.running;
  }
  get preferredGroup(): string | null {
    return this.loaded;
  }
  accepts(job: SchedulerJob): boolean {
    return !isCloudModel(job.model);
  }
  next(now: number): LaneEntry | null {
    return this.#fleet.nextFor(this, now);
  }
  started(entry: LaneEntry): () => void {
    return this.#fleet.started(entry);
  }
  finished(entry: LaneEntry, state: FinishState): boolean {
    return this.#fleet.finished(entry, state);
  }
  /** What a job started on this lane needs: this host's client, and a way back to the queue. */
  contextFor(entry: LaneEntry): Pick<RunContext, 'upstream' | 'failover' | 'host' | 'modelMissing' | 'loadReported'> {
    return {
      upstream: this.host.upstream, host: this.name,
      failover: (reason) => this.#fleet.failover(entry.id, reason),
      modelMissing: () => this.#fleet.modelMissing(this.host),
      loadReported: (ms) => this.#fleet.loadReported(entry.id, ms),
    };
  }
  state(): LaneState {
    return { name: this.name, kind: 'local', parallel: this.parallel, running: this.running, waiting: this.#fleet.queue.size, loadedGroup: this.loaded };
  }
}

interface Assigned {
  lane: HostLane;
  startedMs: number;
  /** the switch this job's start belongs to, if it paid a load */
  load: FleetSwitch | null;
  retry: boolean;
  /** this job's first answer ended the load of `load`: its end books the load time */
  paid: boolean;
  /** Ollama's load_duration for this run, ms */
  reported: number | null;
}

export class HostFleet {
  readonly #lanes: HostLane[];
  readonly queue: DrainQueue<LaneEntry>;
  readonly costs = new LoadCosts();
  readonly #o: FleetOptions;
  readonly #assigned = new Map<string, Assigned>();
  readonly #sessions = new Map<string, string>();
  readonly #tries = new Map<string, number>();
  readonly #switches: FleetSwitch[] = [];
  readonly #embedding = new Map<string, boolean>();
  readonly #reading = new Map<HostLane, Promise<void>>();
  #gatherTimer: NodeJS.Timeout | null = null;
  /** the queue's size at the last pick, and when it last grew (the gather's quiet period) */
  #seenSize = 0;
  #grewMs = -Infinity;

  constructor(options: FleetOptions) {
    this.#o = options;
    this.queue = options.queue;
    this.#lanes = options.hosts.map((h) => new HostLane(h, this));
  }

  get lanes(): readonly HostLane[] {
    return this.#lanes;
  }

  /** A host added by a hosts_file reload: a lane of its own over the one queue (a retiring lane of it takes work again). */
  addHost(host: FleetHost): HostLane {
    const existing = this.#lanes.find((l) => l.host === host);
    if (existing) {
      existing.retiring = false;
      return existing;
    }
    const lane = new HostLane(host, this);
    this.#lanes.push(lane);
    return lane;
  }

  /** A host removed by a reload: it takes nothing more; its lane ends when its running jobs did. */
  retireHost(host: FleetHost): void {
    const lane = this.#lanes.find((l) => l.host === host);
    if (!lane) return;
    lane.retiring = true;
    this.#endIfRetired(lane);
  }

  #endIfRetired(lane: HostLane): void {
    if (!lane.retiring || lane.running > 0 || lane.switching) return;
    const i = this.#lanes.indexOf(lane);
    if (i === -1) return;
    this.#lanes.splice(i, 1);
    this.#o.log.info('host retired', { host: lane.name });
    this.#o.retired?.(lane.host);
  }

  get parallel(): number {
    return this.lanes.reduce((a, l) => a + l.parallel, 0);
  }
  get active(): number {
    return this.lanes.reduce((a, l) => a + l.running, 0);
  }
  get switchCount(): number {
    return this.lanes.reduce((a, l) => a + l.switchCount, 0);
  }
  switches(): FleetSwitch[] {
    return this.#switches.map((s) => ({ ...s }));
  }

  /** The queue key of a job: its group, pinned to a host while its session's host holds the model. */
  queueKey(job: { group: string; session?: string | null }): string {
    if (!job.session) return job.group;
    const host = this.#sessions.get(job.session);
    const lane = host === undefined ? undefined : this.lanes.find((l) => l.name === host);
    return lane && lane.up && lane.loaded === job.group ? `${job.group}${PIN}${lane.name}` : job.group;
  }

  hostsWithModel(model: string): string[] {
    return this.lanes.filter((l) => l.loaded !== null && sameModel(modelOfGroup(l.loaded), model)).map((l) => l.name);
  }

  /** The entry this lane starts now, taken from the queue; null when it takes nothing now. */
  nextFor(lane: HostLane, now: number): LaneEntry | null {
    const q = this.queue;
    if (q.size > this.#seenSize) this.#grewMs = now;
    this.#seenSize = q.size;
    if (q.size === 0 || !lane.up || lane.switching || lane.running >= lane.parallel) return null;
    const heads: Array<{ c: Candidate; model: string; pinned: string | null }> = [];
    for (const g of q.groups(now)) {
      const head = q.peekGroup(g.group, now);
      if (!head) continue;
      const { group, pinned } = splitKey(g.group);
      heads.push({ c: { key: g.group, group, priority: head.priority, arrivalMs: head.arrivalMs, count: g.count }, model: modelOfGroup(group), pinned });
    }
    if (heads.length === 0) return null;
    // Where no host has the model (a typo, or a pull under way), any host that is up may try: it
    // answers 404 at once rather than the job waiting for ever. A model on a host that is down
    // waits for it (SPEC §17: queued jobs are never lost).
    const anyHas = new Map<string, boolean>();
    const installedSomewhere = (model: string) => {
      let v = anyHas.get(model);
      if (v === undefined) anyHas.set(model, (v = this.lanes.some((l) => !l.retiring && l.host.hasModel(model) !== false)));
      return v;
    };
    const canRun = (l: HostLane, h: { c: Candidate; model: string; pinned: string | null }): boolean => {
      if (h.pinned !== null && h.pinned !== l.name) {
        const holder = this.lanes.find((x) => x.name === h.pinned);
        if (holder && holder.up && holder.loaded === h.c.group) return false;
      }
      return l.host.hasModel(h.model) !== false || !installedSomewhere(h.model);
    };
    const mine = heads.filter((h) => canRun(lane, h));
    if (mine.length === 0) return null;
    // The plan asks canRun for every free group on every lane: find each head at once, not by a scan.
    const headOf = new Map(heads.map((h) => [h.c, h]));
    const waiting = new Map<string, number>();
    for (const h of heads) waiting.set(h.c.group, (waiting.get(h.c.group) ?? 0) + h.c.count);
    const pick = pickForLane({
      lane, lanes: this.lanes, candidates: mine.map((h) => h.c), all: heads.map((h) => h.c), nowMs: now, agingMs: this.#o.agingMs,
      canRun: (other, c) => canRun(other as HostLane, headOf.get(c)!),
      loadMs: (host, group) => this.loadMs(host, group),
      runMs: (group) => this.costs.runMs(group),
      measured: (host, group) => this.costs.measuredLoad(host, group) !== undefined,
      waitingOf: (group) => waiting.get(group) ?? 0,
    });
    if (pick.kind !== 'take') return null;
    const entry = q.peekGroup(pick.key, now)!;
    // A model no host lists (a typo, a pull under way) is tried without a switch: the host answers
    // 404 at once, so nothing is unloaded, no load is booked and the lane keeps what it has loaded
    // (were the catalogue stale and the host loads it, the residency refresh corrects the lane).
    const listedNowhere = pick.group !== lane.loaded && lane.host.hasModel(modelOfGroup(pick.group)) === false
      && !installedSomewhere(modelOfGroup(pick.group));
    if (pick.group !== lane.loaded && !listedNowhere) {
      // A load is not decided on a queue only a moment old (ADR 0027): work submitted together
      // (a script's backlog, a burst) lands over a few milliseconds, and the first job to land
      // would otherwise choose each host's model. Waits at most GATHER_SHARE of the load, and
      // no longer than GATHER_QUIET_MS after the queue last grew (a lone request is not held).
      const oldest = Math.min(...heads.map((h) => h.c.arrivalMs));
      const gather = Math.min(GATHER_MAX_MS, GATHER_SHARE * this.loadMs(lane.name, pick.group));
      const until = Math.min(oldest + gather, this.#grewMs + GATHER_QUIET_MS);
      if (now < until) {
        this.#wakeAt(until);
        return null;
      }
      if (lane.loaded !== null && this.#o.unloadOnSwitch) {
        void this.#unloadThenWake(lane, lane.loaded, pick.group, now);
        return null;
      }
      this.#recordSwitch(lane, lane.loaded, pick.group, now);
    }
    q.take(entry.id);
    this.#seenSize = q.size;
    this.#assigned.set(entry.id, { lane, startedMs: now, load: listedNowhere ? null : lane.pending, retry: false, paid: false, reported: null });
    return entry;
  }

  /**
   * Where a cloud job runs (SPEC §12 through §17): the first host that is up and has the model's
   * stub (or whose catalogue is unknown); it loads nothing there, so no lane is involved.
   */
  cloudContext(model: string): Pick<RunContext, 'upstream' | 'host'> | undefined {
    const up = this.lanes.filter((l) => l.up);
    const lane = up.find((l) => l.host.hasModel(model) === true) ?? up.find((l) => l.host.hasModel(model) !== false) ?? up[0];
    return lane ? { upstream: lane.host.upstream, host: lane.name } : undefined;
  }

  /** The host a started entry runs on. */
  hostOf(id: string): FleetHost | undefined {
    return this.#assigned.get(id)?.lane.host;
  }

  /** A job started: returns what it calls when upstream first answers (the end of a load it paid). */
  started(entry: LaneEntry): () => void {
    const a = this.#assigned.get(entry.id)!;
    a.lane.running++;
    const pending = a.load;
    return () => {
      if (pending && pending.loadMs === null && a.lane.pending === pending) {
        // Shown at once; booked when the job ends, with Ollama's own load_duration if it sends one.
        pending.loadMs = this.#o.now() - pending.atMs;
        a.lane.pending = null;
        a.paid = true;
      }
    };
  }

  /** Ollama's load_duration of a run (ms): for the job that paid a switch, the exact load time. */
  loadReported(id: string, ms: number): void {
    const a = this.#assigned.get(id);
    if (a?.paid && Number.isFinite(ms) && ms >= 0) a.reported = ms;
  }

  /**
   * The job's host failed before its first byte: mark it down, and put the job back in the queue
   * for another host (true), unless it already failed on every host (false: answer the error).
   */
  failover(id: string, reason: string): boolean {
    const a = this.#assigned.get(id);
    if (!a) return false;
    this.#o.markDown(a.lane.host, reason);
    a.lane.loaded = null;
    const tries = (this.#tries.get(id) ?? 0) + 1;
    if (tries > this.lanes.length) return false;
    this.#tries.set(id, tries);
    a.retry = true;
    return true;
  }

  /** The job is gone for good (cancelled, ended, dropped): its failover count goes too. */
  forget(id: string): void {
    this.#tries.delete(id);
  }

  /** Jobs that failed over and may run again (their counts are kept until they end). */
  get failedOver(): number {
    return this.#tries.size;
  }

  modelMissing(host: FleetHost): void {
    this.#o.modelMissing?.(host);
  }

  /** A job ended. Returns true when it must go back to the queue (failover). */
  finished(entry: LaneEntry, state: FinishState): boolean {
    const a = this.#assigned.get(entry.id);
    if (!a) return false;
    this.#assigned.delete(entry.id);
    a.lane.running--;
    const now = this.#o.now();
    // A failed run's first answer may have been an error, not the end of a load.
    if (a.paid && a.load && (state === 'completed' || a.reported !== null)) {
      // The time to the first answer also holds the prompt's evaluation; load_duration does not.
      if (a.reported !== null) a.load.loadMs = Math.round(a.reported);
      this.costs.recordLoad(a.lane.name, a.load.to, a.load.loadMs!, a.lane.host.sizeOf?.(modelOfGroup(a.load.to)));
    }
    if (state === 'completed') {
      // Run time without the load this job waited for (it started with the switch).
      const load = a.load?.loadMs ?? 0;
      this.costs.recordRun(splitKey(entry.group).group, Math.max(0, now - a.startedMs - load));
      const session = entry.job.session;
      if (session) {
        this.#sessions.delete(session);
        this.#sessions.set(session, a.lane.name);
        if (this.#sessions.size > SESSION_LIMIT) this.#sessions.delete(this.#sessions.keys().next().value!);
      }
    }
    if (!a.retry) this.#tries.delete(entry.id);
    this.#endIfRetired(a.lane);
    this.#o.costsChanged?.();
    return a.retry;
  }

  /** Reads each host's /api/ps (all of them, or one) to learn its loaded generation model. */
  async refreshResidency(only?: FleetHost, signal?: AbortSignal): Promise<void> {
    await Promise.all(this.lanes.filter((l) => (only ? l.host === only : l.up)).map((lane) => {
      // One read per host at a time: a burst of failures on a host costs one /api/ps, not one each.
      let read = this.#reading.get(lane);
      if (!read) {
        read = this.#readResidency(lane, signal).finally(() => this.#reading.delete(lane));
        this.#reading.set(lane, read);
      }
      return read;
    }));
  }

  async #readResidency(lane: HostLane, signal?: AbortSignal): Promise<void> {
    {
      try {
        const models = await lane.host.upstream.loadedModels(signal);
        let found: string | null = null;
        let embedding: string | null = null;
        for (const m of models) {
          const name = m.model || m.name;
          if (await this.#isEmbedding(lane.host, name, signal)) embedding ??= name;
          else found ??= name;
        }
        lane.host.embedLoaded = embedding;
        if (lane.running === 0 && !lane.switching && (lane.loaded === null || found === null || !sameModel(modelOfGroup(lane.loaded), found))) {
          lane.loaded = found === null ? null : modelKey(found);
        }
        this.#o.log.info('residency', { host: lane.name, loaded: found ?? 'none' });
      } catch (err) {
        this.#o.log.warn('residency unknown', { host: lane.name, error: (err as Error).message });
      }
    }
  }

  markUnloaded(model: string, host?: string): void {
    for (const lane of this.lanes) {
      if (host !== undefined && lane.name !== host) continue;
      if (lane.loaded && sameModel(modelOfGroup(lane.loaded), model) && lane.running === 0) lane.loaded = null;
    }
  }

  /** A host went down: what it had loaded is unknown now. */
  hostDown(host: FleetHost): void {
    const lane = this.lanes.find((l) => l.host === host);
    if (lane && lane.running === 0) lane.loaded = null;
  }

  /** Expected load time of a group on a host: measured, else a prior (load-costs.ts) sized by its /api/tags. */
  loadMs(host: string, group: string): number {
    return this.costs.loadMs(host, group, this.#sizeOn(host, group));
  }

  #sizeOn(host: string, group: string): number | undefined {
    return this.#lanes.find((l) => l.name === host)?.host.sizeOf?.(modelOfGroup(group));
  }

  state(): HostLaneState[] {
    return this.lanes.map((l) => {
      const estimates: Array<HostLaneState['estimates'][number]> = [];
      for (const model of l.host.installed?.() ?? []) {
        const group = modelKey(model);
        const e = this.costs.estimate(l.name, group, l.host.sizeOf?.(model));
        if (e.source !== 'measured') estimates.push({ group, loadMs: Math.round(e.ms), source: e.source });
      }
      return {
        name: l.name, state: l.host.state, parallel: l.parallel, running: l.running, loadedGroup: l.loaded,
        switching: l.switching, retiring: l.retiring, switches: l.switchCount, loads: this.costs.measured(l.name), estimates,
      };
    });
  }

  async #isEmbedding(host: FleetHost, model: string, signal?: AbortSignal): Promise<boolean> {
    let known = this.#embedding.get(model);
    if (known === undefined) {
      known = (await host.upstream.capabilities(model, signal)).includes('embedding');
      if (this.#embedding.size > 1000) this.#embedding.clear();
      this.#embedding.set(model, known);
    }
    return known;
  }

  async #unloadThenWake(lane: HostLane, group: string, target: string, now: number): Promise<void> {
    // The target is reserved while the old model unloads, so no other lane loads it meanwhile.
    lane.switching = true;
    lane.loaded = target;
    const model = modelOfGroup(group);
    try {
      const up = lane.host.upstream;
      // One budget for both calls: a hanging host holds its lane for at most that, not twice a minute.
      const budget = AbortSignal.timeout(SWITCH_BUDGET_MS);
      const known = await up.exists(modelOfGroup(target), budget).catch(() => true);
      if (known) await up.unload(model, budget);
    } catch (err) {
      this.#o.log.warn('unload failed', { host: lane.name, model, error: (err as Error).message });
    }
    lane.switching = false;
    if (lane.retiring) {
      lane.loaded = null;
      this.#endIfRetired(lane);
      this.#o.wake();
      return;
    }
    // The load is timed from here: the unload is not part of what this host takes to load the target.
    this.#recordSwitch(lane, group, target, Math.max(now, this.#o.now()));
    this.#o.wake();
  }

  #wakeAt(atMs: number): void {
    if (this.#gatherTimer !== null) return;
    this.#gatherTimer = setTimeout(() => {
      this.#gatherTimer = null;
      this.#o.wake();
    }, Math.max(1, atMs - this.#o.now())); // at most GATHER_MAX_MS; close() clears it
  }

  /** Stops the fleet's own timer (shutdown). */
  close(): void {
    if (this.#gatherTimer !== null) clearTimeout(this.#gatherTimer);
    this.#gatherTimer = null;
  }

  #recordSwitch(lane: HostLane, from: string | null, to: string, now: number): void {
    lane.loaded = to;
    lane.switchCount++;
    const record: FleetSwitch = { atMs: now, host: lane.name, from, to, loadMs: null };
    this.#switches.unshift(record);
    if (this.#switches.length > SWITCH_LIMIT) this.#switches.pop();
    lane.pending = record;
    this.#o.log.info('model switch', { host: lane.name, from: from ?? 'none', to });
    this.#o.switched?.(from, to, lane.name);
  }
}
