// A lane: a set of running slots fed from a drain queue by its own pick rule. The
// scheduler owns the jobs (start, finish, cancel, books); a lane only decides which
// waiting job starts next and what it costs (a model switch, or nothing). SPEC §1, §12.

import type { DrainQueue, QueueItem } from './queue.js';
import type { Upstream } from '../upstream.js';

export type JobOrigin = 'sync' | 'async';

export interface RunContext {
  readonly signal: AbortSignal;
  readonly queueMs: number;
  /** The job calls this when upstream answered: the end of a model load, if this job caused one. */
  upstreamAnswered(): void;
  /**
   * Ollama's `load_duration` of this run in ms (its final chunk), when it had one: the exact
   * load time of a switch this job paid, preferred to the time to the first answer (ADR 0025).
   */
  loadReported?(ms: number): void;
  /** The host this run must use, with several hosts (SPEC §17); absent: the one upstream. */
  readonly upstream?: Upstream;
  /** That host's name (logs, the X-Foreman-Host response header). */
  readonly host?: string;
  /** That host answered 404 for the model: its catalogue is read again. */
  modelMissing?(): void;
  /**
   * With several hosts: the host could not be reached before any byte of this run. Marks it down;
   * true when the job goes back to the queue for another host (the run then returns 'requeued'
   * and answers nothing), false when it must fail as with one host. An async job is put back by
   * its owner, not by the scheduler (its 'queued' must be durable first).
   */
  failover?(reason: string): boolean;
}

/** How a run ended; 'requeued' is an async job put back to run again (shutdown, unreachable upstream, 429). */
export type FinishState = 'completed' | 'failed' | 'cancelled' | 'requeued';

export interface SchedulerJob {
  readonly id: string;
  readonly model: string;
  readonly group: string;
  readonly priority: number;
  readonly origin: JobOrigin;
  readonly kind: string;
  /** The name of the key that made it (SPEC §15): fair share, caps and usage are per key. */
  readonly key?: string | null;
  /** An agent session (session-id, x-session-id, x-session-affinity, x-claude-code-session-id): its turns stay on one host (SPEC §17). */
  readonly session?: string | null;
  /** request bytes the job holds while it waits (SPEC §16: counted against max_queue_bytes) */
  readonly bytes?: number;
  /** Runs the job to its end; the returned state is what the books record. */
  run(ctx: RunContext): Promise<FinishState>;
  /** The job left the queue without running. */
  dropped(reason: 'cancelled' | 'shutdown'): void;
}

export interface LaneEntry extends QueueItem {
  readonly owner: string;
  readonly job: SchedulerJob;
}

export type LaneKind = 'local' | 'cloud';

/** A lane as plain data (ops/queue-view.ts shows it). */
export interface LaneState {
  readonly name: string;
  readonly kind: LaneKind;
  readonly parallel: number;
  readonly running: number;
  readonly waiting: number;
  /** the group this lane has loaded (local lanes); cloud lanes load nothing */
  readonly loadedGroup: string | null;
}

export interface Lane {
  readonly name: string;
  readonly kind: LaneKind;
  readonly parallel: number;
  /** Where this lane's waiting jobs are; several lanes may share one queue. */
  readonly queue: DrainQueue<LaneEntry>;
  /** Jobs of this lane working now. */
  readonly active: number;
  /** The group whose ties this lane's queue breaks in its favour (the loaded one), if any. */
  readonly preferredGroup: string | null;
  /** Whether this lane runs the job (the scheduler asks the lanes in order). */
  accepts(job: SchedulerJob): boolean;
  /**
   * The entry to start now, taken from the queue (queue.take: fair share charges its owner), or null when the lane must wait (full,
   * draining before a switch, unloading, or nothing waiting). A lane that returns null while
   * work waits calls its wake callback when that may have changed.
   */
  next(now: number): LaneEntry | null;
  /** A job of this lane started; the returned callback runs when upstream first answers it. */
  started(entry: LaneEntry, now: number): () => void;
  /** A job of this lane ended (however); true: put the entry back in the queue (it failed over). */
  finished(entry: LaneEntry, state: FinishState): boolean | void;
  /** What a run on this lane gets besides signal and timing (several hosts: the host's client). */
  contextFor?(entry: LaneEntry): Pick<RunContext, 'upstream' | 'failover' | 'host' | 'modelMissing' | 'loadReported'>;
  state(): LaneState;
}
