// When a sync request left the queue because its caller gave up (an agent's own
// timeout, ADR 0018), the same request sent again by the same key within a few
// minutes queues at its old place: it keeps the first one's arrival time.
// Bounded in entries and time; bodies are hashed only when something is remembered.

import { createHash } from 'node:crypto';

const TTL_MS = 10 * 60_000;
const MAX_ENTRIES = 1024;

export class ArrivalMemory {
  readonly #entries = new Map<string, { arrivalMs: number; expiresMs: number }>();
  readonly #ttlMs: number;
  readonly #max: number;

  constructor(ttlMs = TTL_MS, max = MAX_ENTRIES) {
    this.#ttlMs = ttlMs;
    this.#max = max;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Same key name, path and body bytes: the same request. */
  static keyOf(owner: string, path: string, raw: Buffer): string {
    return createHash('sha256').update(owner).update('\u0000').update(path).update('\u0000').update(raw).digest('hex');
  }

  remember(key: string, arrivalMs: number, nowMs: number): void {
    this.#sweep(nowMs);
    // The oldest entry makes room: a Map iterates in insertion order.
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    const earlier = this.#entries.get(key)?.arrivalMs;
    this.#entries.set(key, { arrivalMs: Math.min(arrivalMs, earlier ?? arrivalMs), expiresMs: nowMs + this.#ttlMs });
  }

  /** The remembered arrival, once: a second retry of the same request starts afresh unless it is dropped again. */
  take(key: string, nowMs: number): number | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    return entry.expiresMs > nowMs ? entry.arrivalMs : undefined;
  }

  #sweep(nowMs: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresMs > nowMs) break; // insertion order is expiry order
      this.#entries.delete(key);
    }
  }
}
