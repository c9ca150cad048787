// The simulator's shared state: settings with defaults filled in once, the
// catalogue, the scheduler and the counters. Routes receive this; they never
// read SimOptions themselves.

import { Catalog, DEFAULT_MODELS } from './catalog.js';
import { parseSplit } from './directive.js';
import { Residency } from './residency.js';
import { hashString, Rng } from './rng.js';
import { StatsBook } from './stats.js';
import { CloudAccount } from './cloud.js';
import { BlobStore } from './routes-blobs.js';
import type { Settings, SimOptions, SimStats } from './types.js';

export interface Core {
  readonly settings: Settings;
  readonly catalog: Catalog;
  readonly residency: Residency;
  readonly stats: StatsBook;
  /** uploaded blobs: digests and sizes only */
  readonly blobs: BlobStore;
  /** OLLAMA_ORIGINS */
  readonly origins: readonly string[];
  /** cloud-model requests and the account's usage limit */
  readonly cloud: CloudAccount;
  /** A fresh deterministic generator for one request (ids, random cuts). */
  requestRng(): Rng;
  snapshot(): SimStats;
}

export function createSettings(options: SimOptions = {}): Settings {
  const num = (value: number | undefined, fallback: number, min: number, what: string): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || Number.isNaN(value) || value < min) {
      throw new RangeError(`sim: ${what} must be a number >= ${min}, got ${String(value)}`);
    }
    return value;
  };
  return Object.freeze({
    host: options.host ?? '127.0.0.1',
    port: num(options.port, 0, 0, 'port'),
    loadMs: num(options.loadMs, 0, 0, 'loadMs'),
    unloadMs: num(options.unloadMs, 0, 0, 'unloadMs'),
    tokensPerSecond: num(options.tokensPerSecond, 0, 0, 'tokensPerSecond'),
    numParallel: Math.floor(num(options.numParallel, 1, 1, 'numParallel')),
    maxQueue: Math.floor(num(options.maxQueue, 512, 0, 'maxQueue')),
    split: options.split === undefined ? 'none' : parseSplit(options.split, 'split'),
    seed: Math.floor(num(options.seed, 1, -Infinity, 'seed')),
    version: options.version ?? '0.12.6',
    defaultTokens: Math.floor(num(options.defaultTokens, 12, 1, 'defaultTokens')),
  });
}

export function createCore(options: SimOptions = {}): Core {
  const settings = createSettings(options);
  const stats = new StatsBook();
  const residency = new Residency(settings, stats);
  const catalog = new Catalog(options.models ?? DEFAULT_MODELS, Date.now());
  const cloud = new CloudAccount();
  const blobs = new BlobStore();
  let requestCount = 0;
  return {
    settings,
    catalog,
    residency,
    stats,
    origins: options.origins ?? [],
    blobs,
    cloud,
    requestRng: () => new Rng(hashString(String(++requestCount), settings.seed >>> 0)),
    snapshot: () => ({ ...stats.snapshot(residency.loadedNames()), cloud: cloud.snapshot(), blobs: blobs.snapshot() }),
  };
}
