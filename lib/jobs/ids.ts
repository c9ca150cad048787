// Job ids: sortable by creation time, unguessable. Sync (`s_`) and async (`j_`) jobs
// share the generator so /queue and the journal list them in one order.

import { randomBytes } from 'node:crypto';

let lastIdMs = 0;
let idCounter = 0;
// Random bytes drawn in bulk: one crypto call per 512 ids rather than one per id.
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomHex8(): string {
  if (poolAt + 4 > pool.length) {
    pool = randomBytes(2048);
    poolAt = 0;
  }
  poolAt += 4;
  return pool.toString('hex', poolAt - 4, poolAt);
}

/**
 * Ids sort by creation time (base36 ms, then a per-process counter) so listings can page
 * newest first, exactly even within one millisecond; random bytes keep them unguessable.
 */
export function newJobId(prefix: string): string {
  const now = Date.now();
  if (now === lastIdMs) idCounter++;
  else {
    lastIdMs = now;
    idCounter = 0;
  }
  return `${prefix}${now.toString(36).padStart(9, '0')}${idCounter.toString(36).padStart(3, '0')}${randomHex8()}`;
}
