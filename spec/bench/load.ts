// The load generator's HTTP side: streamed POSTs over a keep-alive node:http Agent, counting
// NDJSON lines and timing the first byte; a closed-loop driver with a time box and a request cap;
// small GET/POST helpers with their own timeouts. No child processes, no tables.

import { Agent, request, type ClientRequest } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface StreamResult {
  status: number;
  /** ms from sending the request to the first body byte (NaN when none) */
  ttfbMs: number;
  /** complete NDJSON lines received */
  lines: number;
  bytes: number;
  /** performance.now() at the end of the body */
  endMs: number;
  /** set when the request failed (socket error, bad status, short stream) */
  error?: string;
}

export function createAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, timeout: 120_000 });
}

const NL = 0x0a;

function countNewlines(chunk: Buffer): number {
  let n = 0;
  let at = chunk.indexOf(NL);
  while (at !== -1) {
    n++;
    at = chunk.indexOf(NL, at + 1);
  }
  return n;
}

export interface StreamOptions {
  agent: Agent | false;
  /** Called with the request object, so a caller can destroy it later (abort). */
  onRequest?: (req: ClientRequest) => void;
  timeoutMs?: number;
  /** Extra request headers (a Bearer token). */
  headers?: Record<string, string>;
}

/** POSTs `body` as JSON and reads the whole NDJSON response; never rejects (errors are in the result). */
export function streamPost(baseUrl: string, path: string, body: unknown, options: StreamOptions): Promise<StreamResult> {
  const url = new URL(path, baseUrl);
  const payload = Buffer.from(JSON.stringify(body));
  const started = performance.now();
  return new Promise((resolve) => {
    const result: StreamResult = { status: 0, ttfbMs: NaN, lines: 0, bytes: 0, endMs: 0 };
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      result.endMs = performance.now();
      if (error) result.error = error;
      resolve(result);
    };
    const req = request(
      {
        agent: options.agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { ...options.headers, 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        result.status = res.statusCode ?? 0;
        res.on('data', (chunk: Buffer) => {
          if (result.bytes === 0) result.ttfbMs = performance.now() - started;
          result.bytes += chunk.length;
          result.lines += countNewlines(chunk);
        });
        res.once('end', () => finish(result.status === 200 ? undefined : `status ${result.status}`));
        res.once('aborted', () => finish('response aborted'));
        res.once('error', (err) => finish(err.message));
      },
    );
    req.once('error', (err) => finish(err.message));
    if (options.timeoutMs) req.setTimeout(options.timeoutMs, () => req.destroy(new Error('timeout')));
    options.onRequest?.(req);
    req.end(payload);
  });
}

/** GET (or POST with a body) on a fresh connection; resolves parsed JSON or text, rejects on error or timeout. */
export function getJson<T = unknown>(href: string, timeoutMs = 5_000, postBody?: unknown): Promise<T> {
  const url = new URL(href);
  const payload = postBody === undefined ? undefined : Buffer.from(JSON.stringify(postBody));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent: false,
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: payload ? 'POST' : 'GET',
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.once('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          if ((res.statusCode ?? 0) >= 400) return reject(new Error(`${href}: status ${res.statusCode}: ${text.slice(0, 200)}`));
          try {
            resolve(JSON.parse(text) as T);
          } catch {
            resolve(text as T);
          }
        });
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${href}: no answer within ${timeoutMs} ms`)));
    req.end(payload);
  });
}

export interface ClosedLoopOptions {
  concurrency: number;
  /** stop issuing new requests after this long (in-flight ones finish) */
  durationMs: number;
  /** and never issue more than this many */
  maxRequests: number;
  /** at least this many, even past durationMs (so slow regimes still give samples) */
  minRequests?: number;
  send: (index: number) => Promise<StreamResult>;
}

export interface ClosedLoopRun {
  results: StreamResult[];
  wallMs: number;
}

/** `concurrency` workers, each sending its next request when the previous one ended. */
export async function closedLoop(options: ClosedLoopOptions): Promise<ClosedLoopRun> {
  const results: StreamResult[] = [];
  const started = performance.now();
  let issued = 0;
  const more = () =>
    issued < options.maxRequests &&
    (issued < (options.minRequests ?? 0) || performance.now() - started < options.durationMs);
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (more()) {
        const index = issued++;
        results.push(await options.send(index));
      }
    }),
  );
  const end = results.reduce((m, r) => Math.max(m, r.endMs), started);
  return { results, wallMs: end - started };
}

/** Nearest-rank percentile of finite values; NaN for none. */
export function percentile(values: number[], p: number): number {
  const xs = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (xs.length === 0) return NaN;
  const rank = Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1));
  return xs[rank]!;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
