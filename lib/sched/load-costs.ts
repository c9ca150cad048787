// What a model load and a job cost, learned from measurement (SPEC §17, ADR 0025): load
// time per host and group (time from the switch to the new group's first answer, which
// spans Ollama's load_duration), and run time per group. Pure: numbers in, estimates out.

/** Weight of a new measurement in the moving average: recent loads matter, one outlier does not rule. */
const ALPHA = 0.3;
/** Before anything is measured: a load is assumed to cost a few seconds, a job one second. */
export const DEFAULT_LOAD_MS = 5_000;
export const DEFAULT_RUN_MS = 1_000;

interface Avg {
  value: number;
  n: number;
}

function blend(avg: Avg | undefined, ms: number): Avg {
  return avg === undefined ? { value: ms, n: 1 } : { value: avg.value + ALPHA * (ms - avg.value), n: avg.n + 1 };
}

/** A measured load time of a group on a host (moving average) and how many loads it saw. */
export interface LoadCost {
  readonly group: string;
  readonly loadMs: number;
  readonly loads: number;
}

export class LoadCosts {
  readonly #load = new Map<string, Map<string, Avg>>();
  readonly #run = new Map<string, Avg>();
  #allLoads: Avg | undefined;
  #allRuns: Avg | undefined;

  recordLoad(host: string, group: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    let byGroup = this.#load.get(host);
    if (!byGroup) this.#load.set(host, (byGroup = new Map()));
    byGroup.set(group, blend(byGroup.get(group), ms));
    this.#allLoads = blend(this.#allLoads, ms);
  }

  recordRun(group: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.#run.set(group, blend(this.#run.get(group), ms));
    this.#allRuns = blend(this.#allRuns, ms);
  }

  /** The measured load time of this group on this host, or undefined. */
  measuredLoad(host: string, group: string): number | undefined {
    return this.#load.get(host)?.get(group)?.value;
  }

  /**
   * Expected load time: measured here, else this host's average over its groups (a slow host is
   * slow for every model), else the average over all hosts, else DEFAULT_LOAD_MS.
   */
  loadMs(host: string, group: string): number {
    const byGroup = this.#load.get(host);
    const own = byGroup?.get(group);
    if (own) return own.value;
    if (byGroup && byGroup.size > 0) {
      let sum = 0;
      for (const a of byGroup.values()) sum += a.value;
      return sum / byGroup.size;
    }
    return this.#allLoads?.value ?? DEFAULT_LOAD_MS;
  }

  /** Expected run time of one job of the group. */
  runMs(group: string): number {
    return this.#run.get(group)?.value ?? this.#allRuns?.value ?? DEFAULT_RUN_MS;
  }

  /** Whether a run time was measured for the group (the switch rule acts only on measurements). */
  hasRun(group: string): boolean {
    return this.#run.has(group);
  }

  measured(host: string): LoadCost[] {
    const byGroup = this.#load.get(host);
    if (!byGroup) return [];
    return [...byGroup].map(([group, a]) => ({ group, loadMs: Math.round(a.value), loads: a.n }));
  }
}
