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
}

export interface FinishedRecord {
  readonly id: string;
  readonly model: string;
  readonly origin: JobOrigin;
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
}

const RECENT_LIMIT = 50;
const RESIDENCY_TIMEOUT_MS = 5_000;

export class Scheduler {
  readonly #local: LocalLane;
  readonly #cloud: CloudLane;
  /** Asked in order: the first lane that accepts a job gets it; all are pumped in this order. */
  readonly #lanes: readonly Lane[];
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
  readonly #runningByKey = new Map<string, number>();
  readonly #policy: (key: string) => KeyPolicy;

  constructor(options: SchedulerOptions) {
    this.#opts = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#policy = options.keyPolicy ?? (() => NO_POLICY);
    const queue = (): DrainQueue<LaneEntry> =>
      createDrainQueue<LaneEntry>({ agingMs: options.agingMs, weightOf: (key) => this.#policy(key).weight });
    this.#local = new LocalLane({
      parallel: options.parallel, agingMs: options.agingMs, unloadOnSwitch: options.unloadOnSwitch,
      upstream: options.upstream, log: this.#log, now: this.#now, queue: queue(),
      wake: () => this.#pump(), switched: options.events?.switched, switchBudgetMs: options.switchBudgetMs,
    });
    this.#cloud = new CloudLane({ parallel: options.cloudParallel ?? 4, agingMs: options.agingMs, queue: queue() });
    this.#lanes = [this.#local, this.#cloud];
  }

  get loadedGroup(): string | null {
    return this.#local.loadedGroup;
  }
  get waiting(): number {
    let n = 0;
    for (const lane of this.#lanes) n += lane.queue.size;
    return n;
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
    if (!options.force && this.waiting >= this.#opts.maxQueue) throw queueFull(`max_queue ${this.#opts.maxQueue}`);
    const owner = job.key ?? '';
    if (!options.force) {
      const { maxQueued } = this.#policy(owner);
      if (maxQueued !== null && this.waitingOf(owner) >= maxQueued) throw keyQueueFull(owner, maxQueued);
    }
    const arrivalMs = options.arrivalMs ?? this.#now();
    const lane = this.#laneOf(job);
    lane.queue.enqueue({ id: job.id, group: job.group, priority: job.priority, arrivalMs, owner, job });
    // A key at its running cap holds back its new jobs in this lane's queue too.
    this.#updateBlocked(owner);
    this.#pump();
  }

  #laneOf(job: SchedulerJob): Lane {
    return this.#lanes.find((lane) => lane.accepts(job)) ?? this.#local;
  }

  has(id: string): boolean {
    return this.#running.has(id) || this.#lanes.some((lane) => lane.queue.get(id) !== undefined);
  }

  /** Cancels a queued job (it leaves the queue) or a running one (its upstream request is aborted). */
  cancel(id: string, reason: StopReason = new StopReason('cancelled')): boolean {
    for (const lane of this.#lanes) {
      const entry = lane.queue.remove(id);
      if (entry) {
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
    for (const lane of this.#lanes) n += lane.queue.waitingOf(key);
    return n;
  }

  /** Jobs of one key running now, in every lane. */
  runningOf(key: string): number {
    return this.#runningByKey.get(key) ?? 0;
  }

  /** The key policies changed (a keys file reload): caps apply now, to jobs already waiting too. */
  refreshKeys(): void {
    const owners = new Set<string>(this.#runningByKey.keys());
    for (const lane of this.#lanes) for (const entry of lane.queue.values()) owners.add(entry.owner);
    for (const owner of owners) this.#updateBlocked(owner);
    this.#pump();
  }

  #updateBlocked(owner: string): void {
    const { maxRunning } = this.#policy(owner);
    const blocked = maxRunning !== null && this.runningOf(owner) >= maxRunning;
    for (const lane of this.#lanes) lane.queue.setBlocked(owner, blocked);
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
   * of failed jobs costs two reads, not one each.
   */
  refreshResidency(signal?: AbortSignal): Promise<void> {
    if (this.#residencyRead) {
      this.#residencyAgain = true;
      return this.#residencyRead;
    }
    const read = (async () => {
      try {
        do {
          this.#residencyAgain = false;
          try {
            await this.#local.refreshResidency(signal ?? AbortSignal.timeout(RESIDENCY_TIMEOUT_MS));
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
    return this.#local.hasLoaded(model) ? [''] : [];
  }

  /** Forget the loaded model (e.g. a caller unloaded it); the next pick has no tie to prefer. */
  markUnloaded(model: string, _host?: string): void {
    this.#local.markUnloaded(model);
  }

  #pump(): void {
    if (!this.#closing) {
      for (const lane of this.#lanes) {
        for (;;) {
          const now = this.#now();
          const entry = lane.next(now);
          if (!entry) break;
          this.#start(lane, entry, now);
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
    const ctx: RunContext = { signal: controller.signal, queueMs, upstreamAnswered: answered };
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
    lane.finished(entry, state);
    const now = this.#now();
    const runMs = now - running.startedMs;
    lane.queue.finished(entry.id, runMs);
    const left = this.runningOf(entry.owner) - 1;
    if (left > 0) this.#runningByKey.set(entry.owner, left);
    else this.#runningByKey.delete(entry.owner);
    this.#updateBlocked(entry.owner);
    this.#counts[state]++;
    this.#recent.unshift({
      id: entry.id, model: entry.job.model, origin: entry.job.origin, state,
      queueMs: running.queueMs, runMs, finishedMs: now, lane: lane.name,
    });
    if (this.#recent.length > RECENT_LIMIT) this.#recent.pop();
    this.#opts.events?.finished?.(entry.job, state, running.queueMs, runMs);
    this.#pump();
    // After a failure foreman is unsure what upstream holds (SPEC §1: read /api/ps whenever unsure);
    // a cloud job's failure says nothing about what is loaded here.
    if ((state === 'failed' || state === 'requeued') && lane.kind === 'local') {
      void this.refreshResidency();
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
    for (const lane of this.#lanes) {
      for (const entry of [...lane.queue.values()]) {
        lane.queue.remove(entry.id);
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
      loadedGroup: this.#local.loadedGroup,
      running: [...this.#running.values()].map((r) => ({ job: r.entry.job, startedMs: r.startedMs, queueMs: r.queueMs, lane: r.lane.name })),
      groups: this.#lanes.flatMap((lane) => lane.queue.groups(now, lane.preferredGroup).map((g) => ({ ...g, lane: lane.name }))),
      lanes: this.#lanes.map((lane) => lane.state()),
      waiting: this.waiting,
      counts: { ...this.#counts, switches: this.#local.switchCount },
      switches: this.#local.switches(),
      recent: [...this.#recent],
    };
  }
}
