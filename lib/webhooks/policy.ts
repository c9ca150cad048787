// The webhook retry policy: a pure function from (attempt, outcome) to done | stop | retry-after-delay.
// No clock, no I/O, no knowledge of jobs: callers pass randomness and any Retry-After they were given.

/** What one delivery attempt produced: a status, or no status at all (network error or timeout). */
export type Outcome = { kind: 'status'; status: number } | { kind: 'error'; message: string };

export type Decision = { action: 'done' } | { action: 'stop'; reason: string } | { action: 'retry'; delayMs: number };

/**
 * SPEC §5: retry at once, then about 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h.
 * Entry i is the wait after the (i+1)-th failed attempt, so an event gets 1 + length attempts.
 */
export const RETRY_SCHEDULE_MS: readonly number[] = Object.freeze([
  0, 5e3, 30e3, 120e3, 600e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3,
]);

/** Each scheduled wait is spread by ±20% so receivers that failed together are not retried together. */
export const JITTER_RATIO = 0.2;

export interface NextDelayOptions {
  schedule?: readonly number[];
  /** Returns [0, 1); defaults to Math.random. Inject it to make the result deterministic. */
  random?: () => number;
  /** The receiver's Retry-After, already converted to milliseconds from now. */
  retryAfterMs?: number;
}

/**
 * attempt = attempts made so far (1 after the first try).
 * 2xx → done; 410 → stop 'gone'; anything else → retry after schedule[attempt - 1] ± jitter;
 * past the schedule's end → stop 'exhausted'.
 *
 * Retry-After may lengthen the wait but never shorten it, and is capped at the schedule's next
 * entry (the current one at the end of the schedule): a receiver can slow us down by at most one
 * step, so a hostile or buggy header cannot park an event for days, and a 0 cannot cause a storm.
 */
export function nextDelay(attempt: number, outcome: Outcome, options: NextDelayOptions = {}): Decision {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`attempt must be an integer >= 1, got ${attempt}`);
  }
  if (outcome.kind === 'status') {
    if (outcome.status >= 200 && outcome.status <= 299) return { action: 'done' };
    if (outcome.status === 410) return { action: 'stop', reason: 'gone' };
  }
  const schedule = options.schedule ?? RETRY_SCHEDULE_MS;
  const base = schedule[attempt - 1];
  if (base === undefined) return { action: 'stop', reason: 'exhausted' };

  const random = options.random ?? Math.random;
  const spread = 1 + JITTER_RATIO * (2 * random() - 1);
  const jittered = Math.max(0, Math.round(base * spread));

  const retryAfter = options.retryAfterMs;
  if (retryAfter === undefined || !Number.isFinite(retryAfter) || retryAfter <= 0) {
    return { action: 'retry', delayMs: jittered };
  }
  const cap = Math.max(base, schedule[attempt] ?? base);
  return { action: 'retry', delayMs: Math.max(jittered, Math.round(Math.min(retryAfter, cap))) };
}

/**
 * Retry-After as milliseconds from nowMs: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * Anything unparsable, or a date in the past, gives undefined.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at) || at <= nowMs) return undefined;
  return at - nowMs;
}

/** One POST of an event, as the dispatcher asks for it; the transport is injected (http/webhook-transport.ts). */
export interface SendRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}

/** A status, or what went wrong in words a job's owner can use (`could not connect`, `refused: private address`). */
export type SendResult = { kind: 'status'; status: number; retryAfter: string | null } | { kind: 'error'; message: string };
export type WebhookSend = (request: SendRequest) => Promise<SendResult>;

const TLS_CODES = /^(CERT_|ERR_TLS_CERT|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED|SELF_SIGNED_CERT)/;

/**
 * A network failure in words, never the raw socket error: which of refused, reset or unreachable a port
 * gave is a port scanner's answer and no help to a job's owner. Name resolution and certificates are
 * said apart, since an owner can act on them.
 */
export function errorInWords(code: string | undefined): string {
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') return 'could not resolve the host name';
  if (code !== undefined && TLS_CODES.test(code)) return 'TLS certificate not accepted';
  return 'could not connect';
}
