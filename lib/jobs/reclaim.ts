// Gives the memory of large request bodies back promptly (SPEC §16). A 60 MB body passes through
// the heap as bytes, a string and a parsed object; an idle process would keep that garbage until
// some later allocation triggers a collection, so RSS would reflect bodies long since on disk.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes of large bodies handled since the last collection before one is worth its pause. */
const RECLAIM_AFTER_BYTES = 64 * 1024 * 1024;
const MIN_INTERVAL_MS = 1_000;

let collect: (() => void) | null | undefined;
let handled = 0;
let lastAt = 0;
let timer: NodeJS.Timeout | null = null;

function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  try {
    // The documented V8 flag, set at run time; the gc function is then reachable from a fresh context.
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  } catch {
    collect = null;
  }
  return collect;
}

/** A full collection now (start-up replay, after which the parsed lines are all garbage). */
export function reclaimNow(): void {
  collector()?.();
  handled = 0;
  lastAt = Date.now();
}

/**
 * `bytes` of a large body went through the heap. Once enough did, collect soon after, at most
 * once a second: the pause (tens of ms for a small heap) is paid only by large uploads.
 */
export function noteLargeBody(bytes: number): void {
  handled += bytes;
  if (handled < RECLAIM_AFTER_BYTES || timer) return;
  const wait = Math.max(0, lastAt + MIN_INTERVAL_MS - Date.now());
  timer = setTimeout(() => {
    timer = null;
    reclaimNow();
  }, wait);
  timer.unref();
}
