// The Ollama client: our own HTTP/1.1 client for plain http (lib/h1-client.ts, ADR 0026),
// node:http(s) with a keep-alive agent for https and uploads; an AbortSignal per request.
// It knows no queue and no server. A caller's Authorization is never
// forwarded (only upstream_token), and Host is upstream's own, which a
// loopback-bound Ollama requires (SPEC §2). The only timeout is for silence: a
// model load may take minutes, but an upstream that sends nothing for idleMs is
// stuck, and a stuck job would hold the queue for ever.

import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { describeNetworkError, upstreamUnreachable } from './errors.js';
import { H1Pool, renderHeaderLines } from './h1-client.js';

export interface UpstreamRequest {
  method?: string;
  /** A Readable (an upload, SPEC §14) is piped as it arrives, with backpressure, never held whole. */
  body?: Uint8Array | string | Readable;
  /** With a Readable body: its length when the caller declared one (else chunked). */
  bodyLength?: number;
  signal?: AbortSignal;
  /** Extra headers, already filtered by the caller. */
  headers?: Record<string, string>;
  /**
   * The body goes to relayBody: a 2xx chunked NDJSON answer may then yield reads of whole
   * one-line frames as those frames (FramedPiece, lib/h1-frames.ts), which relayBody passes on
   * as they came (ADR 0026). No other reader may ask.
   */
  lineFrames?: boolean;
}

/** What a request yields: the status and headers at once, the body as it arrives. */
export interface UpstreamResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** Iterate once; it throws if upstream resets or the request is aborted mid-body. */
  readonly body: AsyncIterable<Uint8Array>;
  /** The whole body as text, refused past maxBytes. */
  text(maxBytes?: number): Promise<string>;
  /** Drops the rest of the body and frees the connection. */
  discard(): void;
  /** Why foreman itself cut the body short (e.g. silence), when it did. */
  failureReason(): string | null;
}

/** Upstream's error message from a non-2xx body: `{"error":"…"}`, `{"error":{"message":"…"}}`, or the text. */
export async function readUpstreamError(res: UpstreamResponse): Promise<string> {
  const text = (await res.text(1024 * 1024).catch(() => '')).slice(0, 4096);
  try {
    const e = (JSON.parse(text) as { error?: unknown }).error;
    if (typeof e === 'string') return e;
    if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') return (e as { message: string }).message;
  } catch {}
  return text || `upstream answered ${res.status}`;
}

/** Retry-After as ms from now: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

export interface PsModel {
  name: string;
  model: string;
  size?: number;
  size_vram?: number;
  expires_at?: string;
}

export interface Upstream {
  readonly baseUrl: string;
  /** Sends a request; network failures become HttpError 502 `upstream unreachable: …`. */
  send(path: string, init?: UpstreamRequest): Promise<UpstreamResponse>;
  loadedModels(signal?: AbortSignal): Promise<PsModel[]>;
  capabilities(model: string, signal?: AbortSignal): Promise<string[]>;
  /** Whether upstream knows the model (`/api/show` answers 2xx). */
  exists(model: string, signal?: AbortSignal): Promise<boolean>;
  /** Asks Ollama to unload a model (`keep_alive: 0` with an empty prompt). */
  unload(model: string, signal?: AbortSignal): Promise<void>;
  version(signal?: AbortSignal): Promise<string>;
  /** Replaced by another client (a host's new url or token): idle connections close now, busy ones when their answer is done. */
  retire(): void;
  close(): void;
}

/** Request headers worth passing to Ollama; hop-by-hop, Host and Authorization never are. */
const FORWARDED_HEADERS = ['content-type', 'accept', 'user-agent', 'accept-language', 'openai-organization', 'openai-project'];

export function forwardableHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const v = headers[name];
    if (typeof v === 'string') out[name] = v;
  }
  return out;
}

function isReadable(body: unknown): body is Readable {
  return typeof body === 'object' && body !== null && typeof (body as Readable).pipe === 'function';
}

/**
 * Pipes an upload upstream: pipe() pauses the caller's socket while upstream's is full, so
 * memory stays at a few socket buffers whatever the size. A caller who leaves mid-body must
 * not leave upstream a body that looks complete: the upstream request is destroyed.
 */
function streamBody(source: Readable, req: ClientRequest): void {
  source.pipe(req);
  const cut = () => {
    if (!source.readableEnded) req.destroy(new Error('client closed the connection before sending the whole body'));
  };
  source.once('close', cut);
  source.once('error', cut);
  req.once('close', () => {
    source.off('close', cut);
    source.unpipe(req);
  });
}

/** Bound on a body read whole (errors, small JSON answers, a non-streamed job result). */
export const MAX_TEXT_BYTES = 256 * 1024 * 1024;
const MAX_SOCKETS = 1024;
/** What node:http refuses in a request path (ERR_UNESCAPED_CHARACTERS); such a path takes node:http, which says so. */
const UNESCAPED_PATH = /[^\u0021-\u00ff]/;

function wrap(res: IncomingMessage, cut: { reason: string | null }): UpstreamResponse {
  const status = res.statusCode ?? 502;
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: {
      get(name) {
        const v = res.headers[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : String(v);
      },
    },
    body: res,
    async text(maxBytes = MAX_TEXT_BYTES) {
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of res as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > maxBytes) {
          res.destroy();
          throw new Error(`upstream body exceeds ${maxBytes} bytes`);
        }
        chunks.push(chunk);
      }
      return Buffer.concat(chunks, total).toString('utf8');
    },
    discard() {
      if (!res.complete) res.destroy();
      else res.resume();
    },
    failureReason: () => cut.reason,
  };
}

/** Longer than Ollama's own load timeout (5 min) plus a slow first token. */
export const DEFAULT_IDLE_MS = 10 * 60_000;

export function createUpstream(baseUrl: string, token?: string, idleMs = DEFAULT_IDLE_MS): Upstream {
  const base = new URL(baseUrl.replace(/\/+$/, '') + '/');
  const secure = base.protocol === 'https:';
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: 64 })
    : new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: 64 });
  const request = secure ? httpsRequest : httpRequest;
  const prefix = base.pathname.replace(/\/$/, '');
  const hostname = base.hostname.replace(/^\[|\]$/g, '');
  const port = Number(base.port || (secure ? 443 : 80));
  // Plain http with a body in hand goes through our own reader (ADR 0026); https and uploads stay on node:http.
  const pool = secure ? null : new H1Pool({ host: hostname, port, hostHeader: base.host }, idleMs);

  const send = (path: string, init: UpstreamRequest = {}): Promise<UpstreamResponse> => {
    const headers: Record<string, string | number> = { ...init.headers };
    const source = isReadable(init.body) ? init.body : undefined;
    const body = source ? undefined : typeof init.body === 'string' ? Buffer.from(init.body) : (init.body as Uint8Array | undefined);
    if (body !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = body.length;
    } else if (source && init.bodyLength !== undefined) {
      headers['content-length'] = init.bodyLength;
    }
    if (token) headers.authorization = `Bearer ${token}`;
    const signal = init.signal;
    const method = init.method ?? (body === undefined && !source ? 'GET' : 'POST');
    if (pool && !source && pool.size < MAX_SOCKETS && !UNESCAPED_PATH.test(path)) {
      const headerLines = renderHeaderLines(headers);
      if (headerLines !== null) return pool.request({ method, path: prefix + path, headerLines, body, signal, lineFrames: init.lineFrames });
    }
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const req = request({
        protocol: base.protocol, hostname, port,
        path: prefix + path, method, headers, agent, signal,
      });
      req.setNoDelay(true);
      const cut = { reason: null as string | null };
      req.setTimeout(idleMs, () => {
        cut.reason = `upstream sent nothing for ${idleMs >= 1000 ? `${Math.round(idleMs / 1000)} s` : `${idleMs} ms`}`;
        req.destroy(new Error(cut.reason));
      });
      req.once('response', (res) => resolve(wrap(res, cut)));
      req.once('error', (err) => {
        if (signal?.aborted) reject(signal.reason ?? err);
        else reject(upstreamUnreachable(describeNetworkError(err)));
      });
      if (source) streamBody(source, req);
      else req.end(body);
    });
  };

  const getJson = async <T>(path: string, init: UpstreamRequest): Promise<T> => {
    const res = await send(path, init);
    const text = await res.text(16 * 1024 * 1024);
    if (!res.ok) throw upstreamUnreachable(`${path} answered ${res.status}`);
    return JSON.parse(text) as T;
  };

  return {
    baseUrl: base.href.replace(/\/$/, ''),
    send,
    async loadedModels(signal) {
      const body = await getJson<{ models?: PsModel[] | null }>('/api/ps', { signal });
      return body.models ?? [];
    },
    async capabilities(model, signal) {
      const res = await send('/api/show', { body: JSON.stringify({ model }), signal });
      const text = await res.text(16 * 1024 * 1024);
      if (!res.ok) return [];
      try {
        const caps = (JSON.parse(text) as { capabilities?: unknown }).capabilities;
        return Array.isArray(caps) ? caps.filter((c): c is string => typeof c === 'string') : [];
      } catch {
        return [];
      }
    },
    async exists(model, signal) {
      const res = await send('/api/show', { body: JSON.stringify({ model }), signal });
      res.discard();
      return res.ok;
    },
    async unload(model, signal) {
      const res = await send('/api/generate', { body: JSON.stringify({ model, keep_alive: 0 }), signal });
      await res.text(1024 * 1024);
    },
    async version(signal) {
      const body = await getJson<{ version?: string }>('/api/version', { signal });
      return String(body.version ?? 'unknown');
    },
    retire() {
      agent.maxFreeSockets = 0; // node's agent then closes each socket as its request ends
      for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
      pool?.retire();
    },
    close() {
      agent.destroy();
      pool?.close();
    },
  };
}
