// What a model load and a job cost, learned from measurement (SPEC §17, ADR 0025): load
// time per host and group, and run time per group; before a (host, group) is measured, a
// prior from what is (ADR 0025 "Estimates before measurements"). Pure: numbers in, estimates
// out; the file that keeps them across restarts is hosts/load-times-file.ts.

/** Weight of a new measurement in the moving average: recent loads matter, one outlier does not rule. */
const ALPHA = 0.3;
/** With nothing measured at all: a load is assumed to cost a few seconds, a job one second. */
export const DEFAULT_LOAD_MS = 5_000;
export const DEFAULT_RUN_MS = 1_000;
/** Bounds: groups kept per host and run times kept (the least recently measured go first), hosts kept. */
export const GROUP_LIMIT = 256;
export const HOST_LIMIT = 64;

/** Where an expected load time comes from, best first. */
export type LoadSource = 'measured' | 'model' | 'host' | 'any' | 'default';

export interface LoadEstimate {
  readonly ms: number;
  readonly source: LoadSource;
}

interface Avg {
  value: number;
  n: number;
  /** the model's size on that host when it was measured (its /api/tags `size`), 0 when unknown */
  bytes: number;
}

function blend(avg: Avg | undefined, ms: number, bytes: number): Avg {
  return avg === undefined
    ? { value: ms, n: 1, bytes }
    : { value: avg.value + ALPHA * (ms - avg.value), n: avg.n + 1, bytes: bytes || avg.bytes };
}

/** A measured load time of a group on a host (moving average) and how many loads it saw. */
export interface LoadCost {
  readonly group: string;
  readonly loadMs: number;
  readonly loads: number;
}

/** What hosts/load-times-file.ts keeps: plain JSON, one version. */
export interface LoadCostsSnapshot {
  version: 1;
  loads: Record<string, Record<string, { ms: number; n: number; bytes?: number }>>;
  runs: Record<string, { ms: number; n: number }>;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Map.set that keeps at most `limit` keys, the least recently set dropped first. */
function setBounded<V>(map: Map<string, V>, key: string, value: V, limit: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > limit) map.delete(map.keys().next().value!);
}

export class LoadCosts {
  readonly #load = new Map<string, Map<string, Avg>>();
  readonly #run = new Map<string, Avg>();
  /** load estimates asked since the last load change (bounded: cleared on every such change and at hosts x GROUP_LIMIT) */
  readonly #cache = new Map<string, LoadEstimate>();
  #changes = 0;
  /** every job's run time, newest weighted most: the prior for a group with none of its own */
  #allRuns: Avg | undefined;

  /** Grows by one at every change: a saver compares it with what it wrote last. */
  get changes(): number {
    return this.#changes;
  }

  recordLoad(host: string, group: string, ms: number, bytes = 0): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    let byGroup = this.#load.get(host);
    if (!byGroup) setBounded(this.#load, host, (byGroup = new Map()), HOST_LIMIT);
    setBounded(byGroup, group, blend(byGroup.get(group), ms, isCount(bytes) ? bytes : 0), GROUP_LIMIT);
    this.#changed();
  }

  recordRun(group: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    setBounded(this.#run, group, blend(this.#run.get(group), ms, 0), GROUP_LIMIT);
    this.#allRuns = blend(this.#allRuns, ms, 0);
    // Load estimates read no run time: the cache stays (this runs at every job's end, just before the next pick).
    this.#changes++;
  }

  #changed(): void {
    this.#changes++;
    this.#cache.clear();
  }

  /** The measured load time of this group on this host, or undefined. */
  measuredLoad(host: string, group: string): number | undefined {
    return this.#load.get(host)?.get(group)?.value;
  }

  /** Expected load time of a group on a host (`bytes`: the model's size there, when known). */
  loadMs(host: string, group: string, bytes?: number): number {
    return this.estimate(host, group, bytes).ms;
  }

  /**
   * Expected load time, best source first (ADR 0025):
   * 1. measured here;
   * 2. the same group measured on other hosts, each scaled by how this host's loads compare with
   *    that host's (over groups both measured, else bytes per second of load, else 1);
   * 3. this host's other groups: the model's size over this host's bytes per second of load when
   *    sizes are known, else their average (a slow host is slow for every model);
   * 4. anything measured: the same, over all hosts;
   * 5. DEFAULT_LOAD_MS.
   */
  estimate(host: string, group: string, bytes?: number): LoadEstimate {
    const size = isCount(bytes) ? bytes : 0;
    const key = `${host}\n${group}\n${size}`;
    let e = this.#cache.get(key);
    if (e === undefined) {
      e = this.#estimate(host, group, size);
      if (this.#cache.size >= HOST_LIMIT * GROUP_LIMIT) this.#cache.clear();
      this.#cache.set(key, e);
    }
    return e;
  }

  #estimate(host: string, group: string, size: number): LoadEstimate {
    const mine = this.#load.get(host);
    const own = mine?.get(group);
    if (own) return { ms: own.value, source: 'measured' };
    let sum = 0;
    let n = 0;
    for (const [other, byGroup] of this.#load) {
      const there = other === host ? undefined : byGroup.get(group);
      if (!there) continue;
      sum += there.value * (mine ? speedRatio(mine, byGroup) : 1);
      n++;
    }
    if (n > 0) return { ms: sum / n, source: 'model' };
    if (mine && mine.size > 0) return { ms: fromGroups([mine], size), source: 'host' };
    if (this.#load.size > 0) return { ms: fromGroups([...this.#load.values()], size), source: 'any' };
    return { ms: DEFAULT_LOAD_MS, source: 'default' };
  }

  /** Expected run time of one job of the group: its own jobs on any host, else recent jobs of other groups. */
  runMs(group: string): number {
    const own = this.#run.get(group);
    if (own) return own.value;
    // Measured: recent jobs of any model (bench: this beat a mean over the groups' own averages,
    // 1.29x against 1.38x, since an early outlier of one group stays in that mean).
    return this.#allRuns?.value ?? DEFAULT_RUN_MS;
  }

  /** Whether a run time was measured for the group. */
  hasRun(group: string): boolean {
    return this.#run.has(group);
  }

  measured(host: string): LoadCost[] {
    const byGroup = this.#load.get(host);
    if (!byGroup) return [];
    return [...byGroup].map(([group, a]) => ({ group, loadMs: Math.round(a.value), loads: a.n }));
  }

  /** Everything measured, as plain JSON (hosts/load-times-file.ts writes it). */
  snapshot(): LoadCostsSnapshot {
    const loads: LoadCostsSnapshot['loads'] = {};
    for (const [host, byGroup] of this.#load) {
      const out: LoadCostsSnapshot['loads'][string] = (loads[host] = {});
      for (const [group, a] of byGroup) out[group] = { ms: Math.round(a.value), n: a.n, ...(a.bytes > 0 ? { bytes: a.bytes } : {}) };
    }
    const runs: LoadCostsSnapshot['runs'] = {};
    for (const [group, a] of this.#run) runs[group] = { ms: Math.round(a.value), n: a.n };
    return { version: 1, loads, runs };
  }

  /**
   * Takes measurements kept by an earlier run (a snapshot read back). Entries that do not look
   * like one are skipped; the bounds hold. Throws only when `data` is not a snapshot at all.
   * Returns how many entries were taken.
   */
  restore(data: unknown): number {
    if (!isRecord(data) || data.version !== 1 || !isRecord(data.loads) || !isRecord(data.runs)) {
      throw new Error('not a load-times snapshot (version 1)');
    }
    let taken = 0;
    for (const [host, byGroup] of Object.entries(data.loads)) {
      if (!isRecord(byGroup)) continue;
      for (const [group, v] of Object.entries(byGroup)) {
        if (!isRecord(v) || !isCount(v.ms) || !isCount(v.n) || v.n < 1) continue;
        let map = this.#load.get(host);
        if (!map) setBounded(this.#load, host, (map = new Map()), HOST_LIMIT);
        setBounded(map, group, { value: v.ms, n: Math.floor(v.n), bytes: isCount(v.bytes) ? v.bytes : 0 }, GROUP_LIMIT);
        taken++;
      }
    }
    for (const [group, v] of Object.entries(data.runs)) {
      if (!isRecord(v) || !isCount(v.ms) || !isCount(v.n) || v.n < 1) continue;
      setBounded(this.#run, group, { value: v.ms, n: Math.floor(v.n), bytes: 0 }, GROUP_LIMIT);
      taken++;
    }
    this.#cache.clear();
    return taken;
  }
}

/**
 * How this host's loads compare with another's: over the groups both measured, the ratio of
 * their sums; else of their bytes per second of load (both need sizes); else 1.
 */
function speedRatio(mine: Map<string, Avg>, theirs: Map<string, Avg>): number {
  let a = 0;
  let b = 0;
  for (const [group, m] of mine) {
    const t = theirs.get(group);
    if (t) {
      a += m.value;
      b += t.value;
    }
  }
  if (a > 0 && b > 0) return a / b;
  const rm = rate([mine]);
  const rt = rate([theirs]);
  return rm > 0 && rt > 0 ? rt / rm : 1;
}

/** Bytes per millisecond of load over measurements with a known size; 0 when none. */
function rate(maps: Iterable<Map<string, Avg>>): number {
  let bytes = 0;
  let ms = 0;
  for (const map of maps) {
    for (const a of map.values()) {
      if (a.bytes > 0 && a.value > 0) {
        bytes += a.bytes;
        ms += a.value;
      }
    }
  }
  return ms > 0 ? bytes / ms : 0;
}

/** A load from other groups' measurements: the size over their rate when both are known, else their mean. */
function fromGroups(maps: Array<Map<string, Avg>>, size: number): number {
  const r = size > 0 ? rate(maps) : 0;
  if (r > 0) return size / r;
  let sum = 0;
  let n = 0;
  for (const map of maps) {
    for (const a of map.values()) {
      sum += a.value;
      n++;
    }
  }
  return sum / n;
}
