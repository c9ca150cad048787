// The shape of GET /queue: what the scheduler and jobs know right now, as plain
// JSON. The /ui page, `foreman status` and the tests all read this one shape.

export type JobOrigin = 'sync' | 'async';

export interface RunningView {
  id: string;
  model: string;
  group: string;
  origin: JobOrigin;
  /** chat | generate | openai-chat | openai-completion */
  kind: string;
  priority: number;
  /** the key that made it (SPEC §15) */
  key?: string | null;
  started_at: string;
  elapsed_ms: number;
  queue_ms: number;
}

export interface GroupView {
  /** model plus load-relevant options, e.g. `llama3.2` or `llama3.2 num_ctx=8192` */
  group: string;
  model: string;
  count: number;
  head_priority: number;
  head_wait_ms: number;
  head_effective_priority: number;
}

export interface SwitchView {
  at: string;
  from: string | null;
  to: string;
  /** time from the switch decision until the first job of the new group got upstream's headers */
  load_ms: number | null;
}

export interface RecentJobView {
  id: string;
  model: string;
  origin: JobOrigin;
  key?: string | null;
  state: 'completed' | 'failed' | 'cancelled' | 'requeued';
  queue_ms: number;
  run_ms: number;
  finished_at: string;
}

export interface QueueSnapshot {
  at: string;
  upstream: string;
  /** the generation group foreman believes is loaded upstream, null when none */
  loaded_group: string | null;
  loaded_model: string | null;
  running: RunningView[];
  groups: GroupView[];
  totals: {
    waiting: number;
    running: number;
    max_queue: number;
    parallel: number;
    completed: number;
    failed: number;
    cancelled: number;
    /** async runs put back in the queue (shutdown, upstream unreachable) */
    requeued: number;
    switches: number;
  };
  switches: SwitchView[];
  recent: RecentJobView[];
  embeddings: { in_flight: number; max: number };
  /**
   * The caller's key (SPEC §15). For a key that is not admin, `running` and `recent` hold its own
   * jobs only; groups and totals stay as aggregate counts.
   */
  key?: { name: string; admin: boolean; waiting: number; running: number };
}
