// jobs/ owns async jobs: records, ids, the state machine and each run; durable through
// journal/, announced through webhooks/, run by sched/.
//
// Async jobs: submission (durable before acknowledged), the state machine, what a run's outcome
// does to a job (runner.ts does the run), webhook events, recovery after a crash, retries, and
// what happens while the journal cannot write (SPEC §4–§6). No HTTP here; upkeep.ts compacts.

import { ForemanError, keyQueueFull, queueFull, StopReason } from '../errors.js';
import { groupKey, modelKey } from '../sched/model-group.js';
import { newJobId } from './ids.js';
import { silentLogger, type Logger } from '../log.js';
import { JournalError, SerializedRecord, type Journal, type JournalHealth } from '../journal/journal.js';
import type { Upstream } from '../upstream.js';
import type { FinishState, RunContext, Scheduler } from '../sched/scheduler.js';
import { createWebhookDispatcher, type DeliveryProgress, type WebhookDispatcher, type WebhookSend } from '../webhooks/dispatcher.js';
import { runOnce } from './runner.js';
import { SortedIds } from './sorted-ids.js';
import { INLINE_BODY_MAX, type JobStore } from './store.js';
import { JobUpkeep } from './upkeep.js';
import { noteLargeBody } from './reclaim.js';
import {
  applyState, applyWebhook, artifactsOf, eventId, eventPayload, isTerminal, jobFromSubmit, jobView,
  type Artifact, type Job, type JobError, type JobKind, type JobRecord, type JobReplay, type JobState,
} from './records.js';

export interface SubmitInput {
  kind: JobKind;
  model: string;
  body: Record<string, unknown>;
  priority: number;
  metadata: unknown;
  webhookUrl: string | null;
  idempotency: { key: string; hash: string } | null;
  /** the submitting key's name and its max_queued (SPEC §15) */
  key?: string | null;
  maxQueued?: number | null;
}

export interface JobServiceOptions {
  journal: Journal;
  /** what start-up replay rebuilt (its visitor ran inside openJournal) */
  replay: JobReplay;
  store: JobStore;
  /** body and result files present at start (JobStore.listFiles) */
  files: { bodies: Set<string>; results: Set<string> };
  scheduler: Scheduler;
  upstream: Upstream;
  maxQueue: number;
  maxAttempts: number;
  retentionMs: number;
  webhookSecret?: string;
  webhookMaxResult: number;
  webhookSchedule?: readonly number[];
  webhookTimeoutMs?: number;
  /** The POST of each event, to checked addresses (webhooks/transport.ts). */
  webhookSend?: WebhookSend;
  log?: Logger;
  now?: () => number;
  onWebhook?: (outcome: DeliveryProgress['outcome']) => void;
  /** `response` is the merged upstream response on completion (it lives on disk, not in `job`). */
  onTransition?: (job: Job, state: JobState, response?: Record<string, unknown> | null) => void;
}

const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
const MAX_WAIT_MS = 300_000;
const RETRY_BASE_MS = 2_000;
const RETRY_MAX_MS = 60_000;

interface Waiter {
  resolve(): void;
}

/** 503 with the journal's reason: nothing was stored, the caller may try again later. */
function unavailable(reason: string): ForemanError {
  return new ForemanError('journal_unavailable', `job not stored: ${reason}`);
}

export class JobService {
  readonly #o: JobServiceOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #journal: Journal;
  readonly #store: JobStore;
  readonly #jobs: Map<string, Job>;
  /** ids in creation order, for newest-first paging */
  readonly #order: SortedIds;
  /** submits between the admission check and their enqueue: they hold a place (and bytes) in the queue */
  readonly #admitting = { count: 0, bytes: 0 };
  readonly #admittingByKey = new Map<string, number>();
  /** submits whose record is not yet durable; an idempotent repeat waits for it */
  readonly #durable = new Map<string, Promise<void>>();
  readonly #idempotency = new Map<string, { id: string; hash: string; at: number }>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #running = new Map<string, Promise<void>>();
  readonly #webhooks: WebhookDispatcher;
  readonly #upkeep: JobUpkeep;
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  /** jobs per state, kept at each change: /health reads it on every poll, a scan would be O(jobs) */
  readonly #counts: Record<JobState, number> = { queued: 0, working: 0, completed: 0, failed: 0, cancelled: 0 };
  /** while the journal cannot write, async jobs are held out of the scheduler (SPEC §6) */
  #paused = false;
  #closed = false;
  readonly replayOrphans: number;

  constructor(options: JobServiceOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#journal = options.journal;
    this.#store = options.store;
    this.#jobs = options.replay.jobs;
    this.replayOrphans = options.replay.orphans;
    this.#order = new SortedIds(this.#jobs.keys());
    for (const job of this.#jobs.values()) this.#counts[job.state]++;
    for (const job of this.#jobs.values()) {
      if (job.idempotency) this.#idempotency.set(job.idempotency.key, { id: job.id, hash: job.idempotency.hash, at: job.createdAt });
    }
    this.#webhooks = createWebhookDispatcher({
      secret: options.webhookSecret,
      schedule: options.webhookSchedule,
      timeoutMs: options.webhookTimeoutMs,
      send: options.webhookSend,
      now: this.#now,
      log: this.#log,
      onProgress: (p) => this.#onWebhookProgress(p),
    });
    this.#upkeep = new JobUpkeep({
      journal: this.#journal, store: this.#store, jobs: this.#jobs, log: this.#log, now: this.#now,
      retentionMs: options.retentionMs,
      isPending: (id) => this.#durable.has(id),
      isRunning: (id) => this.#running.has(id),
      forget: (job) => this.#forget(job),
      // One pass over the sorted ids per sweep: removing 100,000 ids one by one would be quadratic.
      swept: () => this.#order.retain((id) => this.#jobs.has(id)),
    });
  }

  /** After a restart: lost results and working jobs go back to the queue, queued ones are scheduled, webhooks resume. */
  recover(): { requeued: number; interrupted: number; queued: number; lost: number } {
    let requeued = 0;
    let interrupted = 0;
    let queued = 0;
    let lost = 0;
    const { bodies, results } = this.#o.files;
    const hasBody = (job: Job) => this.#store.hasBody(job, bodies);
    // Events already durable before the crash that no receiver has acknowledged go out again (at-least-once).
    // The transitions made below announce themselves once their own records are durable (#transition).
    for (const id of this.#order) {
      const job = this.#jobs.get(id)!;
      if (job.webhookUrl && !job.webhook.gone) {
        for (let seq = job.webhook.settledSeq + 1; seq <= job.transitions.length; seq++) this.#sendEvent(job, seq);
      }
    }
    for (const job of this.#jobs.values()) {
      // SPEC §6: a job whose result was lost is not shown completed without one: it runs again.
      const resultLost = job.state === 'completed' && !job.response && (!job.result || !results.has(job.id));
      if (resultLost || job.state === 'working' || job.state === 'queued') {
        if (!hasBody(job)) {
          this.#transition(job, 'failed', job.attempts, { message: 'the request body was lost from the data dir', reason: 'lost' });
          lost++;
          continue;
        }
      }
      if (resultLost) {
        this.#log.warn('job result lost; running it again', { job: job.id });
        job.result = null;
        this.#transition(job, 'queued', job.attempts);
        requeued++;
      } else if (job.state === 'working') {
        if (job.attempts >= this.#o.maxAttempts) {
          this.#transition(job, 'failed', job.attempts, { message: 'interrupted', reason: 'interrupted' });
          interrupted++;
          continue;
        }
        this.#transition(job, 'queued', job.attempts);
        requeued++;
      }
    }
    const removed = this.#store.removeOrphans(
      { bodies, results },
      (id) => {
        const job = this.#jobs.get(id);
        return job !== undefined && job.bodyFile && (!isTerminal(job.state) || (job.state === 'completed' && !job.result));
      },
      (id) => this.#jobs.get(id)?.result != null,
    );
    for (const id of this.#order) {
      const job = this.#jobs.get(id)!;
      if (job.state === 'queued') {
        this.#schedule(job);
        queued++;
      } else if (isTerminal(job.state) && !job.bodyFile) this.#journal.release(job.id);
    }
    if (requeued || interrupted || queued || lost || removed) this.#log.info('jobs recovered', { requeued, interrupted, queued, lost, orphan_files: removed });
    this.#upkeep.start();
    return { requeued, interrupted, queued, lost };
  }

  get size(): number {
    return this.#jobs.size;
  }

  /** Durable before it resolves: the 202 waits for the submit record's fsync (SPEC §4). */
  async submit(input: SubmitInput): Promise<{ job: Job; created: boolean }> {
    const now = this.#now();
    const health = this.#journal.health();
    if (!health.writable) throw unavailable(health.reason ?? 'the journal cannot write');
    if (input.idempotency) {
      const known = this.#idempotency.get(input.idempotency.key);
      if (known && now - known.at < IDEMPOTENCY_TTL_MS && this.#jobs.has(known.id)) {
        if (known.hash !== input.idempotency.hash) {
          throw new ForemanError('idempotency_mismatch', 'Idempotency-Key was already used with a different request body');
        }
        // The first submit may still be waiting for its fsync: never acknowledge a job that is not durable.
        await this.#durable.get(known.id);
        return { job: this.get(known.id), created: false };
      }
    }
    const bodyJson = JSON.stringify(input.body);
    const size = Buffer.byteLength(bodyJson);
    // Count submits still waiting for their fsync: they are admitted, and enqueue below cannot refuse them.
    const full = this.#o.scheduler.fullFor(size, this.#admitting);
    if (full) throw queueFull(full);
    const owner = input.key ?? '';
    const admittingOwn = this.#admittingByKey.get(owner) ?? 0;
    if (input.maxQueued != null && this.#o.scheduler.waitingOf(owner) + admittingOwn >= input.maxQueued) {
      throw keyQueueFull(owner, input.maxQueued);
    }
    const id = newJobId('job_');
    const bodyFile = size > INLINE_BODY_MAX;
    const record: Extract<JobRecord, { t: 'submit' }> = {
      t: 'submit', id, at: now, model: input.model, kind: input.kind, priority: input.priority,
      metadata: input.metadata, webhook_url: input.webhookUrl, idem: input.idempotency, key: input.key ?? null,
      group: groupKey(input.model, input.body.options), bytes: size,
      ...(bodyFile ? { body_file: true } : {}),
    };
    const job = jobFromSubmit(record);
    // The body is serialised once: its JSON goes into the line as it is (the line is the record plus body).
    const line = bodyFile ? null : new SerializedRecord(`${JSON.stringify(record).slice(0, -1)},"body":${bodyJson}}`);
    this.#jobs.set(job.id, job);
    this.#counts.queued++;
    this.#order.insert(job.id);
    if (input.idempotency) this.#idempotency.set(input.idempotency.key, { id: job.id, hash: input.idempotency.hash, at: now });
    this.#admitting.count++;
    this.#admitting.bytes += size;
    this.#admittingByKey.set(owner, admittingOwn + 1);
    // A large body goes to its own file, durable before the record that names it.
    const durable = line ? this.#append(line, id) : this.#store.writeBody(id, Buffer.from(bodyJson)).catch((err) => {
      this.#journal.reportFailure(err);
      throw new JournalError('JOURNAL_UNAVAILABLE', `could not store the request body: ${(err as Error).message}`);
    }).then(() => this.#append(record));
    this.#durable.set(job.id, durable.catch(() => {}));
    try {
      await durable;
    } catch (err) {
      this.#jobs.delete(job.id);
      this.#counts[job.state]--;
      this.#order.remove(job.id);
      if (input.idempotency) this.#idempotency.delete(input.idempotency.key);
      if (bodyFile) void this.#store.dropBody(job);
      // Nothing was acknowledged: say why in words a client can act on, not 'internal error'.
      if (err instanceof JournalError && err.code === 'JOURNAL_BACKLOG') {
        throw new ForemanError('journal_backlog', `journal is busy: ${err.message}`);
      }
      if (err instanceof JournalError) throw unavailable(err.message);
      throw err;
    } finally {
      this.#admitting.count--;
      this.#admitting.bytes -= size;
      const left = (this.#admittingByKey.get(owner) ?? 1) - 1;
      if (left > 0) this.#admittingByKey.set(owner, left);
      else this.#admittingByKey.delete(owner);
      this.#durable.delete(job.id);
    }
    if (bodyFile) noteLargeBody(size);
    this.#o.onTransition?.(job, 'queued');
    this.#sendEvent(job, 1);
    this.#schedule(job);
    return { job, created: true };
  }

  get(id: string): Job {
    const job = this.#jobs.get(id);
    if (!job) throw new ForemanError('not_found', `job '${id}' not found`);
    return job;
  }

  /** The public record; a completed job's result is read back from its file. */
  async view(job: Job): Promise<Record<string, unknown>> {
    return jobView(job, {
      queuePosition: job.state === 'queued' ? this.#o.scheduler.position(job.id) ?? null : null,
      // After a 410 nothing more will be sent, so nothing is pending.
      pendingWebhooks: job.webhookUrl && !job.webhook.gone ? job.transitions.length - job.webhook.settledSeq : 0,
    }, await this.#response(job));
  }

  /** `key`: only that key's jobs (a key that is not admin lists its own, SPEC §15). */
  list(filter: { state?: JobState; model?: string; key?: string; limit: number; cursor?: string }): { jobs: Job[]; next: string | null } {
    const model = filter.model ? modelKey(filter.model) : undefined;
    // Newest first: start below the cursor (the last id of the previous page), or at the end.
    let i = (filter.cursor ? this.#order.lowerBound(filter.cursor) : this.#order.length) - 1;
    const out: Job[] = [];
    for (; i >= 0 && out.length < filter.limit; i--) {
      const job = this.#jobs.get(this.#order.at(i)!);
      if (!job) continue;
      if (filter.state && job.state !== filter.state) continue;
      if (model && modelKey(job.model) !== model) continue;
      if (filter.key !== undefined && job.key !== filter.key) continue;
      out.push(job);
    }
    const more = i >= 0 && out.length === filter.limit;
    return { jobs: out, next: more ? out[out.length - 1]!.id : null };
  }

  /** Cancels a queued or working job; a terminal one is a 409. Resolves once the job is cancelled. */
  async cancel(id: string): Promise<Job> {
    const job = this.get(id);
    if (isTerminal(job.state)) throw new ForemanError('conflict', `job '${id}' is already ${job.state}`);
    // A cancel that could not be recorded would come back after a restart: refuse it instead.
    const health = this.#journal.health();
    if (!health.writable) throw new ForemanError('journal_unavailable', `cannot cancel now: ${health.reason}`);
    const found = this.#o.scheduler.cancel(id, new StopReason('cancelled', 'cancelled by request'));
    const running = this.#running.get(id);
    if (running) await running;
    // Not in the scheduler (held back, waiting for a retry, or dropped at shutdown) yet queued: cancel it here.
    if (!found && !running && job.state === 'queued') this.#transition(job, 'cancelled', job.attempts, { message: 'cancelled' });
    return job;
  }

  /** Long poll: resolves when the job is terminal, the time is up, or the signal aborts. */
  async wait(id: string, ms: number, signal?: AbortSignal): Promise<Job> {
    const job = this.get(id);
    if (isTerminal(job.state) || ms <= 0) return job;
    await new Promise<void>((resolve) => {
      const set = this.#waiters.get(id) ?? new Set<Waiter>();
      this.#waiters.set(id, set);
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', finish);
        set.delete(waiter);
        if (set.size === 0) this.#waiters.delete(id);
        resolve();
      };
      const waiter: Waiter = { resolve: finish };
      const timer = setTimeout(finish, Math.min(ms, MAX_WAIT_MS));
      signal?.addEventListener('abort', finish, { once: true });
      set.add(waiter);
    });
    return job;
  }

  async events(id: string): Promise<Array<Record<string, unknown>>> {
    const job = this.get(id);
    const response = await this.#response(job);
    return job.transitions.map((_, i) => eventPayload(job, i + 1, this.#o.webhookMaxResult, response));
  }

  async artifact(id: string, name: string): Promise<Artifact> {
    const job = this.get(id);
    const found = artifactsOf(job, await this.#response(job)).find((a) => a.name === name);
    if (!found) throw new ForemanError('not_found', `job '${id}' has no artifact '${name}'`);
    return found;
  }

  counts(): Record<JobState, number> {
    return { ...this.#counts };
  }

  /** The store's state for /health: journal writability and compaction trouble. */
  storeHealth(): { journal: JournalHealth; compaction: ReturnType<JobUpkeep['health']> } {
    return { journal: this.#journal.health(), compaction: this.#upkeep.health() };
  }

  webhooksIdle(): Promise<void> {
    return this.#webhooks.idle();
  }

  /** Drops expired jobs and rewrites the journal to live state now (SPEC §6). */
  compact(): Promise<void> {
    return this.#upkeep.compactNow();
  }

  /** The journal stopped or started being writable (SPEC §6): hold async jobs back, or let them go. */
  journalHealthChanged(health: JournalHealth): void {
    if (this.#closed) return;
    if (!health.writable && !this.#paused) {
      this.#paused = true;
      let held = 0;
      for (const job of this.#jobs.values()) if (job.state === 'queued' && this.#o.scheduler.withdraw(job.id)) held++;
      this.#log.warn('async jobs held while the journal cannot write', { held, reason: health.reason });
    } else if (health.writable && this.#paused) {
      this.#paused = false;
      let resumed = 0;
      for (const id of this.#order) {
        const job = this.#jobs.get(id)!;
        if (job.state === 'queued' && !this.#o.scheduler.has(id)) {
          this.#schedule(job);
          resumed++;
        }
      }
      this.#log.info('async jobs resumed', { resumed });
    }
  }

  async close(): Promise<void> {
    // Outcomes of runs that already gave their slot back land first (parked ones stay working).
    await Promise.all(this.#running.values());
    this.#closed = true;
    this.#upkeep.stop();
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    for (const set of this.#waiters.values()) for (const w of set) w.resolve();
    await this.#webhooks.close();
    await this.#upkeep.idle();
  }

  // ---- internals ----

  async #response(job: Job): Promise<Record<string, unknown> | null> {
    if (job.state !== 'completed' || (!job.result && !job.response)) return null;
    try {
      return await this.#store.readResult(job);
    } catch (err) {
      this.#log.error('job result unreadable', { job: job.id, error: (err as Error).message });
      throw new Error(`the result of job '${job.id}' could not be read from the data dir`);
    }
  }

  #append(record: JobRecord | SerializedRecord, keep?: string): Promise<void> {
    const done = this.#journal.append(record, keep);
    this.#upkeep.appended();
    return done;
  }

  /** A job dropped by retention: its files and index entries go (the sorted ids after the sweep). */
  #forget(job: Job): void {
    if (this.#jobs.delete(job.id)) this.#counts[job.state]--;
    if (job.idempotency && this.#idempotency.get(job.idempotency.key)?.id === job.id) this.#idempotency.delete(job.idempotency.key);
    if (job.result) this.#store.dropResult(job.id);
  }

  #schedule(job: Job): void {
    // Held back while the journal cannot write: journalHealthChanged schedules it on recovery.
    if (this.#paused || this.#closed) return;
    try {
      this.#o.scheduler.enqueue(
        {
          id: job.id, model: job.model, group: job.group, priority: job.priority, origin: 'async', kind: job.kind,
          key: job.key, bytes: job.bodyBytes,
          run: (rc) => this.#run(job, rc),
          dropped: (reason) => {
            if (reason === 'cancelled') this.#transition(job, 'cancelled', job.attempts, { message: 'cancelled' });
            // 'shutdown': stays queued in the journal for the next start
          },
        },
        // Admitted before (or acknowledged before a restart): past max_queue is no reason to refuse now.
        { arrivalMs: job.createdAt, force: true },
      );
    } catch (err) {
      // Shutting down: the job stays queued in the journal and runs at the next start.
      this.#log.warn('job kept for the next start', { job: job.id, error: (err as Error).message });
    }
  }

  /**
   * Into the scheduler again after a backoff (2 s, 4 s, … at most 60 s), or after the wait
   * upstream asked for (a 429, SPEC §12).
   * The wait is in memory only: after a restart the job is simply queued.
   */
  #retryLater(job: Job, delayMs?: number): void {
    const delay = delayMs ?? Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.max(0, job.attempts - 1));
    this.#log.warn('job will retry', { job: job.id, attempts: job.attempts, retry_in_ms: delay, error: job.error?.message });
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer);
      if (job.state !== 'queued' || this.#o.scheduler.has(job.id)) return; // cancelled meanwhile
      this.#schedule(job);
    }, delay);
    timer.unref();
    this.#retryTimers.add(timer);
  }

  /** Applies a transition at once and journals it; webhooks announce it once it is durable. */
  #transition(job: Job, state: JobState, attempts: number, error: JobError | null = null): Promise<void> {
    this.#counts[job.state]--;
    this.#counts[state]++;
    const t = applyState(job, state, this.#now(), attempts, error);
    const record: JobRecord = { t: 'state', id: job.id, seq: t.seq, at: t.at, state, attempts, ...(error ? { error } : {}) };
    const durable = this.#append(record);
    durable.then(
      () => this.#afterDurable(job, t.seq),
      (err) => this.#log.error('journal append failed', { job: job.id, state, error: (err as Error).message }),
    );
    this.#announce(job, state);
    return durable;
  }

  #announce(job: Job, state: JobState, response: Record<string, unknown> | null = null): void {
    this.#o.onTransition?.(job, state, response);
    if (isTerminal(state)) {
      // A failed-over job cancelled before it ran again leaves no count behind in the host fleet.
      this.#o.scheduler.forget(job.id);
      const set = this.#waiters.get(job.id);
      if (set) for (const w of [...set]) w.resolve();
    }
  }

  #afterDurable(job: Job, seq: number): void {
    this.#sendEvent(job, seq);
    // The request is no longer needed once the end is durable (a file goes at the next compaction).
    if (isTerminal(job.state) && job.transitions.length === seq) {
      if (job.bodyFile) this.#upkeep.bodyFileDead(job.id);
      else void this.#store.dropBody(job);
    }
  }

  /**
   * The end of a run, made durable before anyone can see it (SPEC §6): the result file, then the
   * result and state records, then the state in memory. While the disk refuses, the job stays
   * `working` and the outcome waits here (bounded by `parallel`) until the journal writes again.
   */
  async #settle(
    job: Job, state: JobState, error: JobError | null, response: Record<string, unknown> | null, parked: () => void,
    retry: { delayMs: number; attempts: number } | null = null,
  ): Promise<void> {
    const attempts = retry?.attempts ?? job.attempts;
    let written: { bytes: number; artifacts: Array<{ name: string; bytes: number }> } | null = null;
    let recorded = false;
    for (;;) {
      if (this.#closed) return; // stays working in the journal: the next start runs it again
      const at = this.#now();
      try {
        if (response && !written) {
          const bytes = await this.#store.writeResult(job.id, response);
          written = { bytes, artifacts: artifactsOf(job, response).map(({ name, bytes: size }) => ({ name, bytes: size })) };
        }
        if (written && !recorded) {
          await this.#append({ t: 'result', id: job.id, at, bytes: written.bytes, artifacts: written.artifacts });
          recorded = true;
          job.result = written;
        }
        const seq = job.transitions.length + 1;
        await this.#append({ t: 'state', id: job.id, seq, at, state, attempts, ...(error ? { error } : {}) });
        this.#counts[job.state]--;
        this.#counts[state]++;
        applyState(job, state, at, attempts, error);
        this.#announce(job, state, response);
        this.#afterDurable(job, seq);
        if (state === 'queued') this.#retryLater(job, retry?.delayMs);
        return;
      } catch (err) {
        if (this.#closed) return;
        // The result file could not be written: the disk is in trouble, the journal probes it.
        if (!(err instanceof JournalError)) this.#journal.reportFailure(err);
        this.#log.warn('job outcome waits for the journal', { job: job.id, state, error: (err as Error).message });
        parked();
        await this.#journal.whenWritable();
      }
    }
  }

  /**
   * The lane slot is given back as soon as upstream is done: the outcome is made durable while
   * the next job runs (one group commit per job would otherwise idle every host between jobs,
   * ADR 0027). The job stays in #running (cancel, retention) until the outcome is durable, or
   * parked while the disk refuses.
   */
  #run(job: Job, rc: RunContext): Promise<FinishState> {
    const done = this.#execute(job, rc);
    const tracked = done.then((r) => r.durable, () => undefined);
    this.#running.set(job.id, tracked);
    // A failed-over job may start again before this one's bookkeeping ends: delete only our own entry.
    void tracked.finally(() => {
      if (this.#running.get(job.id) === tracked) this.#running.delete(job.id);
    });
    return done.then((r) => r.state);
  }

  async #execute(job: Job, rc: RunContext): Promise<{ state: FinishState; durable: Promise<void> }> {
    const before = { attempts: job.attempts, startedAt: job.startedAt, error: job.error };
    let body: Record<string, unknown>;
    try {
      // The start must be durable before the run: an unrecorded start could not be counted after a crash.
      await this.#transition(job, 'working', job.attempts + 1);
      body = await this.#store.readBody(job);
    } catch (err) {
      if (job.state === 'working' && job.transitions.at(-1)!.state === 'working' && err instanceof JournalError) {
        // Not recorded: undo it in memory; the job is held until the journal writes again.
        job.transitions.pop();
        Object.assign(job, { state: 'queued', ...before });
        this.#counts.working--;
        this.#counts.queued++;
        if (!this.#paused) this.#schedule(job);
        return { state: 'requeued', durable: Promise.resolve() };
      }
      this.#log.error('job body unreadable', { job: job.id, error: (err as Error).message });
      void this.#settle(job, 'failed', { message: `the request body could not be read: ${(err as Error).message}`, reason: 'lost' }, null, () => {});
      return { state: 'failed', durable: Promise.resolve() };
    }
    const outcome = await runOnce(rc.upstream ?? this.#o.upstream, job.kind, body, rc.signal, () => rc.upstreamAnswered(), this.#now);
    if (job.bodyFile) noteLargeBody(job.bodyBytes);
    let parked!: () => void;
    const freed = new Promise<void>((resolve) => (parked = resolve));
    let settled: Promise<void>;
    let state: FinishState;
    switch (outcome.kind) {
      case 'aborted':
        // A job stopped by shutdown runs again at the next start; one stopped by a caller is cancelled.
        if (outcome.shutdown) {
          settled = this.#settle(job, 'queued', null, null, parked);
          state = 'requeued';
        } else {
          settled = this.#settle(job, 'cancelled', { message: 'cancelled' }, null, parked);
          state = 'cancelled';
        }
        break;
      case 'failed':
        // A usage limit (429) is no fault of the job: it runs again when upstream said, without
        // spending an attempt (SPEC §12). Its running attempt was counted when it started.
        if (outcome.retryAfterMs !== undefined) {
          settled = this.#settle(job, 'queued', outcome.error, null, parked, { delayMs: outcome.retryAfterMs, attempts: Math.max(0, job.attempts - 1) });
          state = 'requeued';
          break;
        }
        if (outcome.error.status === 404) rc.modelMissing?.();
        {
          // Ollama restarting, or dying mid-answer, is no reason to lose the job: try again later
          // (ADR 0011). With several hosts the host is marked down and the job goes back in the
          // queue for another one at once (SPEC §17), once its 'queued' is durable: the scheduler
          // leaves that to us. A host answering 5xx there failed this run, not the job: another host
          // runs it (one attempt used); with one host, or no other host, a 5xx stays a failure.
          const status = outcome.error.status ?? 0;
          const hostFault = !outcome.retriable && status >= 500 && rc.failover !== undefined;
          if ((outcome.retriable || hostFault) && job.attempts < this.#o.maxAttempts) {
            const elsewhere = rc.failover?.(hostFault ? `answered ${status}` : outcome.error.message) === true;
            if (elsewhere || outcome.retriable) {
              settled = this.#settle(job, 'queued', outcome.error, null, parked, elsewhere ? { delayMs: 0, attempts: job.attempts } : null);
              state = 'requeued';
              break;
            }
          }
          settled = this.#settle(job, 'failed', outcome.error, null, parked);
          state = 'failed';
        }
        break;
      case 'completed':
        if (typeof outcome.response.load_duration === 'number') rc.loadReported?.(outcome.response.load_duration / 1e6);
        settled = this.#settle(job, 'completed', null, outcome.response, parked);
        state = 'completed';
        break;
    }
    // Normally durable in one group commit, made while the next job already runs. While the disk
    // refuses, the outcome waits in #settle and the job shows `working` until it is durable.
    return { state, durable: Promise.race([settled, freed]) };
  }

  #sendEvent(job: Job, seq: number): void {
    if (!job.webhookUrl || job.webhook.gone || seq <= job.webhook.settledSeq) return;
    const retry = job.webhook.retry?.seq === seq ? job.webhook.retry : null;
    const enqueue = (response: Record<string, unknown> | null) => this.#webhooks.enqueue({
      eventId: eventId(job.id, seq), jobId: job.id, seq, url: job.webhookUrl!,
      body: JSON.stringify(eventPayload(job, seq, this.#o.webhookMaxResult, response)),
      attempts: retry?.attempts ?? 0, nextAttemptAt: retry?.nextAt ?? 0,
    });
    // Only a completion event carries the result, and it is always a job's last event.
    if (job.transitions.at(seq - 1)?.state !== 'completed') return enqueue(null);
    this.#response(job).then(enqueue, () => enqueue(null));
  }

  #onWebhookProgress(p: DeliveryProgress): void {
    this.#o.onWebhook?.(p.outcome);
    const job = this.#jobs.get(p.jobId);
    if (!job) return;
    const record: Extract<JobRecord, { t: 'webhook' }> = {
      t: 'webhook', id: p.jobId, seq: p.seq, outcome: p.outcome, attempts: p.attempts, next_at: p.nextAttemptAt,
      error: p.error ?? (p.status !== null && p.outcome !== 'delivered' ? `HTTP ${p.status}` : null),
    };
    applyWebhook(job, record);
    // Lost progress only means a delivery is repeated after a restart (at-least-once).
    this.#append(record).catch((err) => this.#log.warn('journal append failed', { job: job.id, error: (err as Error).message }));
  }
}
