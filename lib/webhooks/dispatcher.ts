// webhooks/ owns telling others: signing, which targets are allowed, delivery with retries.
//
// Webhook delivery (SPEC §5): per-job ordered chains, a global in-flight cap, timeouts, retries.
// Knows only the event envelope; never imports node:http or the jobs module. Time and fetch are injected.
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Outcome } from './policy.js';
import { nextDelay, parseRetryAfter, RETRY_SCHEDULE_MS } from './policy.js';
import { decodeSecret, signWithKey } from './signing.js';

export type { Decision, NextDelayOptions, Outcome } from './policy.js';
export { JITTER_RATIO, nextDelay, parseRetryAfter, RETRY_SCHEDULE_MS } from './policy.js';
export type { SignatureHeaders, VerifyOptions } from './signing.js';
export { signPayload, verifySignature } from './signing.js';
export { checkWebhookUrl, MAX_WEBHOOK_URL_LENGTH } from './url.js';

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_CONCURRENT = 16;
export const MAX_QUEUED_PER_JOB = 1_000;
export const MAX_QUEUED_TOTAL = 100_000;
/** Jobs whose receiver answered 410 are remembered so later events are dropped; oldest forgotten first. */
const MAX_GONE_JOBS = 10_000;
/** setTimeout overflows past 2^31-1 ms and fires at once; longer waits re-arm when they fire. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const GONE_EARLIER = 'receiver answered 410 for an earlier event of this job';
const TIMEOUT = Symbol('timeout');
const CLOSED = Symbol('closed');

export interface WebhookEvent { eventId: string; jobId: string; seq: number; url: string; body: string; attempts: number; nextAttemptAt: number /* epoch ms; 0 = now */ }
export interface DeliveryProgress {
  eventId: string; jobId: string; seq: number; attempts: number;
  outcome: 'delivered' | 'retrying' | 'gone' | 'exhausted';
  status: number | null; error: string | null; nextAttemptAt: number | null;
}
export type Timer = { cancel(): void };
export interface WebhookDispatcherOptions {
  secret?: string; // no secret → no webhook-signature (webhook-id and webhook-timestamp still sent)
  fetch?: typeof fetch;
  timeoutMs?: number;
  schedule?: readonly number[];
  maxConcurrent?: number; // deliveries in flight across all jobs
  maxQueuedPerJob?: number;
  maxQueuedTotal?: number;
  now?: () => number;
  random?: () => number;
  setTimer?: (fn: () => void, ms: number) => Timer;
  log?: Logger;
  onProgress?: (p: DeliveryProgress) => void;
}
export interface WebhookDispatcher {
  enqueue(event: WebhookEvent): void;
  pending(jobId?: string): number;
  /** Resolves when no request is in flight and none is due now; events waiting on a retry timer don't count. */
  idle(): Promise<void>;
  /** Cancels timers and aborts requests without reporting them; pending events stay pending. */
  close(): Promise<void>;
}

/**
 * Events of one job go out strictly in seq order, one at a time. An event that exhausts the
 * schedule is reported 'exhausted' and the job's next event proceeds: a dead receiver must not
 * hold later events (the final state, above all) for ever. A 410 drops the job's queued and
 * future events, each reported 'gone'. Over a queue bound, enqueue refuses with a warning.
 */
export function createWebhookDispatcher(options: WebhookDispatcherOptions): WebhookDispatcher {
  return new Dispatcher(options);
}

const defaultSetTimer = (fn: () => void, ms: number): Timer => {
  const handle = setTimeout(fn, ms);
  handle.unref();
  return { cancel: () => clearTimeout(handle) };
};

interface Chain { jobId: string; events: WebhookEvent[]; state: 'idle' | 'waiting' | 'ready' | 'sending'; timer: Timer | null }
type Result = { outcome: Outcome; retryAfterMs?: number } | null;

class Dispatcher implements WebhookDispatcher {
  readonly #key: Buffer | null;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #schedule: readonly number[];
  readonly #maxConcurrent: number;
  readonly #maxPerJob: number;
  readonly #maxTotal: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => Timer;
  readonly #log: Logger;
  readonly #onProgress: (p: DeliveryProgress) => void;
  readonly #chains = new Map<string, Chain>();
  readonly #ready: Chain[] = [];
  readonly #inFlight = new Map<Chain, { controller: AbortController; done: Promise<void> }>();
  readonly #gone = new Set<string>();
  #idleWaiters: Array<() => void> = [];
  #queued = 0;
  #pumpScheduled = false;
  #closed = false;

  constructor(o: WebhookDispatcherOptions) {
    this.#key = o.secret === undefined ? null : decodeSecret(o.secret);
    this.#fetch = o.fetch ?? globalThis.fetch;
    this.#timeoutMs = positive('timeoutMs', o.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.#schedule = o.schedule ?? RETRY_SCHEDULE_MS;
    this.#maxConcurrent = positive('maxConcurrent', o.maxConcurrent ?? DEFAULT_MAX_CONCURRENT);
    this.#maxPerJob = positive('maxQueuedPerJob', o.maxQueuedPerJob ?? MAX_QUEUED_PER_JOB);
    this.#maxTotal = positive('maxQueuedTotal', o.maxQueuedTotal ?? MAX_QUEUED_TOTAL);
    this.#now = o.now ?? Date.now;
    this.#random = o.random ?? Math.random;
    this.#setTimer = o.setTimer ?? defaultSetTimer;
    this.#log = o.log ?? silentLogger;
    this.#onProgress = o.onProgress ?? (() => {});
  }

  enqueue(input: WebhookEvent): void {
    const fields = { job_id: input.jobId, event_id: input.eventId, seq: input.seq };
    if (this.#closed) return this.#log.warn('webhook_enqueue_after_close', fields);
    const event = { ...input }; // attempts and nextAttemptAt are ours to update
    if (this.#gone.has(event.jobId)) {
      // Deferred so the caller never sees onProgress re-enter from inside enqueue().
      queueMicrotask(() => this.#report(event, 'gone', null, GONE_EARLIER, null));
      return;
    }
    let chain = this.#chains.get(event.jobId);
    if (chain === undefined) {
      chain = { jobId: event.jobId, events: [], state: 'idle', timer: null };
      this.#chains.set(event.jobId, chain);
    }
    if (chain.events.some((e) => e.eventId === event.eventId)) return; // resumed twice: already pending
    if (chain.events.length >= this.#maxPerJob || this.#queued >= this.#maxTotal) {
      const limit = chain.events.length >= this.#maxPerJob ? `maxQueuedPerJob=${this.#maxPerJob}` : `maxQueuedTotal=${this.#maxTotal}`;
      return this.#log.warn('webhook_queue_full', { ...fields, limit });
    }
    // A head being sent keeps its place; otherwise order by seq, so events resumed out of order go out in order.
    const first = chain.state === 'sending' ? 1 : 0;
    let at = chain.events.length;
    while (at > first && chain.events[at - 1]!.seq > event.seq) at--;
    chain.events.splice(at, 0, event);
    this.#queued++;
    if (at === 0 && chain.state === 'waiting') {
      chain.timer?.cancel();
      chain.timer = null;
      chain.state = 'idle';
    }
    this.#advance(chain);
  }

  pending(jobId?: string): number {
    return jobId === undefined ? this.#queued : (this.#chains.get(jobId)?.events.length ?? 0);
  }

  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const chain of this.#chains.values()) {
        chain.timer?.cancel();
        chain.timer = null;
        if (chain.state !== 'sending') chain.state = 'idle';
      }
      this.#ready.length = 0;
      for (const { controller } of this.#inFlight.values()) controller.abort(CLOSED);
    }
    await Promise.allSettled([...this.#inFlight.values()].map((f) => f.done));
    this.#settle();
  }

  /** Moves an idle chain on: drop it when empty, wait for its head's time, or queue it for a slot. */
  #advance(chain: Chain): void {
    if (this.#closed || chain.state !== 'idle') return;
    const head = chain.events[0];
    if (head === undefined) {
      this.#chains.delete(chain.jobId);
      return;
    }
    const wait = head.nextAttemptAt - this.#now();
    if (wait > 0) {
      chain.state = 'waiting';
      chain.timer = this.#setTimer(() => {
        chain.timer = null;
        chain.state = 'idle';
        this.#advance(chain);
      }, Math.min(wait, MAX_TIMER_MS));
      return;
    }
    chain.state = 'ready';
    this.#ready.push(chain);
    // Started from a microtask so a batch of synchronous enqueues is ordered by seq before the first send.
    if (!this.#pumpScheduled) {
      this.#pumpScheduled = true;
      queueMicrotask(() => {
        this.#pumpScheduled = false;
        this.#pump();
      });
    }
  }

  #pump(): void {
    while (!this.#closed && this.#inFlight.size < this.#maxConcurrent) {
      const chain = this.#ready.shift();
      if (chain === undefined) break;
      const event = chain.events[0]!;
      chain.state = 'sending';
      const controller = new AbortController();
      const done = this.#attempt(event, controller)
        .then((result) => this.#finish(chain, event, result))
        .catch((err: unknown) => this.#log.error('webhook_internal', { message: String(err) }));
      this.#inFlight.set(chain, { controller, done });
    }
    this.#settle();
  }

  async #attempt(event: WebhookEvent, controller: AbortController): Promise<Result> {
    const timestampS = Math.floor(this.#now() / 1000);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'foreman-webhooks/1',
      'webhook-id': event.eventId,
      'webhook-timestamp': String(timestampS),
    };
    // Recomputed per attempt: the timestamp is part of the signed string.
    if (this.#key !== null) headers['webhook-signature'] = signWithKey(this.#key, event.eventId, timestampS, event.body);
    const timer = this.#setTimer(() => controller.abort(TIMEOUT), this.#timeoutMs);
    try {
      const response = await this.#fetch(event.url, {
        method: 'POST', headers, body: event.body, redirect: 'manual', signal: controller.signal,
      });
      // Only the status matters: cancel the body unread, which frees the socket and bounds what we read at zero.
      response.body?.cancel().catch(() => {});
      return { outcome: { kind: 'status', status: response.status }, retryAfterMs: parseRetryAfter(response.headers.get('retry-after'), this.#now()) };
    } catch (err) {
      if (controller.signal.reason === CLOSED) return null;
      if (controller.signal.reason === TIMEOUT) return { outcome: { kind: 'error', message: `no answer in ${this.#timeoutMs} ms` } };
      return { outcome: { kind: 'error', message: describeError(err) } };
    } finally {
      timer.cancel();
    }
  }

  #finish(chain: Chain, event: WebhookEvent, result: Result): void {
    this.#inFlight.delete(chain);
    chain.state = 'idle';
    // After close nothing is reported; an attempt that succeeded just then is sent again after restart (at-least-once).
    if (result === null || this.#closed) return this.#settle();
    event.attempts += 1;
    const { outcome, retryAfterMs } = result;
    const status = outcome.kind === 'status' ? outcome.status : null;
    const error = outcome.kind === 'error' ? outcome.message : status! >= 200 && status! <= 299 ? null : `HTTP ${status}`;
    const decision = nextDelay(event.attempts, outcome, { schedule: this.#schedule, random: this.#random, retryAfterMs });
    const fields = { job_id: event.jobId, event_id: event.eventId, seq: event.seq, attempts: event.attempts, status, error };
    if (decision.action === 'retry') {
      event.nextAttemptAt = this.#now() + decision.delayMs;
      this.#log.warn('webhook_retry', { ...fields, delay_ms: decision.delayMs });
      this.#report(event, 'retrying', status, error, event.nextAttemptAt);
    } else if (decision.action === 'done') {
      chain.events.shift();
      this.#queued--;
      this.#report(event, 'delivered', status, null, null);
    } else if (decision.reason === 'gone') {
      const later = chain.events.splice(0).slice(1);
      this.#queued -= 1 + later.length;
      this.#markGone(chain.jobId);
      this.#log.warn('webhook_gone', { ...fields, dropped: later.length });
      this.#report(event, 'gone', status, error, null);
      for (const e of later) this.#report(e, 'gone', null, GONE_EARLIER, null);
    } else {
      chain.events.shift();
      this.#queued--;
      this.#log.error('webhook_exhausted', fields);
      this.#report(event, 'exhausted', status, error, null);
    }
    this.#advance(chain);
    this.#pump(); // a slot is free for another job
  }

  #markGone(jobId: string): void {
    this.#gone.add(jobId);
    if (this.#gone.size > MAX_GONE_JOBS) this.#gone.delete(this.#gone.values().next().value!);
  }

  #report(event: WebhookEvent, outcome: DeliveryProgress['outcome'], status: number | null, error: string | null, nextAttemptAt: number | null): void {
    const { eventId, jobId, seq, attempts } = event;
    try {
      this.#onProgress({ eventId, jobId, seq, attempts, outcome, status, error, nextAttemptAt });
    } catch (err) {
      this.#log.error('webhook_progress_failed', { job_id: jobId, event_id: eventId, message: String(err) });
    }
  }

  #isIdle(): boolean {
    return this.#inFlight.size === 0 && (this.#closed || this.#ready.length === 0);
  }

  #settle(): void {
    if (!this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function positive(name: string, value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`webhooks: ${name} must be a positive number, got ${value}`);
  return value;
}

/** fetch says only 'fetch failed'; the useful part (ECONNREFUSED, a TLS error) is in its cause. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err).slice(0, 200);
  const cause = (err as { cause?: unknown }).cause;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : undefined;
  const detail = code ?? (cause instanceof Error ? cause.message : undefined);
  return (detail === undefined ? err.message : `${err.message}: ${detail}`).slice(0, 200);
}
