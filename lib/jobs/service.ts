// Async jobs: submission (durable before acknowledged), the state machine, what a
// run's outcome does to a job (job-runner.ts does the run), webhook events, replay
// after a crash, retries, retention and compaction (SPEC §4–§6). No HTTP here.

import { ForemanError, queueFull, StopReason } from '../errors.js';
import { groupKey, modelKey } from '../sched/model-group.js';
import { newJobId } from './ids.js';
import { silentLogger, type Logger } from '../log.js';
import { JournalError, type Journal } from '../journal/journal.js';
import type { Upstream } from '../upstream.js';
import type { FinishState, RunContext, Scheduler } from '../sched/scheduler.js';
import { createWebhookDispatcher, type DeliveryProgress, type WebhookDispatcher } from '../webhooks/dispatcher.js';
import { runOnce } from './runner.js';
import { SortedIds } from './sorted-ids.js';
import {
  applyState, applyWebhook, artifactsOf, eventId, eventPayload, isTerminal, jobFromSubmit, jobView, replayRecords,
  type Artifact, type Job, type JobError, type JobKind, type JobRecord, type JobState,
} from './records.js';

export interface SubmitInput {
  kind: JobKind;
  model: string;
  body: Record<string, unknown>;
  priority: number;
  metadata: unknown;
  webhookUrl: string | null;
  idempotency: { key: string; hash: string } | null;
}

export interface JobServiceOptions {
  journal: Journal;
  scheduler: Scheduler;
  upstream: Upstream;
  maxQueue: number;
  maxAttempts: number;
  retentionMs: number;
  webhookSecret?: string;
  webhookMaxResult: number;
  webhookSchedule?: readonly number[];
  webhookTimeoutMs?: number;
  log?: Logger;
  now?: () => number;
  onWebhook?: (outcome: DeliveryProgress['outcome']) => void;
  onTransition?: (job: Job, state: JobState) => void;
}

const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
const MAX_WAIT_MS = 300_000;
const COMPACT_CHECK_MS = 3600_000;
const RETRY_BASE_MS = 2_000;
const RETRY_MAX_MS = 60_000;

interface Waiter {
  resolve(): void;
}

export class JobService {
  readonly #o: JobServiceOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #jobs: Map<string, Job>;
  /** ids in creation order, for newest-first paging */
  readonly #order: SortedIds;
  /** submits between the max_queue check and their enqueue: they hold a place in the queue */
  #admitting = 0;
  /** submits whose record is not yet durable; an idempotent repeat waits for it */
  readonly #durable = new Map<string, Promise<void>>();
  readonly #idempotency = new Map<string, { id: string; hash: string; at: number }>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #running = new Map<string, Promise<void>>();
  readonly #webhooks: WebhookDispatcher;
  #appendsSinceCompaction = 0;
  #compacting: Promise<void> | null = null;
  #compactTimer: NodeJS.Timeout;
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  readonly replayOrphans: number;

  constructor(options: JobServiceOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
    const { jobs, orphans } = replayRecords(options.journal.replay.records);
    this.#jobs = jobs;
    this.replayOrphans = orphans;
    this.#order = new SortedIds(jobs.keys());
    for (const job of jobs.values()) {
      if (job.idempotency) this.#idempotency.set(job.idempotency.key, { id: job.id, hash: job.idempotency.hash, at: job.createdAt });
    }
    this.#webhooks = createWebhookDispatcher({
      secret: options.webhookSecret,
      schedule: options.webhookSchedule,
      timeoutMs: options.webhookTimeoutMs,
      now: this.#now,
      log: this.#log,
      onProgress: (p) => this.#onWebhookProgress(p),
    });
    this.#compactTimer = setInterval(() => void this.compact(), COMPACT_CHECK_MS);
    this.#compactTimer.unref();
  }

  /** After a restart: working jobs go back to the queue (or fail as interrupted), queued ones are scheduled, webhooks resume. */
  recover(): { requeued: number; interrupted: number; queued: number } {
    let requeued = 0;
    let interrupted = 0;
    let queued = 0;
    // Events already durable before the crash that no receiver has acknowledged go out again (at-least-once).
    // The transitions made below announce themselves once their own records are durable (#transition).
    for (const id of this.#order) {
      const job = this.#jobs.get(id)!;
      if (job.webhookUrl && !job.webhook.gone) {
        for (let seq = job.webhook.settledSeq + 1; seq <= job.transitions.length; seq++) this.#sendEvent(job, seq);
      }
    }
    for (const job of this.#jobs.values()) {
      if (job.state === 'working') {
        if (job.attempts >= this.#o.maxAttempts) {
          this.#transition(job, 'failed', job.attempts, { message: 'interrupted', reason: 'interrupted' });
          interrupted++;
          continue;
        }
        this.#transition(job, 'queued', job.attempts);
        requeued++;
      }
    }
    for (const id of this.#order) {
      const job = this.#jobs.get(id)!;
      if (job.state === 'queued') {
        this.#schedule(job, true);
        queued++;
      }
    }
    if (requeued || interrupted || queued) this.#log.info('jobs recovered', { requeued, interrupted, queued });
    return { requeued, interrupted, queued };
  }

  get size(): number {
    return this.#jobs.size;
  }

  /** Durable before it resolves: the 202 waits for the submit record's fsync (SPEC §4). */
  async submit(input: SubmitInput): Promise<{ job: Job; created: boolean }> {
    const now = this.#now();
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
    // Count submits still waiting for their fsync: they are admitted, and enqueue below cannot refuse them.
    if (this.#o.scheduler.waiting + this.#admitting >= this.#o.maxQueue) throw queueFull(`max_queue ${this.#o.maxQueue}`);
    const record: Extract<JobRecord, { t: 'submit' }> = {
      t: 'submit', id: newJobId('job_'), at: now, model: input.model, kind: input.kind, priority: input.priority,
      metadata: input.metadata, webhook_url: input.webhookUrl, body: input.body, idem: input.idempotency,
    };
    const job = jobFromSubmit(record);
    this.#jobs.set(job.id, job);
    this.#order.insert(job.id);
    if (input.idempotency) this.#idempotency.set(input.idempotency.key, { id: job.id, hash: input.idempotency.hash, at: now });
    this.#admitting++;
    const durable = this.#append(record);
    this.#durable.set(job.id, durable.catch(() => {}));
    try {
      await durable;
    } catch (err) {
      this.#jobs.delete(job.id);
      this.#order.remove(job.id);
      if (input.idempotency) this.#idempotency.delete(input.idempotency.key);
      // Nothing was acknowledged: say why in words a client can act on, not 'internal error'.
      if (err instanceof JournalError && err.code === 'JOURNAL_BACKLOG') {
        throw new ForemanError('journal_backlog', `journal is busy: ${err.message}`);
      }
      if (err instanceof JournalError) throw new ForemanError('journal_unavailable', `job not stored: ${err.message}`);
      throw err;
    } finally {
      this.#admitting--;
      this.#durable.delete(job.id);
    }
    this.#o.onTransition?.(job, 'queued');
    this.#sendEvent(job, 1);
    try {
      // Admitted above, so past max_queue is no reason to refuse now (the 202 is owed: the job is durable).
      this.#schedule(job, true);
    } catch (err) {
      // Shutting down: the job stays queued in the journal and runs at the next start.
      this.#log.warn('job kept for the next start', { job: job.id, error: (err as Error).message });
    }
    return { job, created: true };
  }

  get(id: string): Job {
    const job = this.#jobs.get(id);
    if (!job) throw new ForemanError('not_found', `job '${id}' not found`);
    return job;
  }

  view(job: Job): Record<string, unknown> {
    return jobView(job, {
      queuePosition: job.state === 'queued' ? this.#o.scheduler.position(job.id) ?? null : null,
      // After a 410 nothing more will be sent, so nothing is pending.
      pendingWebhooks: job.webhookUrl && !job.webhook.gone ? job.transitions.length - job.webhook.settledSeq : 0,
    });
  }

  list(filter: { state?: JobState; model?: string; limit: number; cursor?: string }): { jobs: Job[]; next: string | null } {
    const model = filter.model ? modelKey(filter.model) : undefined;
    // Newest first: start below the cursor (the last id of the previous page), or at the end.
    let i = (filter.cursor ? this.#order.lowerBound(filter.cursor) : this.#order.length) - 1;
    const out: Job[] = [];
    for (; i >= 0 && out.length < filter.limit; i--) {
      const job = this.#jobs.get(this.#order.at(i)!);
      if (!job) continue;
      if (filter.state && job.state !== filter.state) continue;
      if (model && modelKey(job.model) !== model) continue;
      out.push(job);
    }
    const more = i >= 0 && out.length === filter.limit;
    return { jobs: out, next: more ? out[out.length - 1]!.id : null };
  }

  /** Cancels a queued or working job; a terminal one is a 409. Resolves once the job is cancelled. */
  async cancel(id: string): Promise<Job> {
    const job = this.get(id);
    if (isTerminal(job.state)) throw new ForemanError('conflict', `job '${id}' is already ${job.state}`);
    const found = this.#o.scheduler.cancel(id, new StopReason('cancelled', 'cancelled by request'));
    const running = this.#running.get(id);
    if (running) await running;
    // Not in the scheduler (e.g. dropped from memory at shutdown) yet queued in the books: cancel it here.
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

  events(id: string): Array<Record<string, unknown>> {
    const job = this.get(id);
    return job.transitions.map((_, i) => eventPayload(job, i + 1, this.#o.webhookMaxResult));
  }

  artifact(id: string, name: string): Artifact {
    const found = artifactsOf(this.get(id)).find((a) => a.name === name);
    if (!found) throw new ForemanError('not_found', `job '${id}' has no artifact '${name}'`);
    return found;
  }

  counts(): Record<JobState, number> {
    const c: Record<JobState, number> = { queued: 0, working: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const job of this.#jobs.values()) c[job.state]++;
    return c;
  }

  webhooksIdle(): Promise<void> {
    return this.#webhooks.idle();
  }

  /** Rewrites the journal to live state; terminal jobs past retention drop out (SPEC §6). */
  compact(): Promise<void> {
    this.#compacting ??= (async () => {
      const cutoff = this.#now() - this.#o.retentionMs;
      for (const [id, job] of this.#jobs) {
        if (isTerminal(job.state) && (job.finishedAt ?? 0) < cutoff && !this.#running.has(id)) {
          this.#jobs.delete(id);
          if (job.idempotency) this.#idempotency.delete(job.idempotency.key);
        } else if (isTerminal(job.state)) {
          job.body = {}; // the request is no longer needed once the job ended; the hash guards idempotency
        }
      }
      this.#order.retain((id) => this.#jobs.has(id));
      for (const [key, entry] of this.#idempotency) if (this.#now() - entry.at >= IDEMPOTENCY_TTL_MS) this.#idempotency.delete(key);
      // A copy taken now: the journal writes it later, after the appends queued before this call and
      // before those queued after it. Live objects would carry later transitions too, and replay would
      // then apply the records appended after the compaction a second time.
      const live = [...this.#jobs.values()].map((job): JobRecord => ({ t: 'job', job: structuredClone(job) }));
      this.#appendsSinceCompaction = 0;
      await this.#o.journal.compact(live);
    })()
      .catch((err) => this.#log.error('compaction failed', { error: (err as Error).message }))
      .finally(() => (this.#compacting = null));
    return this.#compacting;
  }

  async close(): Promise<void> {
    clearInterval(this.#compactTimer);
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    for (const set of this.#waiters.values()) for (const w of set) w.resolve();
    await this.#webhooks.close();
    await this.#compacting;
  }

  // ---- internals ----

  /** Ids of one millisecond differ in a random tail, so creation order is not id order: insert sorted. */

  #append(record: JobRecord): Promise<void> {
    this.#appendsSinceCompaction++;
    // Compact when the journal holds several times more records than there are jobs.
    if (this.#appendsSinceCompaction > Math.max(50_000, this.#jobs.size * 4) && !this.#compacting) {
      queueMicrotask(() => void this.compact());
    }
    return this.#o.journal.append(record);
  }

  #schedule(job: Job, replayed: boolean): void {
    this.#o.scheduler.enqueue(
      {
        id: job.id, model: job.model, group: groupKey(job.model, job.body.options), priority: job.priority,
        origin: 'async', kind: job.kind,
        run: (rc) => this.#run(job, rc),
        dropped: (reason) => {
          if (reason === 'cancelled') this.#transition(job, 'cancelled', job.attempts, { message: 'cancelled' });
          // 'shutdown': stays queued in the journal for the next start
        },
      },
      { arrivalMs: job.createdAt, force: replayed },
    );
  }

  /**
   * Back to queued, and into the scheduler again after a backoff (2 s, 4 s, … at most 60 s), or
   * after the wait upstream asked for with its attempt given back (a 429, SPEC §12).
   * The wait is in memory only: after a restart the job is simply queued.
   */
  #retryLater(job: Job, failure: JobError, asked?: { delayMs: number; attempts: number }): void {
    const attempts = asked?.attempts ?? job.attempts;
    this.#transition(job, 'queued', attempts, failure);
    const delay = asked?.delayMs ?? Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.max(0, job.attempts - 1));
    this.#log.warn('job will retry', { job: job.id, attempts, retry_in_ms: delay, error: failure.message });
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer);
      if (job.state !== 'queued' || this.#o.scheduler.has(job.id)) return; // cancelled meanwhile
      try {
        this.#schedule(job, true);
      } catch (err) {
        this.#log.warn('job kept for the next start', { job: job.id, error: (err as Error).message });
      }
    }, delay);
    timer.unref();
    this.#retryTimers.add(timer);
  }

  #transition(job: Job, state: JobState, attempts: number, error: JobError | null = null): void {
    const t = applyState(job, state, this.#now(), attempts, error);
    const record: JobRecord = { t: 'state', id: job.id, at: t.at, state, attempts, ...(error ? { error } : {}) };
    // Webhooks go out only once the state they announce is durable.
    this.#append(record).then(
      () => this.#sendEvent(job, t.seq),
      (err) => this.#log.error('journal append failed', { job: job.id, error: (err as Error).message }),
    );
    this.#o.onTransition?.(job, state);
    if (isTerminal(state)) {
      const set = this.#waiters.get(job.id);
      if (set) for (const w of [...set]) w.resolve();
    }
  }

  #sendEvent(job: Job, seq: number): void {
    if (!job.webhookUrl || job.webhook.gone || seq <= job.webhook.settledSeq) return;
    const retry = job.webhook.retry?.seq === seq ? job.webhook.retry : null;
    this.#webhooks.enqueue({
      eventId: eventId(job.id, seq), jobId: job.id, seq, url: job.webhookUrl,
      body: JSON.stringify(eventPayload(job, seq, this.#o.webhookMaxResult)),
      attempts: retry?.attempts ?? 0, nextAttemptAt: retry?.nextAt ?? 0,
    });
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
    this.#append(record).catch((err) => this.#log.error('journal append failed', { job: job.id, error: (err as Error).message }));
  }

  #run(job: Job, rc: RunContext): Promise<FinishState> {
    const done = this.#execute(job, rc);
    const tracked = done.then(() => undefined, () => undefined);
    this.#running.set(job.id, tracked);
    return done.finally(() => this.#running.delete(job.id));
  }

  async #execute(job: Job, rc: RunContext): Promise<FinishState> {
    this.#transition(job, 'working', job.attempts + 1);
    const outcome = await runOnce(this.#o.upstream, job.kind, job.body, rc.signal, () => rc.upstreamAnswered(), this.#now);
    switch (outcome.kind) {
      case 'aborted':
        // A job stopped by shutdown runs again at the next start; one stopped by a caller is cancelled.
        if (outcome.shutdown) {
          this.#transition(job, 'queued', job.attempts);
          return 'requeued';
        }
        this.#transition(job, 'cancelled', job.attempts, { message: 'cancelled' });
        return 'cancelled';
      case 'failed':
        // A usage limit (429) is no fault of the job: it runs again when upstream said, without
        // spending an attempt (SPEC §12). Its running attempt was counted when it started.
        if (outcome.retryAfterMs !== undefined) {
          this.#retryLater(job, outcome.error, { delayMs: outcome.retryAfterMs, attempts: Math.max(0, job.attempts - 1) });
          return 'requeued';
        }
        // Ollama restarting (or not up yet) is no reason to lose the job: try again later.
        if (outcome.unreachable && job.attempts < this.#o.maxAttempts) {
          this.#retryLater(job, outcome.error);
          return 'requeued';
        }
        this.#transition(job, 'failed', job.attempts, outcome.error);
        return 'failed';
      case 'completed':
        try {
          // The result must be durable before the job may say completed.
          await this.#append({ t: 'result', id: job.id, at: this.#now(), response: outcome.response });
        } catch (err) {
          this.#transition(job, 'failed', job.attempts, { message: `could not store the result: ${(err as Error).message}` });
          return 'failed';
        }
        job.response = outcome.response;
        this.#transition(job, 'completed', job.attempts);
        return 'completed';
    }
  }
}
