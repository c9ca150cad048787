// Ollama's scheduler (server/sched.go, ollama-wire.md §4) cut down to what
// foreman is benchmarked against: one generation slot and one embedding slot,
// a fast path for the loaded model, and ONE global FIFO of requests waiting
// for a load, served one at a time (head-of-line blocking included).
// It knows models and timers, not HTTP.

import { sleep } from './clock.js';
import type { ModelEntry } from './catalog.js';
import { Semaphore } from './semaphore.js';
import type { StatsBook } from './stats.js';
import type { Settings } from './types.js';
import { BUSY_MESSAGE, SimError } from './wire.js';

/** What a request asks of the scheduler: which runner options, how long to stay. */
export interface LoadSpec {
  /** Load-relevant options (num_ctx, num_gpu, ...) serialised; a difference forces a reload. */
  readonly key: string;
  readonly numCtx: number;
  /** ms; Infinity = forever; 0 = unload as soon as idle. */
  readonly keepAliveMs: number;
}

type RunnerState = 'loading' | 'ready' | 'unloading';

export class Runner {
  readonly entry: ModelEntry;
  readonly key: string;
  readonly numCtx: number;
  readonly sem: Semaphore;
  state: RunnerState = 'loading';
  refs = 0;
  keepAliveMs: number;
  idleSinceMs = Date.now();
  idleTimer: NodeJS.Timeout | undefined;
  idleWaiters: Array<() => void> = [];
  unloaded: Promise<void> | undefined;

  constructor(entry: ModelEntry, spec: LoadSpec, parallel: number) {
    this.entry = entry;
    this.key = spec.key;
    this.numCtx = spec.numCtx;
    this.keepAliveMs = spec.keepAliveMs;
    // "Embedding models are always loaded with parallelism 1" (ollama-wire.md §1c).
    this.sem = new Semaphore(entry.kind === 'embedding' ? 1 : parallel);
  }
}

export interface Lease {
  readonly runner: Runner;
  release(): void;
}

interface Pending {
  entry: ModelEntry;
  spec: LoadSpec;
  signal: AbortSignal;
  resolve: (lease: Lease | null) => void;
  reject: (err: unknown) => void;
}

export class Residency {
  #settings: Settings;
  #stats: StatsBook;
  #closing = new AbortController();
  #slots: Record<ModelEntry['kind'], Runner | undefined> = { generate: undefined, embedding: undefined };
  #pending: Array<Pending | undefined> = [];
  #head = 0;
  #processing = false;

  constructor(settings: Settings, stats: StatsBook) {
    this.#settings = settings;
    this.#stats = stats;
  }

  /**
   * A reference on a ready runner for `entry`, or null when the client left
   * while waiting. Throws the 503 busy error when too many wait for a load.
   */
  schedule(entry: ModelEntry, spec: LoadSpec, signal: AbortSignal): Promise<Lease | null> {
    const current = this.#slots[entry.kind];
    if (current && current.state === 'ready' && matches(current, entry, spec)) {
      // Fast path: never enters the queue, so never counts against maxQueue.
      return Promise.resolve(this.#use(current, spec));
    }
    if (this.#closing.signal.aborted) return Promise.reject(new SimError(503, 'simulator is closing'));
    // Go's buffered channel: an idle processor takes the request at once, so
    // only requests queued behind the one being loaded count (maxQueue 0 works).
    if (this.#processing && this.#pending.length - this.#head >= this.#settings.maxQueue) {
      return Promise.reject(new SimError(503, BUSY_MESSAGE));
    }
    return new Promise((resolve, reject) => {
      this.#pending.push({ entry, spec, signal, resolve, reject });
      // Runs synchronously up to its first await, so the head is dequeued now
      // and only requests behind it count against maxQueue, as with Go's channel.
      if (!this.#processing) void this.#process();
    });
  }

  /** keep_alive:0 with no prompt: unload now if idle, else when idle (expireRunner). */
  expire(entry: ModelEntry): void {
    const runner = this.#slots[entry.kind];
    if (!runner || runner.entry.name !== entry.name || runner.state === 'unloading') return;
    runner.keepAliveMs = 0;
    if (runner.state === 'ready' && runner.refs === 0) this.#unload(runner, 'unload');
  }

  /** Unloads every model at once (POST /sim/reset); in-flight requests finish on detached runners. */
  unloadAll(): void {
    for (const kind of ['generate', 'embedding'] as const) {
      const runner = this.#slots[kind];
      if (!runner) continue;
      this.#slots[kind] = undefined;
      this.#detach(runner);
    }
  }

  /** Names of the resident (loaded or loading) models. */
  loadedNames(): string[] {
    const names: string[] = [];
    for (const runner of [this.#slots.generate, this.#slots.embedding]) {
      if (runner && runner.state !== 'unloading') names.push(runner.entry.name);
    }
    return names;
  }

  /** Resident runners for /api/ps, with their expiry in epoch ms (Infinity = never). */
  running(): Array<{ runner: Runner; expiresMs: number }> {
    const now = Date.now();
    const out: Array<{ runner: Runner; expiresMs: number }> = [];
    for (const runner of [this.#slots.generate, this.#slots.embedding]) {
      if (!runner || runner.state === 'unloading') continue;
      const from = runner.state === 'ready' && runner.refs === 0 ? runner.idleSinceMs : now;
      out.push({ runner, expiresMs: from + runner.keepAliveMs });
    }
    return out.sort((a, b) => b.expiresMs - a.expiresMs);
  }

  close(): void {
    this.#closing.abort();
    this.unloadAll();
    const closed = new SimError(503, 'simulator is closing');
    for (let i = this.#head; i < this.#pending.length; i++) this.#pending[i]?.reject(closed);
    this.#pending = [];
    this.#head = 0;
  }

  #use(runner: Runner, spec: LoadSpec): Lease {
    runner.refs++;
    runner.keepAliveMs = spec.keepAliveMs; // each request resets the session duration
    if (runner.idleTimer) {
      clearTimeout(runner.idleTimer);
      runner.idleTimer = undefined;
    }
    let released = false;
    return {
      runner,
      release: () => {
        if (released) return;
        released = true;
        this.#release(runner);
      },
    };
  }

  #release(runner: Runner): void {
    runner.refs--;
    if (runner.refs > 0) return;
    runner.idleSinceMs = Date.now();
    if (runner.idleWaiters.length > 0) {
      // An eviction is waiting for this runner to drain; it takes over from here.
      flushWaiters(runner);
      return;
    }
    if (this.#slots[runner.entry.kind] !== runner || runner.state !== 'ready') return;
    if (runner.keepAliveMs <= 0) {
      this.#unload(runner, 'unload');
      return;
    }
    this.#armIdle(runner);
  }

  #armIdle(runner: Runner): void {
    // Beyond setTimeout's range (about 24.8 days) is as good as forever.
    if (!Number.isFinite(runner.keepAliveMs) || runner.keepAliveMs > 2 ** 31 - 1) return;
    runner.idleTimer = setTimeout(() => {
      runner.idleTimer = undefined;
      if (runner.refs === 0 && this.#slots[runner.entry.kind] === runner) this.#unload(runner, 'expire');
    }, runner.keepAliveMs);
    runner.idleTimer.unref();
  }

  /** Synchronous when unloadMs is 0, so /api/ps reflects it at once. */
  #unload(runner: Runner, reason: 'evict' | 'unload' | 'expire'): Promise<void> | undefined {
    if (runner.state === 'unloading') return runner.unloaded;
    if (reason === 'evict') this.#stats.countEviction(runner.entry.name);
    if (reason === 'unload') this.#stats.countUnload(runner.entry.name);
    this.#detach(runner);
    const finish = () => {
      if (this.#slots[runner.entry.kind] === runner) this.#slots[runner.entry.kind] = undefined;
    };
    if (this.#settings.unloadMs <= 0) {
      finish();
      return undefined;
    }
    runner.unloaded = sleep(this.#settings.unloadMs, this.#closing.signal).then(finish);
    return runner.unloaded;
  }

  #detach(runner: Runner): void {
    runner.state = 'unloading';
    if (runner.idleTimer) clearTimeout(runner.idleTimer);
    runner.idleTimer = undefined;
    flushWaiters(runner);
  }

  async #process(): Promise<void> {
    this.#processing = true;
    try {
      while (this.#head < this.#pending.length) {
        const next = this.#pending[this.#head];
        this.#pending[this.#head++] = undefined;
        if (this.#head === this.#pending.length || (this.#head > 1024 && this.#head * 2 > this.#pending.length)) {
          this.#pending = this.#pending.slice(this.#head); // consumed slots never pile up
          this.#head = 0;
        }
        if (!next) continue;
        if (next.signal.aborted) {
          next.resolve(null); // the client left while queued: skipped, as Ollama does
          continue;
        }
        try {
          next.resolve(await this.#obtain(next));
        } catch (err) {
          next.reject(err);
        }
      }
    } finally {
      this.#processing = false;
    }
  }

  // One pending request: evict whatever holds the slot (waiting for its
  // in-flight requests; nothing is pre-empted), then load, then hand over.
  async #obtain(p: Pending): Promise<Lease | null> {
    const kind = p.entry.kind;
    for (;;) {
      if (this.#closing.signal.aborted) throw new SimError(503, 'simulator is closing');
      const current = this.#slots[kind];
      if (current) {
        if (current.state === 'ready' && matches(current, p.entry, p.spec)) return this.#use(current, p.spec);
        if (current.state === 'unloading') {
          await current.unloaded;
          continue;
        }
        if (current.refs > 0) {
          // Fast-path requests for the victim may keep arriving and delay this, as in Ollama.
          await new Promise<void>((resolve) => current.idleWaiters.push(resolve));
          continue;
        }
        await this.#unload(current, 'evict');
        continue;
      }
      if (p.signal.aborted) return null;
      const runner = new Runner(p.entry, p.spec, this.#settings.numParallel);
      this.#slots[kind] = runner;
      this.#stats.countLoad(p.entry.name);
      const loaded = await sleep(p.entry.loadMs ?? this.#settings.loadMs, this.#closing.signal);
      if (!loaded || this.#slots[kind] !== runner) {
        if (this.#slots[kind] === runner) this.#slots[kind] = undefined;
        continue; // closed or reset during the load
      }
      runner.state = 'ready';
      runner.idleSinceMs = Date.now();
      if (!p.signal.aborted) return this.#use(runner, p.spec);
      // The load completes even though its client left; the model stays resident.
      if (runner.keepAliveMs <= 0) this.#unload(runner, 'unload');
      else this.#armIdle(runner);
      return null;
    }
  }
}

function matches(runner: Runner, entry: ModelEntry, spec: LoadSpec): boolean {
  return runner.entry.name === entry.name && runner.key === spec.key;
}

function flushWaiters(runner: Runner): void {
  const waiters = runner.idleWaiters;
  runner.idleWaiters = [];
  for (const wake of waiters) wake();
}
