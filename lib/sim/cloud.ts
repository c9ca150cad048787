// Cloud models as the simulator serves them (SPEC §12, ollama-wire.md §8): a name with a
// `:cloud` source or a `-cloud` tag runs "on ollama.com", so nothing loads here and
// residency never changes. The account can be made to hit its usage limit (429 with
// Retry-After) for the next N requests, through POST /sim/cloud or Sim.limitCloud().

import { nowMs, sleep, untilAborted } from './clock.js';
import type { ModelEntry } from './catalog.js';
import type { Exchange, Surface } from './exchange.js';
import type { Held } from './serve.js';
import { CT_JSON, CT_JSON_BARE, ollamaError, openAiError } from './wire.js';
import { parseModelRef } from '../sched/model-ref.js';

/** The text ollama.com answers when an account's usage is spent. */
export const CLOUD_LIMIT_MESSAGE = "you've reached your hourly usage limit, please upgrade or try again later";

export class CloudAccount {
  /** cloud requests by model, in flight now, the most at once, and how many got 429 */
  requests: Record<string, number> = {};
  active = 0;
  maxConcurrent = 0;
  limitedCount = 0;
  #limitLeft = 0;
  #retryAfterS = 1;

  /** The next `count` cloud requests answer 429 with `Retry-After: retryAfterS`. */
  limit(count: number, retryAfterS: number): void {
    this.#limitLeft = Math.max(0, Math.floor(count));
    this.#retryAfterS = Math.max(0, Math.floor(retryAfterS));
  }

  /** Retry-After seconds when this request is refused, else null. */
  takeLimit(): number | null {
    if (this.#limitLeft <= 0) return null;
    this.#limitLeft--;
    this.limitedCount++;
    return this.#retryAfterS;
  }

  reset(): void {
    this.requests = {};
    this.maxConcurrent = this.active;
    this.limitedCount = 0;
    this.#limitLeft = 0;
  }

  snapshot() {
    return { requests: { ...this.requests }, active: this.active, maxConcurrent: this.maxConcurrent, limited: this.limitedCount };
  }
}

/** The name a cloud answer carries: the base name, without the source suffix. */
export function echoedName(requested: string): string {
  const ref = parseModelRef(requested);
  return ref.source === 'cloud' ? ref.base : requested;
}

/** Runs a cloud request: no residency and no parallel slot here; the limit and the delay faults apply. */
export async function withCloud(ex: Exchange, entry: ModelEntry, surface: Surface, work: (held: Held) => Promise<void> | void): Promise<void> {
  const cloud = ex.core.cloud;
  const retryAfter = cloud.takeLimit();
  if (retryAfter !== null) {
    const body = surface === 'openai' ? openAiError(429, CLOUD_LIMIT_MESSAGE) : ollamaError(CLOUD_LIMIT_MESSAGE);
    ex.send(429, surface === 'openai' ? CT_JSON_BARE : CT_JSON, body, { 'Retry-After': String(retryAfter) });
    return;
  }
  cloud.requests[entry.name] = (cloud.requests[entry.name] ?? 0) + 1;
  cloud.active++;
  if (cloud.active > cloud.maxConcurrent) cloud.maxConcurrent = cloud.active;
  try {
    const d = ex.directive;
    if (d.delayMs > 0 && !(await sleep(d.delayMs, ex.signal))) return;
    if (d.fault === 'stall_before') return await untilAborted(ex.signal);
    const now = nowMs();
    await work({ lease: null, readyMs: now, permitMs: now });
  } finally {
    cloud.active--;
  }
}
