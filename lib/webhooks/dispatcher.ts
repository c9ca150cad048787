// webhooks/ owns telling others: signing, which targets are allowed, delivery with retries.
//
// Webhook delivery (SPEC §5): per-job ordered chains, queued per receiver (scheme, host, port) so a
// hanging receiver holds only its own queue; timeouts, retries. Knows only the event envelope; the
// POST itself is transport.ts (checked addresses), injected like time.
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { Outcome } from './policy.js';
import { errorInWords, nextDelay, parseRetryAfter, RETRY_SCHEDULE_MS, type WebhookSend } from './policy.js';
import { decodeSecret, signWithKey } from './signing.js';

export type { Decision, NextDelayOptions, Outcome } from './policy.js';
export { JITTER_RATIO, nextDelay, parseRetryAfter, RETRY_SCHEDULE_MS } from './policy.js';
export type { SignatureHeaders, VerifyOptions } from './signing.js';
export { signPayload, verifySignature } from './signing.js';
export { checkWebhookUrl, MAX_WEBHOOK_URL_LENGTH } from './url.js';
export type { SendRequest, SendResult, WebhookSend } from './policy.js';

/** Deliveries in flight to one receiver at once: its jobs' chains share them. */
export const DEFAULT_PER_RECEIVER = 4;

export const DEFAULT_TIMEOUT_MS = 10_000;
/** Sockets in flight across all receivers: bounds file descriptors; receivers are served round-robin. */
export const DEFAULT_MAX_CONCURRENT = 256;
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
  /** The POST. foreman passes http/webhook-transport.ts (checked addresses); the default is plain fetch, unchecked. */
  send?: WebhookSend;
  timeoutMs?: number;
  schedule?: readonly number[];
  maxConcurrent?: number; // deliveries in flight across all receivers
  perReceiver?: number; // deliveries in flight to one receiver
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

interface Chain { jobId: string; receiver: string; events: WebhookEvent[]; state: 'idle' | 'waiting' | 'ready' | 'sending'; timer: Timer | null }
/** One receiver's line: chains ready to send and how many of its deliveries are in flight. */
interface Receiver { key: string; ready: Chain[]; inFlight: number }
type Result = { outcome: Outcome; retryAfterMs?: number } | null;

class Dispatcher implements WebhookDispatcher {
  readonly #key: Buffer | null;
  readonly #send: WebhookSend;
  readonly #timeoutMs: number;
  readonly #schedule: readonly number[];
  readonly #maxConcurrent: number;
  readonly #perReceiver: number;
  readonly #maxPerJob: number;
  readonly #maxTotal: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => Timer;
  readonly #log: Logger;
  readonly #onProgress: (p: DeliveryProgress) => void;
  readonly #chains = new Map<string, Chain>();
  readonly #receivers = new Map<string, Receiver>();
  /** Receivers with chains ready to send, in round-robin order (a Set keeps insertion order). */
  readonly #readyReceivers = new Set<Receiver>();
  readonly #inFlight = new Map<Chain, { controller: AbortController; done: Promise<void> }>();
  readonly #gone = new Set<string>();
  #idleWaiters: Array<() => void> = [];
  #queued = 0;
  #pumpScheduled = false;
  #closed = false;

  constructor(o: WebhookDispatcherOptions) {
    this.#key = o.secret === undefined ? null : decodeSecret(o.secret);
    this.#send = o.send ?? fetchSend;
    this.#timeoutMs = positive('timeoutMs', o.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.#schedule = o.schedule ?? RETRY_SCHEDULE_MS;
    this.#maxConcurrent = positive('maxConcurrent', o.maxConcurrent ?? DEFAULT_MAX_CONCURRENT);
    this.#perReceiver = positive('perReceiver', o.perReceiver ?? DEFAULT_PER_RECEIVER);
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
      chain = { jobId: event.jobId, receiver: receiverKey(event.url), events: [], state: 'idle', timer: null };
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
      for (const r of this.#receivers.values()) r.ready.length = 0;
      this.#readyReceivers.clear();
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
    const receiver = this.#receiverOf(chain);
    receiver.ready.push(chain);
    this.#readyReceivers.add(receiver);
    // Started from a microtask so a batch of synchronous enqueues is ordered by seq before the first send.
    if (!this.#pumpScheduled) {
      this.#pumpScheduled = true;
      queueMicrotask(() => {
        this.#pumpScheduled = false;
        this.#pump();
      });
    }
  }

  #receiverOf(chain: Chain): Receiver {
    let r = this.#receivers.get(chain.receiver);
    if (r === undefined) {
      r = { key: chain.receiver, ready: [], inFlight: 0 };
      this.#receivers.set(r.key, r);
    }
    return r;
  }

  /** Round-robin over receivers, at most perReceiver each: a receiver that hangs fills only its own slots. */
  #pump(): void {
    let progressed = true;
    while (progressed && !this.#closed && this.#inFlight.size < this.#maxConcurrent) {
      progressed = false;
      for (const receiver of [...this.#readyReceivers]) {
        if (this.#inFlight.size >= this.#maxConcurrent) break;
        if (receiver.inFlight >= this.#perReceiver) continue;
        const chain = receiver.ready.shift()!;
        this.#readyReceivers.delete(receiver); // to the back of the line, if it has more
        if (receiver.ready.length > 0) this.#readyReceivers.add(receiver);
        receiver.inFlight++;
        this.#startSending(chain);
        progressed = true;
      }
    }
    this.#settle();
  }

  #startSending(chain: Chain): void {
    const event = chain.events[0]!;
    chain.state = 'sending';
    const controller = new AbortController();
    const done = this.#attempt(event, controller)
      .then((result) => this.#finish(chain, event, result))
      .catch((err: unknown) => this.#log.error('webhook_internal', { message: String(err) }));
    this.#inFlight.set(chain, { controller, done });
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
      const result = await this.#send({ url: event.url, headers, body: event.body, signal: controller.signal });
      if (controller.signal.reason === CLOSED) return null;
      if (result.kind === 'error') {
        return { outcome: { kind: 'error', message: controller.signal.reason === TIMEOUT ? 'timed out' : result.message } };
      }
      return { outcome: { kind: 'status', status: result.status }, retryAfterMs: parseRetryAfter(result.retryAfter, this.#now()) };
    } catch {
      if (controller.signal.reason === CLOSED) return null;
      return { outcome: { kind: 'error', message: controller.signal.reason === TIMEOUT ? 'timed out' : 'could not connect' } };
    } finally {
      timer.cancel();
    }
  }

  #finish(chain: Chain, event: WebhookEvent, result: Result): void {
    this.#inFlight.delete(chain);
    const receiver = this.#receiverOf(chain);
    receiver.inFlight--;
    if (receiver.inFlight === 0 && receiver.ready.length === 0) this.#receivers.delete(receiver.key);
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
    return this.#inFlight.size === 0 && (this.#closed || this.#readyReceivers.size === 0);
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

/** scheme, host and port: what one receiver is. A URL that does not parse is its own (it fails at once). */
function receiverKey(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return url;
  }
}

/** The default transport: fetch, not following redirects, body unread; failures in the same words. */
const fetchSend: WebhookSend = async ({ url, headers, body, signal }) => {
  try {
    const res = await fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal });
    res.body?.cancel().catch(() => {});
    return { kind: 'status', status: res.status, retryAfter: res.headers.get('retry-after') };
  } catch (err) {
    const cause = (err as { cause?: { code?: unknown } }).cause;
    return { kind: 'error', message: errorInWords(typeof cause?.code === 'string' ? cause.code : undefined) };
  }
};
