// Runs one request against the scheduler: take a runner reference (fast path
// or the load queue), then a parallel permit, then the work; release all of
// it however the request ends. Also the faults that act before any byte.

import { nowMs, sleep, untilAborted } from './clock.js';
import type { ModelEntry } from './catalog.js';
import type { Exchange, Surface } from './exchange.js';
import type { Lease, LoadSpec } from './residency.js';
import { SimError } from './wire.js';

export interface Held {
  /** null for a cloud model: nothing runs here */
  readonly lease: Lease | null;
  /** When the runner was ready: load_duration ends here (queue wait included). */
  readonly readyMs: number;
  /** When the parallel permit was granted: prompt evaluation starts here. */
  readonly permitMs: number;
}

export interface RunOptions {
  surface: Surface;
  /** Counts in stats.requests and stats.active (not for preload/unload). */
  counted: boolean;
  /** Takes a parallel permit (loads do not: Ollama acquires it in the runner call). */
  permit: boolean;
}

/**
 * Faults that answer before scheduling: `not_found` with the surface's
 * unknown-model error, `error_before` with its status (bare application/json
 * when streaming, as a runner error before the first chunk). True when answered.
 */
export function answeredByFault(ex: Exchange, surface: Surface, notFound: SimError, streaming: boolean): boolean {
  const d = ex.directive;
  if (d.fault === 'not_found') {
    ex.sendError(notFound.status, notFound.message, surface); // exactly the unknown-model reply
    return true;
  }
  if (d.fault === 'error_before') {
    ex.sendError(d.status, d.message, surface, streaming);
    return true;
  }
  return false;
}

export async function withRunner(
  ex: Exchange,
  entry: ModelEntry,
  spec: LoadSpec,
  opts: RunOptions,
  work: (held: Held) => Promise<void> | void,
): Promise<void> {
  const { stats, residency } = ex.core;
  const untrack = opts.counted ? ex.track() : () => {};
  if (opts.counted) stats.countRequest(entry.name);
  let lease: Lease | null = null;
  let permitted = false;
  try {
    try {
      lease = await residency.schedule(entry, spec, ex.signal);
    } catch (err) {
      // Scheduling errors (busy) precede Ollama's streaming decision: gin's c.JSON, with charset.
      const e = err instanceof SimError ? err : new SimError(500, String(err));
      ex.sendError(e.status, e.message, opts.surface, false);
      return;
    }
    if (!lease || !ex.open) return; // the client left while queued or loading
    const readyMs = nowMs();
    if (opts.permit) {
      permitted = lease.runner.sem.tryAcquire() || (await lease.runner.sem.acquire(ex.signal));
      if (!permitted) return;
    }
    const d = ex.directive;
    // Faults that hold the slot without sending a byte: slow prompt eval, a hung runner.
    if (d.delayMs > 0 && !(await sleep(d.delayMs, ex.signal))) return;
    if (d.fault === 'stall_before') return await untilAborted(ex.signal);
    await work({ lease, readyMs, permitMs: nowMs() });
  } finally {
    if (permitted) lease?.runner.sem.release();
    lease?.release();
    untrack();
  }
}
