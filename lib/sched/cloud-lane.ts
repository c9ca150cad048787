// The cloud lane (SPEC §12): models that run on ollama.com through the local Ollama load
// nothing here, so any group may run beside any other. At most `parallel` at once, picked
// by the usual priorities and aging; never a switch, an unload or a residency change.

import { createDrainQueue, type DrainQueue } from './queue.js';
import { isCloudModel } from './model-ref.js';
import type { FinishState, Lane, LaneEntry, LaneState, SchedulerJob } from './lane.js';

export interface CloudLaneOptions {
  name?: string;
  parallel: number;
  agingMs: number;
  /** Shared with the scheduler's fair-share settings; the lane's own otherwise. */
  queue?: DrainQueue<LaneEntry>;
}

export class CloudLane implements Lane {
  readonly name: string;
  readonly kind = 'cloud' as const;
  readonly parallel: number;
  readonly queue: DrainQueue<LaneEntry>;
  /** Nothing is loaded, so no group wins ties: arrival decides. */
  readonly preferredGroup = null;
  #active = 0;

  constructor(options: CloudLaneOptions) {
    this.name = options.name ?? 'cloud';
    this.parallel = options.parallel;
    this.queue = options.queue ?? createDrainQueue<LaneEntry>({ agingMs: options.agingMs });
  }

  get active(): number {
    return this.#active;
  }

  accepts(job: SchedulerJob): boolean {
    return isCloudModel(job.model);
  }

  next(now: number): LaneEntry | null {
    if (this.#active >= this.parallel) return null;
    return this.queue.pick(now, null) ?? null;
  }

  started(): () => void {
    this.#active++;
    return () => {};
  }

  finished(_entry: LaneEntry, _state: FinishState): void {
    this.#active--;
  }

  state(): LaneState {
    return { name: this.name, kind: this.kind, parallel: this.parallel, running: this.#active, waiting: this.queue.size, loadedGroup: null };
  }
}
