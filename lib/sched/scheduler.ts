// sched/ owns what runs when: the queue and its indexes, the lanes, the scheduler, the
// embeddings limiter. Plain state and callbacks; no HTTP, no view shapes (ops/ builds those).
//
// Runs queued jobs through lanes (lane.ts): the local lane drains by model (SPEC §1),
// the cloud lane runs cloud models beside it (SPEC §12). The scheduler owns the jobs
// (start, finish, cancel, per-key caps, books, shutdown); each lane decides what it
// starts next. It knows no HTTP: a job is a run(signal) callback.

import { closing, keyQueueFull, queueFull, StopReason } from '../errors.js';
import { createDrainQueue, type DrainQueue, type GroupInfo } from './queue.js';
import { silentLogger, type Logger } from '../log.js';
import type { Upstream } from '../upstream.js';
import type { FinishState, JobOrigin, Lane, LaneEntry, LaneState, RunContext, SchedulerJob } from './lane.js';
import { LocalLane, type SwitchRecord } from './local-lane.js';
import { CloudLane } from './cloud-lane.js';
import { HostFleet, HostLane, type FleetHost, type FleetSwitch, type HostLaneState } from './host-fleet.js';

export type { FinishState, JobOrigin, Lane, LaneState, RunContext, SchedulerJob } from './lane.js';
export type { SwitchRecord } from './local-lane.js';

/** What the scheduler enforces per key; read at each use, so a reloaded keys file applies at once. */
export interface KeyPolicy {
  /** fair-share weight (SPEC §15), > 0 */
  weight: number;
  /** jobs of the key that may run at once; null: no cap */
  maxRunning: number | null;
  /** jobs of the key that may wait at once; null: no cap (max_queue still applies) */
  maxQueued: number | null;
}

const NO_POLICY: KeyPolicy = { weight: 1, maxRunning: null, maxQueued: null };

interface Running {
  readonly entry: LaneEntry;
  readonly lane: Lane;
  readonly controller: AbortController;
  readonly startedMs: number;
  readonly queueMs: number;
}

export interface SchedulerEvents {
  started?(job: SchedulerJob, queueMs: number): void;
  finished?(job: SchedulerJob, state: FinishState, queueMs: number, runMs: number): void;
  switched?(from: string | null, to: string): void;
}

export interface SchedulerOptions {
  parallel: number;
  maxQueue: number;
  agingMs: number;
  unloadOnSwitch: boolean;
  upstream: Pick<Upstream, 'unload' | 'loadedModels' | 'capabilities' | 'exists'>;
  log?: Logger;
  now?: () => number;
  events?: SchedulerEvents;
  /** Limits per key name; absent, every key is equal and unlimited. */
  keyPolicy?: (key: string) => KeyPolicy;
  /** Time a switch's upstream calls may take together (default 10 s); tests shorten it. */
  switchBudgetMs?: number;
  /** Cloud-model jobs running at once (SPEC §12); default 4. */
  cloudParallel?: number;
  /**
   * Several Ollama hosts (SPEC §17): one lane per host over one queue. With one host (or none
   * given) the single local lane above runs exactly as SPEC §1 says.
   */
  hosts?: readonly FleetHost[];
  /** A host could not be reached (several hosts): mark it down until a probe succeeds. */
  markDown?: (host: FleetHost, reason: string) => void;
  /** A host answered 404 for a model (several hosts): read its catalogue again. */
  modelMissing?: (host: FleetHost) => void;
  /** A host removed by a reload has no job running any more (several hosts). */
  hostRetired?: (host: FleetHost) => void;
  /** A load or run time was measured on a host (several hosts): the app keeps them in the data dir. */
  loadCostsChanged?: () => void;
  /** bound on the bytes of waiting jobs' bodies (SPEC §16); default unbounded */
  maxQueueBytes?: number;
}

export interface FinishedRecord {
  readonly id: string;
  readonly model: string;
  readonly origin: JobOrigin;
  readonly key: string | null;
  readonly state: FinishState;
  readonly queueMs: number;
  readonly runMs: number;
  readonly finishedMs: number;
  readonly lane: string;
}

/** Plain state for whoever shows it (ops/queue-view.ts builds GET /queue from this). */
export interface SchedulerState {
  /** the local lane's loaded group */
  readonly loadedGroup: string | null;
  readonly running: ReadonlyArray<{ readonly job: SchedulerJob; readonly startedMs: number; readonly queueMs: number; readonly lane: string }>;
  /** every lane's waiting groups, each lane's in its pick order */
  readonly groups: ReadonlyArray<GroupInfo & { readonly lane: string }>;
  readonly lanes: readonly LaneState[];
  readonly waiting: number;
  readonly counts: Readonly<Record<FinishState | 'switches', number>>;
  readonly switches: readonly SwitchRecord[];
  readonly recent: readonly FinishedRecord[];
  /** with several hosts: each host lane (state, loaded group, running, measured load times) */
  readonly hosts?: readonly HostLaneState[];
}

const RECENT_LIMIT = 50;
const RESIDENCY_TIMEOUT_MS = 5_000;

export class Scheduler {
  readonly #local: LocalLane | null = null;
  readonly #fleet: HostFleet | null = null;
  readonly #cloud: CloudLane;
  /** Asked in order: the first lane that accepts a job gets it; all are pumped in this order. */
  #lanes: readonly Lane[];
  /** Each queue once (host lanes share one). */
  readonly #queues: readonly DrainQueue<LaneEntry>[];
  readonly #running = new Map<string, Running>();
  readonly #opts: SchedulerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #closing = false;
  /** One /api/ps read at a time; a request during it asks for one more after it (the one in flight may predate the doubt). */
  #residencyRead: Promise<void> | null = null;
  #residencyAgain = false;
  readonly #recent: FinishedRecord[] = [];
  readonly #counts = { completed: 0, failed: 0, cancelled: 0, requeued: 0 };
  #idleWaiters: Array<() => void> = [];
  #waitingBytes = 0;
  readonly #runningByKey = new Map<string, number>();
  readonly #policy: (key: string) => KeyPolicy;

  constructor(options: SchedulerOptions) {
    this.#opts = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#policy = options.keyPolicy ?? (() => NO_POLICY);
    const queue = (): DrainQueue<LaneEntry> =>
      createDrainQueue<LaneEntry>({ agingMs: options.agingMs, weightOf: (key) => this.#policy(key).weight });
    this.#cloud = new CloudLane({ parallel: options.cloudParallel ?? 4, agingMs: options.agingMs, queue: queue() });
    if (options.hosts && options.hosts.length > 1) {
      this.#fleet = new HostFleet({
        hosts: options.hosts, queue: queue(), agingMs: options.agingMs, unloadOnSwitch: options.unloadOnSwitch,
        log: this.#log, now: this.#now, wake: () => this.#pump(),
        switched: (from, to) => options.events?.switched?.(from, to),
        markDown: (host, reason) => options.markDown?.(host, reason),
        modelMissing: options.modelMissing,
        costsChanged: options.loadCostsChanged,
        retired: (host) => {
          this.#lanes = [...this.#fleet!.lanes, this.#cloud];
          options.hostRetired?.(host);
        },
      });
      this.#lanes = [...this.#fleet.lanes, this.#cloud];
    } else {
      this.#local = new LocalLane({
        parallel: options.parallel, agingMs: options.agingMs, unloadOnSwitch: options.unloadOnSwitch,
        upstream: options.upstream, log: this.#log, now: this.#now, queue: queue(),
        wake: () => this.#pump(), switched: options.events?.switched, switchBudgetMs: options.switchBudgetMs,
      });
      this.#lanes = [this.#local, this.#cloud];
    }
    this.#queues = [...new Set(this.#lanes.map((l) => l.queue))];
  }

  /** The loaded group of the one local lane (with several hosts: the first host's). */
  get loadedGroup(): string | null {
    return this.#local ? this.#local.loadedGroup : this.#fleet!.lanes[0]!.loaded;
  }
  get waiting(): number {
    let n = 0;
    for (const q of this.#queues) n += q.size;
    return n;
  }
  /** The host lanes, with several hosts. */
  get fleet(): HostFleet | null {
    return this.#fleet;
  }
  /** bytes of the bodies of waiting jobs */
  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  /**
   * Would a job of `bytes` more be refused now, by count or by bytes (SPEC §16)? `extra` counts
   * admissions in flight. Returns the limit it would break, or null.
   */
  fullFor(bytes: number, extra = { count: 0, bytes: 0 }): string | null {
    if (this.waiting + extra.count >= this.#opts.maxQueue) return `max_queue ${this.#opts.maxQueue}`;
    const max = this.#opts.maxQueueBytes ?? Infinity;
    // One job larger than the whole bound still enters an empty queue: it could never run otherwise.
    if (this.#waitingBytes + extra.bytes + bytes > max && this.waiting + extra.count > 0) return `max_queue_bytes ${max}`;
    return null;
  }

  /** A job ended for good outside the scheduler (an async job cancelled while held back): forget what a lane kept about it. */
  forget(id: string): void {
    this.#fleet?.forget(id);
  }

  /** Takes a job out of its queue without telling it: its owner keeps it (e.g. while the journal cannot write). */
  withdraw(id: string): boolean {
    for (const q of this.#queues) {
      const entry = q.remove(id);
      if (entry) {
        this.#waitingBytes -= entry.job.bytes ?? 0;
        this.#pump();
        return true;
      }
    }
    return false;
  }

  get runningCount(): number {
    return this.#running.size;
  }
  get lanes(): readonly Lane[] {
    return this.#lanes;
  }

  /**
   * Queues a job; refuses ('queue_full') beyond max_queue, counted over every lane. `arrivalMs` lets
   * replayed async jobs keep their age; `force` admits them past max_queue (acknowledged before the restart).
   */
  enqueue(job: SchedulerJob, options: { arrivalMs?: number; force?: boolean } = {}): void {
    if (this.#closing) throw closing();
    const full = options.force ? null : this.fullFor(job.bytes ?? 0);
    if (full) throw queueFull(full);
    const owner = job.key ?? '';
    if (!options.force) {
      const { maxQueued } = this.#policy(owner);
      if (maxQueued !== null && this.waitingOf(owner) >= maxQueued) throw keyQueueFull(owner, maxQueued);
    }
    const arrivalMs = options.arrivalMs ?? this.#now();
    const lane = this.#laneOf(job);
    // A session's turn is pinned to the host that served its last turn while that host holds the model.
    const group = this.#fleet && lane.queue === this.#fleet.queue ? this.#fleet.queueKey(job) : job.group;
    lane.queue.enqueue({ id: job.id, group, priority: job.priority, arrivalMs, owner, job });
    this.#waitingBytes += job.bytes ?? 0;
    // A key at its running cap holds back its new jobs in this lane's queue too.
    this.#updateBlocked(owner);
    this.#pump();
  }

  #laneOf(job: SchedulerJob): Lane {
    return this.#lanes.find((lane) => lane.accepts(job)) ?? this.#lanes[0]!;
  }

  has(id: string): boolean {
    return this.#running.has(id) || this.#queues.some((q) => q.get(id) !== undefined);
  }

  /** Cancels a queued job (it leaves the queue) or a running one (its upstream request is aborted). */
  cancel(id: string, reason: StopReason = new StopReason('cancelled')): boolean {
    for (const q of this.#queues) {
      const entry = q.remove(id);
      if (entry) {
        this.#waitingBytes -= entry.job.bytes ?? 0;
        this.#fleet?.forget(id);
        entry.job.dropped('cancelled');
        this.#pump();
        return true;
      }
    }
    const running = this.#running.get(id);
    if (!running) return false;
    running.controller.abort(reason);
    return true;
  }

  /** Jobs of one key waiting now, in every lane (running ones not counted). */
  waitingOf(key: string): number {
    let n = 0;
    for (const q of this.#queues) n += q.waitingOf(key);
    return n;
  }

  /** Jobs of one key running now, in every lane. */
  runningOf(key: string): number {
    return this.#runningByKey.get(key) ?? 0;
  }

  /** The key policies changed (a keys file reload): caps apply now, to jobs already waiting too. */
  refreshKeys(): void {
    const owners = new Set<string>(this.#runningByKey.keys());
    for (const q of this.#queues) for (const entry of q.values()) owners.add(entry.owner);
    for (const owner of owners) this.#updateBlocked(owner);
    this.#pump();
  }

  #updateBlocked(owner: string): void {
    const { maxRunning } = this.#policy(owner);
    const blocked = maxRunning !== null && this.runningOf(owner) >= maxRunning;
    for (const q of this.#queues) q.setBlocked(owner, blocked);
  }

  /** Picks until this job starts, counted within its own lane (lanes run side by side). */
  position(id: string): number | undefined {
    const now = this.#now();
    for (const lane of this.#lanes) {
      const p = lane.queue.position(id, now, lane.preferredGroup);
      if (p !== undefined) return p;
    }
    return undefined;
  }

  /**
   * Reads upstream /api/ps to learn which generation model is loaded (embedding models have their own slot).
   * Coalesced: while a read is in flight, callers share it and at most one more read follows it, so a burst
   * of failed jobs costs two reads, not one each. With several hosts: each host's own /api/ps (or one host's).
   */
  refreshResidency(signal?: AbortSignal, host?: FleetHost): Promise<void> {
    if (this.#fleet) {
      return this.#fleet.refreshResidency(host, signal ?? AbortSignal.timeout(RESIDENCY_TIMEOUT_MS)).finally(() => this.#pump());
    }
    if (this.#residencyRead) {
      this.#residencyAgain = true;
      return this.#residencyRead;
    }
    const read = (async () => {
      try {
        do {
          this.#residencyAgain = false;
          try {
            await this.#local!.refreshResidency(signal ?? AbortSignal.timeout(RESIDENCY_TIMEOUT_MS));
          } finally {
            this.#pump();
          }
          signal = undefined; // a follow-up read gets its own deadline
        } while (this.#residencyAgain && !this.#closing);
      } finally {
        this.#residencyRead = null;
      }
    })();
    this.#residencyRead = read;
    return read;
  }

  /** Names of the hosts whose lane has this model loaded. */
  hostsWithModel(model: string): string[] {
    if (this.#fleet) return this.#fleet.hostsWithModel(model);
    return this.#local!.hasLoaded(model) ? [''] : [];
  }

  /** Forget the loaded model (e.g. a caller unloaded it); the next pick has no tie to prefer. */
  markUnloaded(model: string, host?: string): void {
    if (this.#fleet) this.#fleet.markUnloaded(model, host);
    else this.#local!.markUnloaded(model);
  }

  /**
   * A hosts_file reload (several hosts): added hosts get a lane at once; removed ones take no new
   * job, and their lanes end once their running jobs did (hostRetired then). Queued jobs stay.
   */
  updateHosts(added: readonly FleetHost[], removed: readonly FleetHost[]): void {
    if (!this.#fleet) return;
    for (const host of added) {
      this.#fleet.addHost(host);
      void this.refreshResidency(AbortSignal.timeout(RESIDENCY_TIMEOUT_MS), host);
    }
    this.#lanes = [...this.#fleet.lanes, this.#cloud];
    for (const host of removed) this.#fleet.retireHost(host);
    this.#pump();
  }

  /** A host's state changed (several hosts): down, its residency is unknown; back up, read it and run. */
  hostChanged(host: FleetHost, cameUp = false): void {
    if (!this.#fleet) return;
    if (host.state === 'down') this.#fleet.hostDown(host);
    else if (cameUp) void this.refreshResidency(AbortSignal.timeout(RESIDENCY_TIMEOUT_MS), host);
    this.#pump();
  }

  #pump(): void {
    if (!this.#closing) {
      // With several hosts a start changes what the other lanes may take (a group is now loaded
      // elsewhere), so go round until no lane starts anything; idle lanes choose first.
      let progress = true;
      while (progress) {
        progress = false;
        const lanes = this.#fleet ? [...this.#lanes].sort((a, b) => Number(a.active > 0) - Number(b.active > 0)) : this.#lanes;
        for (const lane of lanes) {
          for (;;) {
            const now = this.#now();
            const entry = lane.next(now);
            if (!entry) break;
            this.#waitingBytes -= entry.job.bytes ?? 0;
            this.#start(lane, entry, now);
            progress = this.#fleet !== null;
          }
        }
      }
    }
    if (this.#running.size === 0 && this.waiting === 0) this.#notifyIdle();
  }

  #start(lane: Lane, entry: LaneEntry, now: number): void {
    const controller = new AbortController();
    const queueMs = Math.max(0, now - entry.arrivalMs);
    const running: Running = { entry, lane, controller, startedMs: now, queueMs };
    this.#running.set(entry.id, running);
    this.#runningByKey.set(entry.owner, this.runningOf(entry.owner) + 1);
    this.#updateBlocked(entry.owner);
    const answered = lane.started(entry, now);
    this.#opts.events?.started?.(entry.job, queueMs);
    // Cloud jobs run through a local Ollama too: with several hosts, one that is up and has the stub.
    const where = lane.contextFor?.(entry) ?? (this.#fleet && lane.kind === 'cloud' ? this.#fleet.cloudContext(entry.job.model) : undefined);
    const ctx: RunContext = { signal: controller.signal, queueMs, upstreamAnswered: answered, ...where };
    let state: FinishState = 'failed';
    entry.job
      .run(ctx)
      .then((s) => (state = s))
      .catch((err) => this.#log.error('job crashed', { job: entry.id, error: (err as Error)?.message }))
      .finally(() => this.#finish(running, state));
  }

  #finish(running: Running, state: FinishState): void {
    const { entry, lane } = running;
    this.#running.delete(entry.id);
    const again = lane.finished(entry, state) === true;
    const now = this.#now();
    const runMs = now - running.startedMs;
    lane.queue.finished(entry.id, runMs);
    // Failed over before its first byte (several hosts): back in the queue with its age, for another host.
    // An async job goes back through its owner (jobs/service.ts) once its 'queued' is durable: put
    // back here, it could start again while the journal cannot write and the job still says working.
    if (again && entry.job.origin === 'async') {
      // its owner re-schedules it (or keeps it for the next start)
    } else if (again && !this.#closing) {
      lane.queue.enqueue(entry);
      this.#waitingBytes += entry.job.bytes ?? 0;
    } else if (again) entry.job.dropped('shutdown');
    const left = this.runningOf(entry.owner) - 1;
    if (left > 0) this.#runningByKey.set(entry.owner, left);
    else this.#runningByKey.delete(entry.owner);
    this.#updateBlocked(entry.owner);
    this.#counts[state]++;
    this.#recent.unshift({
      id: entry.id, model: entry.job.model, origin: entry.job.origin, key: entry.job.key ?? null, state,
      queueMs: running.queueMs, runMs, finishedMs: now, lane: lane.name,
    });
    if (this.#recent.length > RECENT_LIMIT) this.#recent.pop();
    this.#opts.events?.finished?.(entry.job, state, running.queueMs, runMs);
    this.#pump();
    // After a failure foreman is unsure what upstream holds (SPEC §1: read /api/ps whenever unsure);
    // a cloud job's failure says nothing about what is loaded here.
    if ((state === 'failed' || state === 'requeued') && lane.kind === 'local') {
      const host = lane instanceof HostLane ? lane.host : undefined;
      if (!host || host.state === 'up') void this.refreshResidency(undefined, host);
    }
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when nothing is queued or running (tests, shutdown). */
  idle(): Promise<void> {
    if (this.#running.size === 0 && this.waiting === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stops picking, drops every queued job ('shutdown'), lets running jobs finish
   * within graceMs, then aborts what is left.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#closing = true;
    this.#fleet?.close();
    for (const q of this.#queues) {
      for (const entry of [...q.values()]) {
        q.remove(entry.id);
        this.#waitingBytes -= entry.job.bytes ?? 0;
        this.#fleet?.forget(entry.id);
        entry.job.dropped('shutdown');
      }
    }
    if (this.#running.size === 0) return;
    const drained = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(() => resolve('expired'), graceMs)));
    const result = await Promise.race([drained, expired]);
    clearTimeout(timer);
    if (result === 'expired') {
      for (const r of this.#running.values()) r.controller.abort(new StopReason('shutdown'));
      await drained;
    }
  }

  /** What is loaded, running, waiting and recently done, as plain data (copies). */
  state(now = this.#now()): SchedulerState {
    return {
      loadedGroup: this.loadedGroup,
      running: [...this.#running.values()].map((r) => ({ job: r.entry.job, startedMs: r.startedMs, queueMs: r.queueMs, lane: r.lane.name })),
      // Each queue once: host lanes share theirs, shown under the name 'hosts'.
      groups: this.#queues.flatMap((q) => {
        const lane = this.#lanes.find((l) => l.queue === q)!;
        const name = this.#fleet && q === this.#fleet.queue ? 'hosts' : lane.name;
        return q.groups(now, this.#fleet && q === this.#fleet.queue ? null : lane.preferredGroup).map((g) => ({ ...g, lane: name }));
      }),
      lanes: this.#lanes.map((lane) => lane.state()),
      waiting: this.waiting,
      counts: { ...this.#counts, switches: this.#local ? this.#local.switchCount : this.#fleet!.switchCount },
      switches: this.#local ? this.#local.switches() : this.#fleet!.switches().map(fleetSwitch),
      recent: [...this.#recent],
      ...(this.#fleet ? { hosts: this.#fleet.state() } : {}),
    };
  }
}

function fleetSwitch(s: FleetSwitch): SwitchRecord {
  return { atMs: s.atMs, from: s.from, to: s.to, loadMs: s.loadMs, host: s.host };
}
