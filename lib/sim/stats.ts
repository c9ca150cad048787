// Counters behind GET /sim/stats and Sim.stats(). Plain bookkeeping: callers
// decide what counts; this file only adds up and copies out.

import type { SimStats } from './types.js';

type LocalStats = Omit<SimStats, 'cloud' | 'blobs'>;

type Counter = Record<string, number>;

export class StatsBook {
  loads: Counter = {};
  evictions: Counter = {};
  unloads: Counter = {};
  requests: Counter = {};
  loadOrder: string[] = [];
  aborted = 0;
  maxConcurrent = 0;
  // Live gauges: resetting the counters must not make them lie.
  active = 0;
  generating = 0;
  /** writes waiting for 'drain' now, and waits begun (never reset: a test compares two readings) */
  readonly backpressure = { waiting: 0, waits: 0 };

  countLoad(name: string): void {
    bump(this.loads, name);
    this.loadOrder.push(name);
  }

  countEviction(name: string): void {
    bump(this.evictions, name);
  }

  countUnload(name: string): void {
    bump(this.unloads, name);
  }

  countRequest(name: string): void {
    bump(this.requests, name);
  }

  startGenerating(): void {
    this.generating++;
    if (this.generating > this.maxConcurrent) this.maxConcurrent = this.generating;
  }

  stopGenerating(): void {
    this.generating--;
  }

  reset(): void {
    this.loads = {};
    this.evictions = {};
    this.unloads = {};
    this.requests = {};
    this.loadOrder = [];
    this.aborted = 0;
    this.maxConcurrent = this.generating;
  }

  snapshot(loaded: string[]): LocalStats {
    return {
      loads: { ...this.loads },
      evictions: { ...this.evictions },
      unloads: { ...this.unloads },
      requests: { ...this.requests },
      aborted: this.aborted,
      active: this.active,
      maxConcurrent: this.maxConcurrent,
      loaded,
      loadOrder: [...this.loadOrder],
      backpressure: { ...this.backpressure },
    };
  }
}

function bump(counter: Counter, name: string): void {
  counter[name] = (counter[name] ?? 0) + 1;
}
