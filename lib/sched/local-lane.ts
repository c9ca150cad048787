// The local lane: the drain-by-model rule of SPEC §1 on one Ollama. At most `parallel`
// jobs, all of one group; a switch waits for the old group's jobs, then unloads the old
// model; residency comes from /api/ps. It decides what starts; the scheduler runs it.

import { createDrainQueue, type DrainQueue } from './queue.js';
import { modelKey, modelOfGroup, sameModel } from './model-group.js';
import { isCloudModel } from './model-ref.js';
import type { Logger } from '../log.js';
import type { Upstream } from '../upstream.js';
import type { FinishState, Lane, LaneEntry, LaneState, SchedulerJob } from './lane.js';

/** A model switch as the lane saw it; loadMs stays null until the new group's first answer. */
export interface SwitchRecord {
  readonly atMs: number;
  readonly from: string | null;
  readonly to: string;
  loadMs: number | null;
  /** the host whose lane switched, with several hosts (SPEC §17) */
  readonly host?: string;
}

export interface LocalLaneOptions {
  name?: string;
  parallel: number;
  agingMs: number;
  unloadOnSwitch: boolean;
  upstream: Pick<Upstream, 'unload' | 'loadedModels' | 'capabilities' | 'exists'>;
  log: Logger;
  now: () => number;
  /** Called when the lane may start work it refused before (an unload ended). */
  wake: () => void;
  switched?: (from: string | null, to: string) => void;
  /** Shared with other lanes of the same kind (several hosts); its own otherwise. */
  queue?: DrainQueue<LaneEntry>;
  /** Time a switch's upstream calls may take together (default 10 s). */
  switchBudgetMs?: number;
}

const SWITCH_LIMIT = 20;
/** The whole of a switch's upstream work (the /api/show check and the unload) shares this budget: picking waits on it. */
const SWITCH_BUDGET_MS = 10_000;

export class LocalLane implements Lane {
  readonly name: string;
  readonly kind = 'local' as const;
  readonly parallel: number;
  readonly queue: DrainQueue<LaneEntry>;
  readonly #o: LocalLaneOptions;
  #active = 0;
  #loadedGroup: string | null = null;
  #switching = false;
  /** After an unload: the group it unloaded and the group it unloaded for, so the next start records the switch. */
  #unloadedFrom: { group: string; target: string } | null = null;
  #pendingSwitch: SwitchRecord | null = null;
  readonly #switches: SwitchRecord[] = [];
  #switchCount = 0;
  readonly #embeddingModels = new Map<string, boolean>();

  constructor(options: LocalLaneOptions) {
    this.#o = options;
    this.name = options.name ?? 'local';
    this.parallel = options.parallel;
    this.queue = options.queue ?? createDrainQueue<LaneEntry>({ agingMs: options.agingMs });
  }

  get active(): number {
    return this.#active;
  }
  get loadedGroup(): string | null {
    return this.#loadedGroup;
  }
  get preferredGroup(): string | null {
    return this.#loadedGroup;
  }
  get switchCount(): number {
    return this.#switchCount;
  }
  switches(): SwitchRecord[] {
    return this.#switches.map((s) => ({ ...s }));
  }

  accepts(job: SchedulerJob): boolean {
    return !isCloudModel(job.model);
  }

  next(now: number): LaneEntry | null {
    if (this.#switching || this.#active >= this.parallel) return null;
    if (this.#unloadedFrom) {
      // The switch is decided: start the target group's head, never the group just unloaded (a job of it that
      // arrived meanwhile would load it straight back). Only if the target emptied does the pick rule choose again.
      const { group, target } = this.#unloadedFrom;
      let next = this.queue.peekGroup(target, now);
      if (!next) {
        const other = this.queue.groups(now, null).find((g) => g.group !== group && this.queue.peekGroup(g.group, now));
        next = this.queue.peekGroup(other?.group ?? group, now);
      }
      if (!next) return null;
      const from = group;
      this.#unloadedFrom = null;
      this.#recordSwitch(from, next.group, now);
      this.queue.take(next.id);
      return next;
    }
    const next = this.queue.peek(now, this.#loadedGroup);
    if (!next) return null;
    if (next.group !== this.#loadedGroup) {
      // A switch: wait until the old group's running jobs end (SPEC §1).
      if (this.#active > 0) return null;
      if (this.#loadedGroup !== null && this.#o.unloadOnSwitch) {
        void this.#unload(this.#loadedGroup, next.group);
        return null;
      }
      this.#recordSwitch(this.#loadedGroup, next.group, now);
    }
    this.queue.take(next.id);
    return next;
  }

  started(_entry: LaneEntry, _now: number): () => void {
    this.#active++;
    const pending = this.#pendingSwitch;
    return () => {
      if (pending && this.#pendingSwitch === pending) {
        pending.loadMs = this.#o.now() - pending.atMs;
        this.#pendingSwitch = null;
      }
    };
  }

  finished(_entry: LaneEntry, _state: FinishState): void {
    this.#active--;
  }

  state(): LaneState {
    return {
      name: this.name, kind: this.kind, parallel: this.parallel, running: this.#active,
      waiting: this.queue.size, loadedGroup: this.#loadedGroup,
    };
  }

  /** Reads upstream /api/ps to learn which generation model is loaded (embedding models have their own slot). */
  async refreshResidency(signal?: AbortSignal): Promise<void> {
    try {
      const models = await this.#o.upstream.loadedModels(signal);
      const names = models.map((m) => m.model || m.name);
      const loaded = this.#loadedGroup;
      if (loaded && names.some((n) => sameModel(n, modelOfGroup(loaded)))) return;
      let found: string | null = null;
      for (const name of names) {
        if (!(await this.#isEmbedding(name, signal))) {
          found = name;
          break;
        }
      }
      if (this.#active === 0 && !this.#switching && !this.#unloadedFrom) this.#loadedGroup = found === null ? null : modelKey(found);
      this.#o.log.info('residency', { loaded: found ?? 'none' });
    } catch (err) {
      this.#o.log.warn('residency unknown', { error: (err as Error).message });
    }
  }

  /** Whether this lane has the model loaded now. */
  hasLoaded(model: string): boolean {
    return this.#loadedGroup !== null && sameModel(modelOfGroup(this.#loadedGroup), model);
  }

  /** Forget the loaded model (e.g. a caller unloaded it); the next pick has no tie to prefer. */
  markUnloaded(model: string): void {
    if (this.#loadedGroup && sameModel(modelOfGroup(this.#loadedGroup), model) && this.#active === 0) {
      this.#loadedGroup = null;
    }
  }

  async #isEmbedding(model: string, signal?: AbortSignal): Promise<boolean> {
    let known = this.#embeddingModels.get(model);
    if (known === undefined) {
      known = (await this.#o.upstream.capabilities(model, signal)).includes('embedding');
      if (this.#embeddingModels.size > 1000) this.#embeddingModels.clear();
      this.#embeddingModels.set(model, known);
    }
    return known;
  }

  async #unload(group: string, target: string): Promise<void> {
    this.#switching = true;
    const model = modelOfGroup(group);
    // One budget for both calls: a hanging upstream holds picking for at most the budget, not twice a minute.
    const budget = AbortSignal.timeout(this.#o.switchBudgetMs ?? SWITCH_BUDGET_MS);
    try {
      // A request for a model upstream does not have (a typo, say) must not cost the loaded model:
      // it will fail with 404 at once, and the loaded model stays for the jobs after it.
      const known = await this.#o.upstream.exists(modelOfGroup(target), budget).catch(() => true);
      if (known) await this.#o.upstream.unload(model, budget);
      else this.#o.log.info('switch without unload', { model, unknown: modelOfGroup(target) });
    } catch (err) {
      this.#o.log.warn('unload failed', { model, error: (err as Error).message });
    }
    this.#switching = false;
    this.#unloadedFrom = { group, target };
    this.#loadedGroup = null;
    this.#o.wake();
  }

  #recordSwitch(from: string | null, to: string, now: number): void {
    this.#loadedGroup = to;
    this.#switchCount++;
    const record: SwitchRecord = { atMs: now, from, to, loadMs: null };
    this.#switches.unshift(record);
    if (this.#switches.length > SWITCH_LIMIT) this.#switches.pop();
    this.#pendingSwitch = record;
    this.#o.log.info('model switch', { from: from ?? 'none', to });
    this.#o.switched?.(from, to);
  }
}
