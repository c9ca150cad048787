// Runs queued jobs through lanes (lane.ts): the local lane drains by model (SPEC §1),
// the cloud lane runs cloud models beside it (SPEC §12). The scheduler owns the jobs
// (start, finish, cancel, books, shutdown); each lane decides what it starts next.
// It knows no HTTP: a job is a run(signal) callback.

import { busy, shuttingDown } from '../errors.js';
import { modelOfGroup } from './model-group.js';
import { silentLogger, type Logger } from '../log.js';
import type { Upstream } from '../upstream.js';
import type { GroupView, RecentJobView, RunningView } from './snapshot.js';
import type { FinishState, Lane, LaneEntry, RunContext, SchedulerJob } from './lane.js';
import { LocalLane } from './local-lane.js';
import { CloudLane } from './cloud-lane.js';

export type { FinishState, RunContext, SchedulerJob, Lane, LaneView } from './lane.js';

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
  /** Cloud-model jobs running at once (SPEC §12); default 4. */
  cloudParallel?: number;
}

const RECENT_LIMIT = 50;
const RESIDENCY_TIMEOUT_MS = 5_000;

export class Scheduler {
  readonly #local: LocalLane;
  readonly #cloud: CloudLane;
  /** In the order asked: the first lane that accepts a job gets it. */
  readonly #lanes: readonly Lane[];
  readonly #running = new Map<string, Running>();
  readonly #opts: SchedulerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #closing = false;
  readonly #recent: RecentJobView[] = [];
  readonly #counts = { completed: 0, failed: 0, cancelled: 0, requeued: 0 };
  #idleWaiters: Array<() => void> = [];

  constructor(options: SchedulerOptions) {
    this.#opts = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#local = new LocalLane({
      parallel: options.parallel, agingMs: options.agingMs, unloadOnSwitch: options.unloadOnSwitch,
      upstream: options.upstream, log: this.#log, now: this.#now,
      wake: () => this.#pump(), switched: options.events?.switched,
    });
    this.#cloud = new CloudLane({ parallel: options.cloudParallel ?? 4, agingMs: options.agingMs });
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
   * Queues a job; 503 busy beyond max_queue (counted over every lane). `arrivalMs` lets replayed
   * async jobs keep their age; `force` admits them past max_queue (they were acknowledged before the restart).
   */
  enqueue(job: SchedulerJob, options: { arrivalMs?: number; force?: boolean } = {}): void {
    if (this.#closing) throw shuttingDown();
    if (!options.force && this.waiting >= this.#opts.maxQueue) throw busy();
    const arrivalMs = options.arrivalMs ?? this.#now();
    this.#laneOf(job).queue.enqueue({ id: job.id, group: job.group, priority: job.priority, arrivalMs, job });
    this.#pump();
  }

  #laneOf(job: SchedulerJob): Lane {
    return this.#lanes.find((lane) => lane.accepts(job)) ?? this.#local;
  }

  has(id: string): boolean {
    return this.#running.has(id) || this.#lanes.some((lane) => lane.queue.get(id) !== undefined);
  }

  /** Cancels a queued job (it leaves the queue) or a running one (its upstream request is aborted). */
  cancel(id: string, reason = 'cancelled'): boolean {
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
    running.controller.abort(new Error(reason));
    return true;
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

  /** Reads upstream /api/ps to learn which generation model is loaded (embedding models have their own slot). */
  async refreshResidency(signal?: AbortSignal): Promise<void> {
    try {
      await this.#local.refreshResidency(signal);
    } finally {
      this.#pump();
    }
  }

  /** Forget the loaded model (e.g. a caller unloaded it); the next pick has no tie to prefer. */
  markUnloaded(model: string): void {
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
    this.#counts[state]++;
    this.#recent.unshift({
      id: entry.id, model: entry.job.model, origin: entry.job.origin, state,
      queue_ms: running.queueMs, run_ms: runMs, finished_at: new Date(now).toISOString(), lane: lane.name,
    });
    if (this.#recent.length > RECENT_LIMIT) this.#recent.pop();
    this.#opts.events?.finished?.(entry.job, state, running.queueMs, runMs);
    this.#pump();
    // After a failure foreman is unsure what upstream holds (SPEC §1: read /api/ps whenever unsure);
    // a cloud job's failure says nothing about what is loaded here.
    if ((state === 'failed' || state === 'requeued') && lane.kind === 'local') {
      void this.refreshResidency(AbortSignal.timeout(RESIDENCY_TIMEOUT_MS));
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
      for (const r of this.#running.values()) r.controller.abort(new Error('shutdown'));
      await drained;
    }
  }

  snapshot(now = this.#now()) {
    const running: RunningView[] = [...this.#running.values()].map((r) => ({
      id: r.entry.job.id, model: r.entry.job.model, group: r.entry.job.group, origin: r.entry.job.origin, kind: r.entry.job.kind,
      priority: r.entry.job.priority, started_at: new Date(r.startedMs).toISOString(),
      elapsed_ms: now - r.startedMs, queue_ms: r.queueMs, lane: r.lane.name,
    }));
    const groups: GroupView[] = this.#lanes.flatMap((lane) =>
      lane.queue.groups(now, lane.preferredGroup).map((g) => ({
        group: g.group, model: modelOfGroup(g.group), count: g.count, head_priority: g.headPriority,
        head_wait_ms: g.headWaitMs, head_effective_priority: g.headEffectivePriority, lane: lane.name,
      })),
    );
    const loaded = this.#local.loadedGroup;
    return {
      loaded_group: loaded,
      loaded_model: loaded ? modelOfGroup(loaded) : null,
      running,
      groups,
      lanes: this.#lanes.map((lane) => lane.view()),
      counts: { ...this.#counts, switches: this.#local.switchCount },
      switches: this.#local.switches(),
      recent: this.#recent.map((r) => ({ ...r })),
    };
  }
}
