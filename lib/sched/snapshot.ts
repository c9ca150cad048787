// The shape of GET /queue: what the scheduler and jobs know right now, as plain
// JSON. The /ui page, `foreman status` and the tests all read this one shape.

import type { LaneView } from './lane.js';

export type { LaneView };

export type JobOrigin = 'sync' | 'async';

export interface RunningView {
  id: string;
  model: string;
  group: string;
  origin: JobOrigin;
  /** chat | generate | openai-chat | openai-completion */
  kind: string;
  priority: number;
  started_at: string;
  elapsed_ms: number;
  queue_ms: number;
  /** the lane it runs in: `local` or `cloud` */
  lane?: string;
}

export interface GroupView {
  /** model plus load-relevant options, e.g. `llama3.2` or `llama3.2 num_ctx=8192` */
  group: string;
  model: string;
  count: number;
  head_priority: number;
  head_wait_ms: number;
  head_effective_priority: number;
  /** the lane whose queue holds it */
  lane?: string;
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
  state: 'completed' | 'failed' | 'cancelled' | 'requeued';
  queue_ms: number;
  run_ms: number;
  finished_at: string;
  lane?: string;
}

export interface QueueSnapshot {
  at: string;
  upstream: string;
  /** the generation group foreman believes is loaded upstream, null when none */
  loaded_group: string | null;
  loaded_model: string | null;
  running: RunningView[];
  groups: GroupView[];
  /** each lane: the local model's (SPEC §1) and the cloud models' (SPEC §12) */
  lanes: LaneView[];
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
}
