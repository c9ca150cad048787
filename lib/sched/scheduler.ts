// Runs jobs from the drain-by-model queue: at most `parallel` at once, all of one
// group; a switch waits for the old group's running jobs, then unloads the old
// model (SPEC §1). It knows no HTTP: a job is a run(signal) callback.

import { busy, shuttingDown } from '../errors.js';
import { createDrainQueue, type DrainQueue } from './queue.js';
import { modelOfGroup } from './model-group.js';
import { silentLogger, type Logger } from '../log.js';
import type { Upstream } from '../upstream.js';
import type { GroupView, JobOrigin, RecentJobView, RunningView, SwitchView } from './snapshot.js';

export interface RunContext {
  readonly signal: AbortSignal;
  readonly queueMs: number;
  /** The job calls this when upstream answered: the end of a model load, if this job caused one. */
  upstreamAnswered(): void;
}

/** How a run ended; 'requeued' is an async job put back to run again (shutdown, unreachable upstream). */
export type FinishState = 'completed' | 'failed' | 'cancelled' | 'requeued';

export interface SchedulerJob {
  readonly id: string;
  readonly model: string;
  readonly group: string;
  readonly priority: number;
  readonly origin: JobOrigin;
  readonly kind: string;
  /** request bytes the job holds while it waits (SPEC §16: counted against max_queue_bytes) */
  readonly bytes?: number;
  /** Runs the job to its end; the returned state is what the books record. */
  run(ctx: RunContext): Promise<FinishState>;
  /** The job left the queue without running. */
  dropped(reason: 'cancelled' | 'shutdown'): void;
}

interface Entry {
  readonly id: string;
  readonly group: string;
  readonly priority: number;
  readonly arrivalMs: number;
  readonly job: SchedulerJob;
}

interface Running {
  readonly job: SchedulerJob;
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
  /** bound on the bytes of waiting jobs' bodies (SPEC §16); default unbounded */
  maxQueueBytes?: number;
  agingMs: number;
  unloadOnSwitch: boolean;
  upstream: Pick<Upstream, 'unload' | 'loadedModels' | 'capabilities' | 'exists'>;
  log?: Logger;
  now?: () => number;
  events?: SchedulerEvents;
}

const RECENT_LIMIT = 50;
const SWITCH_LIMIT = 20;
const UNLOAD_TIMEOUT_MS = 60_000;
const RESIDENCY_TIMEOUT_MS = 5_000;

export class Scheduler {
  readonly #queue: DrainQueue<Entry>;
  readonly #running = new Map<string, Running>();
  readonly #opts: SchedulerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #loadedGroup: string | null = null;
  #switching = false;
  #closing = false;
  #pendingSwitch: { view: SwitchView; startedMs: number } | null = null;
  readonly #switches: SwitchView[] = [];
  readonly #recent: RecentJobView[] = [];
  readonly #counts = { completed: 0, failed: 0, cancelled: 0, requeued: 0, switches: 0 };
  readonly #embeddingModels = new Map<string, boolean>();
  #idleWaiters: Array<() => void> = [];
  #waitingBytes = 0;

  constructor(options: SchedulerOptions) {
    this.#opts = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#queue = createDrainQueue<Entry>({ agingMs: options.agingMs });
  }

  get loadedGroup(): string | null {
    return this.#loadedGroup;
  }
  get waiting(): number {
    return this.#queue.size;
  }
  /** bytes of the bodies of waiting jobs */
  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  /** Would a job of `bytes` more be refused as busy now (count or bytes)? `extra` counts admissions in flight. */
  isFull(bytes: number, extra = { count: 0, bytes: 0 }): boolean {
    if (this.#queue.size + extra.count >= this.#opts.maxQueue) return true;
    const max = this.#opts.maxQueueBytes ?? Infinity;
    // One job larger than the whole bound is still let into an empty queue: it could never run otherwise.
    return this.#waitingBytes + extra.bytes + bytes > max && this.#queue.size + extra.count > 0;
  }
  get runningCount(): number {
    return this.#running.size;
  }

  /**
   * Queues a job; 503 busy beyond max_queue. `arrivalMs` lets replayed async jobs keep their age;
   * `force` admits them past max_queue (they were acknowledged before the restart).
   */
  enqueue(job: SchedulerJob, options: { arrivalMs?: number; force?: boolean } = {}): void {
    if (this.#closing) throw shuttingDown();
    if (!options.force && this.isFull(job.bytes ?? 0)) throw busy();
    const arrivalMs = options.arrivalMs ?? this.#now();
    this.#queue.enqueue({ id: job.id, group: job.group, priority: job.priority, arrivalMs, job });
    this.#waitingBytes += job.bytes ?? 0;
    this.#pump();
  }

  has(id: string): boolean {
    return this.#running.has(id) || this.#queue.get(id) !== undefined;
  }

  /** Takes a job out of the queue without telling it (its owner keeps it, e.g. while the journal cannot write). */
  withdraw(id: string): boolean {
    return this.#take(id) !== undefined;
  }

  #take(id: string): Entry | undefined {
    const entry = this.#queue.remove(id);
    if (entry) this.#waitingBytes -= entry.job.bytes ?? 0;
    return entry;
  }

  /** Cancels a queued job (it leaves the queue) or a running one (its upstream request is aborted). */
  cancel(id: string, reason = 'cancelled'): boolean {
    const entry = this.#take(id);
    if (entry) {
      entry.job.dropped('cancelled');
      this.#pump();
      return true;
    }
    const running = this.#running.get(id);
    if (!running) return false;
    running.controller.abort(new Error(reason));
    return true;
  }

  position(id: string): number | undefined {
    return this.#queue.position(id, this.#now(), this.#loadedGroup);
  }

  /** Reads upstream /api/ps to learn which generation model is loaded (embedding models have their own slot). */
  async refreshResidency(signal?: AbortSignal): Promise<void> {
    try {
      const models = await this.#opts.upstream.loadedModels(signal);
      const names = models.map((m) => m.model || m.name);
      if (this.#loadedGroup && names.includes(modelOfGroup(this.#loadedGroup))) return;
      let found: string | null = null;
      for (const name of names) {
        if (!(await this.#isEmbedding(name, signal))) {
          found = name;
          break;
        }
      }
      if (this.#running.size === 0) this.#loadedGroup = found;
      this.#log.info('residency', { loaded: found ?? 'none' });
    } catch (err) {
      this.#log.warn('residency unknown', { error: (err as Error).message });
    } finally {
      this.#pump();
    }
  }

  /** Forget the loaded model (e.g. a caller unloaded it); the next pick has no tie to prefer. */
  markUnloaded(model: string): void {
    if (this.#loadedGroup && modelOfGroup(this.#loadedGroup) === model && this.#running.size === 0) {
      this.#loadedGroup = null;
    }
  }

  async #isEmbedding(model: string, signal?: AbortSignal): Promise<boolean> {
    let known = this.#embeddingModels.get(model);
    if (known === undefined) {
      known = (await this.#opts.upstream.capabilities(model, signal)).includes('embedding');
      if (this.#embeddingModels.size > 1000) this.#embeddingModels.clear();
      this.#embeddingModels.set(model, known);
    }
    return known;
  }

  #pump(): void {
    if (this.#switching) return;
    while (!this.#closing && this.#running.size < this.#opts.parallel) {
      const now = this.#now();
      const next = this.#queue.peek(now, this.#loadedGroup);
      if (!next) break;
      if (next.group !== this.#loadedGroup) {
        // A switch: wait until the old group's running jobs end (SPEC §1).
        if (this.#running.size > 0) break;
        if (this.#loadedGroup !== null && this.#opts.unloadOnSwitch) {
          void this.#unloadThenPump(this.#loadedGroup, next.group);
          return;
        }
        this.#recordSwitch(this.#loadedGroup, next.group, now);
      }
      this.#take(next.id);
      this.#start(next, now);
    }
    if (this.#running.size === 0 && this.#queue.size === 0) this.#notifyIdle();
  }

  async #unloadThenPump(group: string, target: string): Promise<void> {
    this.#switching = true;
    const model = modelOfGroup(group);
    try {
      // A request for a model upstream does not have (a typo, say) must not cost the loaded model:
      // it will fail with 404 at once, and the loaded model stays for the jobs after it.
      const known = await this.#opts.upstream.exists(modelOfGroup(target), AbortSignal.timeout(UNLOAD_TIMEOUT_MS)).catch(() => true);
      if (known) await this.#opts.upstream.unload(model, AbortSignal.timeout(UNLOAD_TIMEOUT_MS));
      else this.#log.info('switch without unload', { model, unknown: modelOfGroup(target) });
    } catch (err) {
      this.#log.warn('unload failed', { model, error: (err as Error).message });
    }
    this.#switching = false;
    // Record the switch from the unloaded group; the next pick has no loaded group to prefer.
    const from = this.#loadedGroup;
    this.#loadedGroup = null;
    const next = this.#queue.peek(this.#now(), null);
    if (next) {
      this.#recordSwitch(from, next.group, this.#now());
      this.#take(next.id);
      this.#start(next, this.#now());
    }
    this.#pump();
  }

  #recordSwitch(from: string | null, to: string, now: number): void {
    this.#loadedGroup = to;
    this.#counts.switches++;
    const view: SwitchView = { at: new Date(now).toISOString(), from, to, load_ms: null };
    this.#switches.unshift(view);
    if (this.#switches.length > SWITCH_LIMIT) this.#switches.pop();
    this.#pendingSwitch = { view, startedMs: now };
    this.#log.info('model switch', { from: from ?? 'none', to });
    this.#opts.events?.switched?.(from, to);
  }

  #start(entry: Entry, now: number): void {
    const controller = new AbortController();
    const queueMs = Math.max(0, now - entry.arrivalMs);
    const running: Running = { job: entry.job, controller, startedMs: now, queueMs };
    this.#running.set(entry.id, running);
    this.#opts.events?.started?.(entry.job, queueMs);
    const pending = this.#pendingSwitch;
    const ctx: RunContext = {
      signal: controller.signal,
      queueMs,
      upstreamAnswered: () => {
        if (pending && this.#pendingSwitch === pending) {
          pending.view.load_ms = this.#now() - pending.startedMs;
          this.#pendingSwitch = null;
        }
      },
    };
    let state: FinishState = 'failed';
    entry.job
      .run(ctx)
      .then((s) => (state = s))
      .catch((err) => this.#log.error('job crashed', { job: entry.id, error: (err as Error)?.message }))
      .finally(() => this.#finish(entry, running, state));
  }

  #finish(entry: Entry, running: Running, state: FinishState): void {
    this.#running.delete(entry.id);
    const now = this.#now();
    const runMs = now - running.startedMs;
    this.#counts[state]++;
    this.#recent.unshift({
      id: entry.id, model: entry.job.model, origin: entry.job.origin, state,
      queue_ms: running.queueMs, run_ms: runMs, finished_at: new Date(now).toISOString(),
    });
    if (this.#recent.length > RECENT_LIMIT) this.#recent.pop();
    this.#opts.events?.finished?.(entry.job, state, running.queueMs, runMs);
    this.#pump();
    // After a failure foreman is unsure what upstream holds (SPEC §1: read /api/ps whenever unsure).
    if (state === 'failed' || state === 'requeued') void this.refreshResidency(AbortSignal.timeout(RESIDENCY_TIMEOUT_MS));
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when nothing is queued or running (tests, shutdown). */
  idle(): Promise<void> {
    if (this.#running.size === 0 && this.#queue.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stops picking, drops every queued job ('shutdown'), lets running jobs finish
   * within graceMs, then aborts what is left.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#closing = true;
    for (const entry of [...this.#queue.values()]) {
      this.#take(entry.id);
      entry.job.dropped('shutdown');
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
      id: r.job.id, model: r.job.model, group: r.job.group, origin: r.job.origin, kind: r.job.kind,
      priority: r.job.priority, started_at: new Date(r.startedMs).toISOString(),
      elapsed_ms: now - r.startedMs, queue_ms: r.queueMs,
    }));
    const groups: GroupView[] = this.#queue.groups(now).map((g) => ({
      group: g.group, model: modelOfGroup(g.group), count: g.count, head_priority: g.headPriority,
      head_wait_ms: g.headWaitMs, head_effective_priority: g.headEffectivePriority,
    }));
    return {
      loaded_group: this.#loadedGroup,
      loaded_model: this.#loadedGroup ? modelOfGroup(this.#loadedGroup) : null,
      running,
      groups,
      counts: { ...this.#counts },
      switches: this.#switches.map((s) => ({ ...s })),
      recent: this.#recent.map((r) => ({ ...r })),
    };
  }
}
