// Time as Ollama prints it (Go's RFC3339Nano, trailing zeros trimmed) and an
// abortable sleep. Every timer the simulator starts goes through sleep() or is
// owned by residency.ts, so close() can clear them all.

const NS_PER_MS = 1_000_000;

/** Wall clock in ms with sub-ms precision, monotonic within the process. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Elapsed ns between two nowMs() readings, as Go's integer durations (at least 1). */
export function elapsedNs(fromMs: number, toMs: number = nowMs()): number {
  return Math.max(1, Math.round((toMs - fromMs) * NS_PER_MS));
}

let cachedSecond = -1;
let cachedPrefix = '';

/** `2025-10-26T17:21:21.196249Z`: UTC, up to 9 fraction digits, zeros trimmed. */
export function createdAt(ms: number = nowMs()): string {
  const whole = Math.floor(ms);
  const second = Math.floor(whole / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  const ns = (whole - second * 1000) * NS_PER_MS + Math.floor((ms - whole) * NS_PER_MS);
  return cachedPrefix + fraction(ns) + 'Z';
}

/** Go's time.Format(RFC3339Nano) in the server's local zone (tags, ps). */
export function localTime(ms: number): string {
  const date = new Date(Math.floor(ms));
  const offsetMin = -date.getTimezoneOffset();
  const shifted = new Date(date.getTime() + offsetMin * 60_000).toISOString().slice(0, 19);
  const ns = (Math.floor(ms) % 1000) * NS_PER_MS;
  if (offsetMin === 0) return shifted + fraction(ns) + 'Z';
  const sign = offsetMin > 0 ? '+' : '-';
  const abs = Math.abs(offsetMin);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${shifted}${fraction(ns)}${sign}${hh}:${mm}`;
}

function fraction(ns: number): string {
  if (ns <= 0) return '';
  let digits = String(ns).padStart(9, '0');
  let end = digits.length;
  while (end > 0 && digits.charCodeAt(end - 1) === 48) end--;
  digits = digits.slice(0, end);
  return '.' + digits;
}

/**
 * Resolves after `ms`, or early (resolving false) when `signal` aborts; the
 * timer is always cleared, so nothing outlives close().
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, Math.min(ms, 2 ** 31 - 1));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Resolves when `signal` aborts: how a stalled request waits for its client to leave. */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
