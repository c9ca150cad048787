// Measured load and run times kept across restarts (ADR 0025): one small JSON file in the data
// dir, read at start, written atomically (temp file, fsync, rename, directory fsync) at most
// every SAVE_EVERY_MS while measurements change. Knows files, not HTTP and not the queue.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errno } from '../journal/files.js';
import { writeFileDurably } from '../journal/io.js';
import type { Logger } from '../log.js';
import type { LoadCosts } from '../sched/load-costs.js';

export const LOAD_TIMES_FILE = 'load-times.json';
/** At most one write per this long; a measurement between writes waits for the next one. */
export const SAVE_EVERY_MS = 5_000;
/** A file bigger than this is not ours (hosts x GROUP_LIMIT entries stay far below). */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

export function loadTimesPath(dataDir: string): string {
  return join(dataDir, LOAD_TIMES_FILE);
}

/**
 * Reads what an earlier run measured into `costs`. A missing file is a first start; a damaged
 * one (not JSON, not a snapshot) is ignored with a log line: the costs are learned again.
 */
export async function readLoadTimes(path: string, costs: LoadCosts, log: Logger): Promise<number> {
  let text: string;
  try {
    const data = await readFile(path);
    if (data.length > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
    text = data.toString('utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return 0;
    log.warn('load times not read', { path, error: (err as Error).message });
    return 0;
  }
  try {
    const taken = costs.restore(JSON.parse(text));
    log.info('load times read', { path, entries: taken });
    return taken;
  } catch (err) {
    log.warn('load times file damaged, ignored', { path, error: (err as Error).message });
    return 0;
  }
}

export interface LoadTimesSaverOptions {
  path: string;
  costs: LoadCosts;
  log: Logger;
  /** default SAVE_EVERY_MS */
  everyMs?: number;
  now?: () => number;
}

/**
 * Writes the costs when they changed: at once when the last write is SAVE_EVERY_MS old, else
 * once at the end of that interval (a timer it owns; close() clears it and writes what is left).
 */
export class LoadTimesSaver {
  readonly #o: LoadTimesSaverOptions;
  readonly #everyMs: number;
  readonly #now: () => number;
  #written: number;
  #writing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #lastMs = -Infinity;
  #closed = false;
  #failing = false;

  constructor(options: LoadTimesSaverOptions) {
    this.#o = options;
    this.#everyMs = options.everyMs ?? SAVE_EVERY_MS;
    this.#now = options.now ?? Date.now;
    this.#written = options.costs.changes;
  }

  /** The costs may have changed (a job ended): write now or at the end of the interval. */
  changed(): void {
    if (this.#closed || this.#timer !== null || this.#writing !== null) return;
    if (this.#o.costs.changes === this.#written) return;
    const wait = this.#lastMs + this.#everyMs - this.#now();
    if (wait <= 0) {
      void this.#save();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#save();
    }, wait);
  }

  /** Writes anything not written yet; no writes after. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#writing;
    if (this.#o.costs.changes !== this.#written) await this.#write();
  }

  #save(): Promise<void> {
    const run = this.#write().finally(() => {
      this.#writing = null;
      // Measured again while writing: the next write waits for its interval.
      if (!this.#closed) this.changed();
    });
    this.#writing = run;
    return run;
  }

  async #write(): Promise<void> {
    const { path, costs, log } = this.#o;
    const changes = costs.changes;
    const data = Buffer.from(JSON.stringify(costs.snapshot()) + '\n');
    this.#lastMs = this.#now();
    try {
      // A crash leaves the old file or the new one, whole.
      await writeFileDurably(path, data);
      this.#written = changes;
      if (this.#failing) log.info('load times written again', { path });
      this.#failing = false;
    } catch (err) {
      // Logged once per failing spell; the measurements stay in memory and the next change tries again.
      if (!this.#failing) log.warn('load times not written', { path, error: (err as Error).message });
      this.#failing = true;
    }
  }
}
