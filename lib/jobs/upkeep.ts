// Keeping the job store small (SPEC §6, §16): retention drops finished jobs as they expire (not
// only at an hourly pass), and compaction rewrites the journal when enough of it is dead, off the
// hot path, backing off after a failure. No HTTP, no scheduling.

import { silentLogger, type Logger } from '../log.js';
import type { Journal } from '../journal/journal.js';
import type { JobStore } from './store.js';
import { isTerminal, type Job, type JobRecord } from './records.js';

export interface UpkeepOptions {
  journal: Journal;
  store: JobStore;
  jobs: Map<string, Job>;
  retentionMs: number;
  log?: Logger;
  now?: () => number;
  /** the job's submit record is not durable yet: it must not be in a snapshot */
  isPending(id: string): boolean;
  isRunning(id: string): boolean;
  /** drop a job that outlived retention (memory, result file) */
  forget(job: Job): void;
  /** after a sweep that forgot jobs: rebuild indexes once, not once per job */
  swept?(dropped: number): void;
  /** dead records tolerated before a compaction, beyond twice the live ones (default 10,000) */
  slack?: number;
  /** appends between two looks at the balance (default 64) */
  checkEvery?: number;
}

const MIN_SWEEP_MS = 1_000;
const MAX_SWEEP_MS = 60_000;
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 5 * 60_000;

export interface CompactionHealth {
  compactions: number;
  failures: number;
  last_error: string | null;
  next_attempt_at: string | null;
}

export class JobUpkeep {
  readonly #o: UpkeepOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #slack: number;
  #timer: NodeJS.Timeout | null = null;
  #compacting: Promise<void> | null = null;
  #scheduled = false;
  #failures = 0;
  #lastError: string | null = null;
  #retryAt = 0;
  #stopped = false;
  #appends = 0;
  /** body files of finished jobs: deleted once a compaction has dropped the records naming them */
  #deadBodyFiles: string[] = [];

  constructor(options: UpkeepOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#slack = options.slack ?? 10_000;
  }

  /** Sweeps at a tenth of the retention (1 s to 1 min): a job outlives it by at most that. */
  start(): void {
    if (this.#timer || this.#stopped) return;
    const every = Math.min(MAX_SWEEP_MS, Math.max(MIN_SWEEP_MS, Math.floor(this.#o.retentionMs / 10)));
    this.#timer = setInterval(() => this.sweep(), every);
    this.#timer.unref();
    this.sweep();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  async idle(): Promise<void> {
    await this.#compacting;
  }

  /** Called on each append: compaction is due when dead records outnumber live ones well enough. */
  appended(): void {
    // Checked every 64 appends: the balance moves slowly, and this is on every submission's path.
    if (++this.#appends % (this.#o.checkEvery ?? 64) !== 0) return;
    this.#check();
  }

  #check(): void {
    if (this.#scheduled || this.#compacting || this.#stopped || this.#now() < this.#retryAt || !this.#due()) return;
    this.#scheduled = true;
    // Off the submitter's path: the append that tipped the balance returns first.
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#compacting && !this.#stopped) void this.#compact();
    });
  }

  bodyFileDead(id: string): void {
    this.#deadBodyFiles.push(id);
  }

  /** Drops finished jobs past retention; compacts when that made enough of the journal dead. */
  sweep(): number {
    const cutoff = this.#now() - this.#o.retentionMs;
    let dropped = 0;
    for (const job of this.#o.jobs.values()) {
      if (isTerminal(job.state) && (job.finishedAt ?? 0) < cutoff && !this.#o.isRunning(job.id)) {
        this.#o.forget(job);
        dropped++;
      }
    }
    if (dropped) {
      this.#o.swept?.(dropped);
      this.#log.info('jobs expired', { dropped, retention_ms: this.#o.retentionMs });
    }
    this.#check();
    return dropped;
  }

  /** Sweep and compact now, whatever the balance (tests, operators). */
  async compactNow(): Promise<void> {
    this.sweep();
    if (this.#compacting) await this.#compacting;
    await this.#compact();
  }

  health(): CompactionHealth {
    return {
      compactions: this.#o.journal.stats().compactions,
      failures: this.#failures,
      last_error: this.#lastError,
      next_attempt_at: this.#failures > 0 ? new Date(this.#retryAt).toISOString() : null,
    };
  }

  #due(): boolean {
    const stats = this.#o.journal.stats();
    // Live: one snapshot per job plus the kept body lines of jobs that have not ended.
    const live = this.#o.jobs.size + stats.kept;
    return stats.records > 2 * live + this.#slack;
  }

  #compact(): Promise<void> {
    this.#compacting ??= (async () => {
      const dead = this.#deadBodyFiles.splice(0);
      try {
        // Called when the compaction's turn comes in the journal's writer: every earlier record is
        // durable and reflected in memory; a later one may be reflected too (replay is idempotent).
        await this.#o.journal.compact(() => this.#snapshot());
        this.#failures = 0;
        this.#lastError = null;
        this.#retryAt = 0;
        await Promise.all(dead.map((id) => this.#o.store.dropBody({ id, bodyFile: true })));
      } catch (err) {
        this.#deadBodyFiles.push(...dead);
        this.#failures++;
        this.#lastError = (err as Error).message;
        const backoff = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (this.#failures - 1));
        this.#retryAt = this.#now() + backoff;
        this.#log.error('compaction failed', { error: this.#lastError, failures: this.#failures, retry_in_ms: backoff });
      } finally {
        this.#compacting = null;
      }
    })();
    return this.#compacting;
  }

  *#snapshot(): Generator<JobRecord> {
    for (const job of this.#o.jobs.values()) {
      if (!this.#o.isPending(job.id)) yield { t: 'job', job };
    }
  }
}
