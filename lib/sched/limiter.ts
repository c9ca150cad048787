// A counting semaphore with a bounded wait list, for the embeddings bypass
// (SPEC §3: embed_parallel in flight, the rest wait their turn, not the queue's).

import { queueFull } from '../errors.js';

export interface Limiter {
  readonly active: number;
  readonly waiting: number;
  readonly max: number;
  /** A new limit (a hosts_file reload): more slots start waiters at once; fewer let the running finish. */
  setMax(max: number): void;
  /** Runs fn when a slot is free; a waiter whose signal aborts leaves the line. */
  run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

export function createLimiter(max: number, maxWaiting: number): Limiter {
  let active = 0;
  const waiters: Array<() => void> = [];
  // A freed slot passes straight to the next waiter (active stays), so no run() arriving
  // in between can take it and exceed max; after a lowered limit, it is given up instead.
  const release = () => {
    const next = active <= max ? waiters.shift() : undefined;
    if (next) next();
    else active--;
  };
  return {
    get active() {
      return active;
    },
    get waiting() {
      return waiters.length;
    },
    get max() {
      return max;
    },
    setMax(next) {
      max = next;
      while (active < max && waiters.length > 0) {
        active++;
        waiters.shift()!();
      }
    },
    async run(fn, signal) {
      // An abort that happened before the call fires no event: check it, or the caller waits for a slot it no longer wants.
      if (signal?.aborted) throw signal.reason;
      if (active >= max) {
        if (waiters.length >= maxWaiting) throw queueFull(`${maxWaiting} waiting for ${max} slots`);
        await new Promise<void>((resolve, reject) => {
          const go = () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          };
          const onAbort = () => {
            const i = waiters.indexOf(go);
            if (i !== -1) waiters.splice(i, 1);
            reject(signal!.reason);
          };
          signal?.addEventListener('abort', onAbort, { once: true });
          waiters.push(go);
        });
      } else {
        active++;
      }
      try {
        return await fn();
      } finally {
        release();
      }
    },
  };
}
