// ops/ owns what operators see: the /queue view, /metrics, `foreman status` text, the
// /ui page and the launchd plist. It reads sched/ state; nothing in the core reads ops/.
//
// The shape of GET /queue and the one function that builds it from the
// scheduler's plain state. The /ui page, `foreman status`, /metrics and the
// tests all read this one snake_case shape; the scheduler never sees it.

import { modelOfGroup } from '../sched/model-group.js';
import type { JobOrigin, SchedulerState } from '../sched/scheduler.js';

export type { JobOrigin };

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
  /** the lane it runs in: `local` or `cloud` (SPEC §12); absent in older snapshots */
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
  /** the host whose lane switched (several hosts, SPEC §17) */
  host?: string;
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
  lane?: string;
}

/** One lane: the local model's (SPEC §1) or the cloud models' (SPEC §12). */
export interface LaneView {
  name: string;
  kind: 'local' | 'cloud';
  parallel: number;
  running: number;
  waiting: number;
  /** the group the lane has loaded; null for none, and always for cloud */
  loaded_group: string | null;
}

/** One Ollama host (several hosts, SPEC §17): state, loaded model, running jobs, loads and load times. */
export interface HostView {
  name: string;
  url: string;
  state: 'up' | 'down';
  /** why it is down */
  error: string | null;
  version: string | null;
  /** removed by a hosts_file reload: finishing its running jobs, takes no new ones (present only then) */
  retiring?: true;
  parallel: number;
  running: number;
  loaded_group: string | null;
  loaded_model: string | null;
  /** model switches this host's lane made */
  switches: number;
  /** measured load time per group on this host (moving average) and how many loads it saw */
  loads: Array<{ group: string; load_ms: number; loads: number }>;
  /**
   * installed models not measured here yet: the load time the lane pick assumes until one is
   * (ADR 0025: from the same model on another host, this host's other models, any, or the default)
   */
  estimated_loads: Array<{ group: string; load_ms: number; from: 'model' | 'host' | 'any' | 'default' }>;
  /** models installed there; null until its /api/tags answered */
  models: string[] | null;
  embeddings: { in_flight: number; max: number; loaded: string | null };
}

export interface QueueSnapshot {
  at: string;
  upstream: string;
  /** the generation group foreman believes is loaded upstream, null when none */
  loaded_group: string | null;
  loaded_model: string | null;
  running: RunningView[];
  groups: GroupView[];
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
  /** with several hosts: each one (SPEC §17) */
  hosts?: HostView[];
  /**
   * The caller's key (SPEC §15). For a key that is not admin, `running` and `recent` hold its own
   * jobs only; groups and totals stay as aggregate counts.
   */
  key?: { name: string; admin: boolean; waiting: number; running: number };
  /**
   * The job store (SPEC §6, §16): whether the journal can write (when not, async submissions get 503
   * and queued async jobs wait) and the body bytes of waiting jobs against max_queue_bytes.
   */
  store?: { writable: boolean; reason: string | null; waiting_bytes: number; max_queue_bytes: number };
}

/** What the view needs besides the scheduler's state. */
export interface QueueViewContext {
  nowMs: number;
  upstream: string;
  maxQueue: number;
  parallel: number;
  embeddings: { active: number; max: number };
  /** the hosts as hosts/pool.ts knows them (several hosts) */
  hosts?: ReadonlyArray<Pick<HostView, 'name' | 'url' | 'state' | 'error' | 'version' | 'models' | 'embeddings'>>;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function buildQueueView(s: SchedulerState, c: QueueViewContext): QueueSnapshot {
  const running: RunningView[] = s.running.map((r) => ({
    id: r.job.id, model: r.job.model, group: r.job.group, origin: r.job.origin, kind: r.job.kind,
    priority: r.job.priority, key: r.job.key ?? null, started_at: iso(r.startedMs), elapsed_ms: c.nowMs - r.startedMs, queue_ms: r.queueMs,
    lane: r.lane,
  }));
  const groups: GroupView[] = s.groups.map((g) => ({
    group: g.group, model: modelOfGroup(g.group), count: g.count, head_priority: g.headPriority,
    head_wait_ms: g.headWaitMs, head_effective_priority: g.headEffectivePriority, lane: g.lane,
  }));
  const lanes: LaneView[] = s.lanes.map((l) => ({
    name: l.name, kind: l.kind, parallel: l.parallel, running: l.running, waiting: l.waiting, loaded_group: l.loadedGroup,
  }));
  return {
    at: iso(c.nowMs),
    upstream: c.upstream,
    loaded_group: s.loadedGroup,
    loaded_model: s.loadedGroup ? modelOfGroup(s.loadedGroup) : null,
    running,
    groups,
    lanes,
    totals: {
      waiting: s.waiting,
      running: running.length,
      max_queue: c.maxQueue,
      parallel: c.parallel,
      ...s.counts,
    },
    switches: s.switches.map((w) => ({ at: iso(w.atMs), from: w.from, to: w.to, load_ms: w.loadMs, ...(w.host ? { host: w.host } : {}) })),
    recent: s.recent.map((r) => ({
      id: r.id, model: r.model, origin: r.origin, key: r.key, state: r.state, queue_ms: r.queueMs, run_ms: r.runMs, finished_at: iso(r.finishedMs),
      lane: r.lane,
    })),
    embeddings: { in_flight: c.embeddings.active, max: c.embeddings.max },
    ...(s.hosts && c.hosts ? { hosts: hostViews(s, c) } : {}),
  };
}

function hostViews(s: SchedulerState, c: QueueViewContext): HostView[] {
  return s.hosts!.map((lane) => {
    const h = c.hosts!.find((x) => x.name === lane.name);
    return {
      name: lane.name, url: h?.url ?? '', state: lane.state, error: h?.error ?? null, version: h?.version ?? null,
      ...(lane.retiring ? { retiring: true as const } : {}),
      parallel: lane.parallel, running: lane.running, loaded_group: lane.loadedGroup,
      loaded_model: lane.loadedGroup ? modelOfGroup(lane.loadedGroup) : null,
      switches: lane.switches, loads: lane.loads.map((l) => ({ group: l.group, load_ms: l.loadMs, loads: l.loads })),
      estimated_loads: lane.estimates.map((e) => ({ group: e.group, load_ms: e.loadMs, from: e.source })), models: h?.models ?? null,
      embeddings: h?.embeddings ?? { in_flight: 0, max: 0, loaded: null },
    };
  });
}
