// A small HTTP/1.1 client for plain-http upstreams on the streaming path (ADR 0026): its own
// keep-alive pool of sockets (Nagle off), the request head and body written in one go, the
// response read by lib/h1-parser.ts, the body handed out once per socket read. node:http's
// per-chunk machinery (parser callback, IncomingMessage, Readable, async iterator) is not
// in the path. It knows nothing of Ollama; lib/upstream.ts decides when to use it.

import { connect, type Socket } from 'node:net';
import { ResponseParser, type ResponseHead } from './h1-parser.js';
import { scanLineFrames, type FramedPiece } from './h1-frames.js';
import { describeNetworkError, upstreamUnreachable } from './errors.js';
import type { UpstreamResponse } from './upstream.js';

/** Body bytes held for a reader that is behind; past this the socket is paused. */
const HIGH_WATER = 64 * 1024;
/**
 * Every socket of every pool reads into this one buffer (net's `onread`: no Readable, no buffer
 * allocated per read). Safe because a read is handled to the end before the next one: the
 * parser copies what it holds, and body pieces are copied before they are handed out.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const MAX_FREE = 64;
/** node's agent expires a free socket this long before upstream's `Keep-Alive: timeout` (agentKeepAliveTimeoutBuffer). */
const KEEP_ALIVE_MARGIN_MS = 1000;

export interface H1Target {
  host: string;
  port: number;
  /** `host[:port]` as the Host header carries it */
  hostHeader: string;
}

export interface H1Request {
  method: string;
  path: string;
  /** header lines already checked: `name: value\r\n` each */
  headerLines: string;
  body?: Uint8Array;
  signal?: AbortSignal;
  /** see UpstreamRequest.lineFrames */
  lineFrames?: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

/** `name: value\r\n` lines, or null when a name or value could not go on the wire as it is (node:http then says why). */
export function renderHeaderLines(headers: Record<string, string | number>): string | null {
  let out = '';
  for (const name in headers) {
    const value = String(headers[name]);
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) return null;
    out += `${name}: ${value}\r\n`;
  }
  return out;
}

function closedEarly(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

const DONE: IteratorResult<Uint8Array> = { value: undefined, done: true };

/** One response; its body is an iterator fed by the connection's reads. */
class H1Response implements UpstreamResponse, AsyncIterator<Uint8Array> {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  readonly #conn: Connection;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #error: Error | null = null;
  #waiter: { resolve: (r: IteratorResult<Uint8Array>) => void; reject: (e: Error) => void } | null = null;
  #iterated = false;
  cutReason: string | null = null;

  constructor(head: ResponseHead, conn: Connection) {
    this.status = head.status;
    this.ok = head.status >= 200 && head.status < 300;
    const h = head.headers;
    this.headers = { get: (name) => h[name.toLowerCase()] ?? null };
    this.#conn = conn;
  }

  get body(): AsyncIterable<Uint8Array> {
    return this;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#iterated) throw new Error('upstream body already read');
    this.#iterated = true;
    return this;
  }

  /** From the connection: one read's worth of body. */
  deliver(piece: Uint8Array): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = null;
      waiter.resolve({ value: piece, done: false });
      return;
    }
    this.#queue.push(piece);
    this.#queued += piece.length;
    if (this.#queued > HIGH_WATER) this.#conn.pauseWanted = true;
  }

  end(): void {
    this.#ended = true;
    const waiter = this.#waiter;
    if (waiter && this.#queue.length === 0) {
      this.#waiter = null;
      waiter.resolve(DONE);
    }
  }

  fail(err: Error): void {
    if (this.#ended || this.#error) return;
    this.#error = err;
    this.#queue = [];
    this.#queued = 0;
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = null;
      waiter.reject(err);
    }
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#queue.length > 0) {
      const value = this.#queue.shift()!;
      this.#queued -= value.length;
      if (this.#queued <= HIGH_WATER && this.#conn.pauseWanted && !this.#ended) this.#conn.resume();
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  /** A for-await left early: the rest of the body is not wanted. */
  return(): Promise<IteratorResult<Uint8Array>> {
    this.discard();
    return Promise.resolve(DONE);
  }

  async text(maxBytes = 256 * 1024 * 1024): Promise<string> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const r = await this.next();
      if (r.done) break;
      total += r.value.length;
      if (total > maxBytes) {
        this.discard();
        throw new Error(`upstream body exceeds ${maxBytes} bytes`);
      }
      chunks.push(r.value);
    }
    return Buffer.concat(chunks, total).toString('utf8');
  }

  discard(): void {
    this.#queue = [];
    this.#queued = 0;
    if (this.#ended || this.#error) return;
    // Not complete: the connection cannot carry another request.
    this.fail(new Error('upstream response discarded'));
    this.#conn.socket.destroy();
  }

  failureReason(): string | null {
    return this.cutReason;
  }
}

interface Exchange {
  resolve(res: UpstreamResponse): void;
  reject(err: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
  response: H1Response | null;
  /** any response byte seen (a reused socket that fails before one may be retried) */
  gotBytes: boolean;
  settled: boolean;
  retry: (() => void) | null;
  conn: Connection | null;
}

/** One socket, carrying one exchange at a time; its listeners are set once. */
class Connection {
  readonly socket: Socket;
  readonly #pool: H1Pool;
  parser: ResponseParser | null = null;
  exchange: Exchange | null = null;
  /** whether a response already completed on it (so a failure before any byte may be a stale socket) */
  reused = false;
  expiresAt = 0;
  /** set while the reader is behind: the read callback then stops reading */
  pauseWanted = false;
  /** the current response's reader takes raw one-line frames (H1Request.lineFrames, a chunked NDJSON 2xx) */
  wantFrames = false;
  #error: Error | null = null;
  #pieces: Buffer[] = [];
  #piecesBytes = 0;
  #complete = false;
  #keepAliveMs: number | null = null;
  readonly #idleMs: number;
  /**
   * The silence timer: one timer per connection that, when it fires, looks at the time of the last
   * read or request and sleeps again for the rest. A socket timeout (socket.setTimeout) would be
   * re-armed on every read, one timer-list move per streamed line (ADR 0026).
   */
  #idleTimer: NodeJS.Timeout | null = null;
  #lastActive = 0;

  constructor(pool: H1Pool, target: H1Target, idleMs: number) {
    this.#pool = pool;
    this.#idleMs = idleMs;
    this.socket = connect({
      host: target.host, port: target.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 1000,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.#onRead(buf as Buffer, n) },
    });
    this.touch();
    this.socket.on('end', () => this.#onEnd());
    this.socket.on('error', (err) => (this.#error ??= err));
    this.socket.on('close', () => this.#onClose());
  }

  /** Activity now (a request written, the socket put in the pool): the silence timer counts from here. */
  touch(): void {
    this.#lastActive = performance.now();
    if (this.#idleTimer === null && !this.socket.destroyed) this.#armIdle(this.#idleMs);
  }

  #armIdle(ms: number): void {
    // unref'd, as a socket timeout is: it never keeps the process alive on its own.
    this.#idleTimer = setTimeout(this.#idleCheck, Math.max(1, Math.ceil(ms)));
    this.#idleTimer.unref();
  }

  readonly #idleCheck = (): void => {
    this.#idleTimer = null;
    if (this.socket.destroyed) return;
    const quiet = performance.now() - this.#lastActive;
    if (quiet < this.#idleMs) this.#armIdle(this.#idleMs - quiet);
    else this.#onTimeout(this.#idleMs);
  };

  start(exchange: Exchange, request: H1Request, head: string): void {
    this.touch();
    this.exchange = exchange;
    this.#complete = false;
    this.wantFrames = false;
    const parser = new ResponseParser({
      head: (h) => {
        this.#keepAliveMs = h.keepAliveMs;
        // Raw frames only where the relay reads NDJSON from a chunked body (decided before the first body byte).
        this.wantFrames = request.lineFrames === true && h.status >= 200 && h.status < 300
          && (h.headers['content-type'] ?? '').includes('application/x-ndjson')
          && /(?:^|,)\s*chunked\s*$/i.test(h.headers['transfer-encoding'] ?? '');
        if (!exchange.settled) {
          exchange.settled = true;
          exchange.response = new H1Response(h, this);
          exchange.resolve(exchange.response);
        }
      },
      body: (piece) => {
        this.#pieces.push(piece);
        this.#piecesBytes += piece.length;
      },
      complete: () => (this.#complete = true),
    }, { noBody: request.method === 'HEAD' });
    this.parser = parser;
    const body = request.body;
    if (body === undefined || body.length === 0) this.socket.write(head, 'latin1');
    else if (body.length <= 64 * 1024) {
      const headBytes = Buffer.byteLength(head, 'latin1');
      const out = Buffer.allocUnsafe(headBytes + body.length);
      out.write(head, 0, 'latin1');
      out.set(body, headBytes);
      this.socket.write(out);
    } else {
      this.socket.cork();
      this.socket.write(head, 'latin1');
      this.socket.write(body);
      this.socket.uncork();
    }
  }

  resume(): void {
    this.pauseWanted = false;
    this.socket.resume();
  }

  /** One read into the shared buffer; false stops reading until resume(). */
  #onRead(buf: Buffer, n: number): boolean {
    const exchange = this.exchange;
    const parser = this.parser;
    if (!exchange || !parser) {
      this.socket.destroy(); // bytes on an idle connection: nothing sane can follow
      return false;
    }
    exchange.gotBytes = true;
    this.#lastActive = performance.now();
    let at = 0;
    try {
      while (at < n) {
        if (this.wantFrames && parser.atChunkBoundary) { // set by the head, maybe in this very read
          // The fast path: whole one-line frames are handed on as they came (one copy out of the shared buffer).
          const scan = scanLineFrames(buf, at, n);
          if (scan.count > 0) {
            this.#flushPieces(); // what the parser decoded before them goes first
            const piece: FramedPiece = Buffer.from(buf.subarray(at, scan.stop));
            piece.lineFrames = { count: scan.count, last: piece.subarray(scan.lastStart - at, scan.lastEnd - at) };
            exchange.response?.deliver(piece);
            at = scan.stop;
            if (at === n) break;
          }
        }
        // Anything else (a cut frame, the last chunk, a frame node would not write): the parser, up to the next boundary.
        at += parser.push(buf.subarray(at, n), this.wantFrames || !parser.headSeen);
      }
    } catch (err) {
      this.#pieces = [];
      this.#piecesBytes = 0;
      this.#fail(err as Error);
      this.socket.destroy();
      return false;
    }
    this.#flushPieces();
    if (this.#complete) this.#finish();
    return !this.pauseWanted;
  }

  #flushPieces(): void {
    const pieces = this.#pieces;
    if (pieces.length === 0) return;
    // Copied out of the shared read buffer (one copy, also when several chunks are joined).
    const piece = pieces.length === 1 ? Buffer.from(pieces[0]!) : Buffer.concat(pieces, this.#piecesBytes);
    this.#pieces = [];
    this.#piecesBytes = 0;
    this.exchange?.response?.deliver(piece);
  }

  /** The response is complete: hand the end to the reader and the socket back to the pool (or close it). */
  #finish(): void {
    const exchange = this.exchange!;
    const parser = this.parser!;
    this.exchange = null;
    this.parser = null;
    exchange.signal?.removeEventListener('abort', exchange.onAbort!);
    const keepAliveMs = this.#keepAliveMs;
    const reusable = parser.reusable && this.socket.writableLength === 0 && !this.socket.destroyed
      && (keepAliveMs === null || keepAliveMs > KEEP_ALIVE_MARGIN_MS);
    exchange.response?.end();
    if (reusable) {
      this.reused = true;
      this.expiresAt = keepAliveMs === null ? 0 : performance.now() + keepAliveMs - KEEP_ALIVE_MARGIN_MS;
      // The body is all delivered: a socket paused for a slow reader must read again (to see upstream close it).
      if (this.pauseWanted) this.resume();
      this.#pool.release(this);
    } else this.socket.destroy();
  }

  #onEnd(): void {
    const parser = this.parser;
    if (!parser || !this.exchange) return;
    try {
      parser.end();
    } catch (err) {
      this.#fail(this.#error ?? closedEarly());
      return;
    }
    this.#flushPieces();
    if (this.#complete) this.#finish();
  }

  #onClose(): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    this.#pool.forget(this);
    if (this.exchange) this.#fail(this.#error ?? closedEarly());
  }

  #onTimeout(idleMs: number): void {
    const exchange = this.exchange;
    if (!exchange) {
      this.socket.destroy(); // idle in the pool for idleMs
      return;
    }
    const reason = `upstream sent nothing for ${idleMs >= 1000 ? `${Math.round(idleMs / 1000)} s` : `${idleMs} ms`}`;
    if (exchange.response) exchange.response.cutReason = reason;
    this.#fail(new Error(reason));
    this.socket.destroy();
  }

  /** The exchange failed: before the head the request rejects (or is retried), after it the body does. */
  #fail(err: Error): void {
    const exchange = this.exchange;
    if (!exchange) return;
    this.exchange = null;
    this.parser = null;
    exchange.signal?.removeEventListener('abort', exchange.onAbort!);
    if (exchange.response) {
      exchange.response.fail(err);
      return;
    }
    if (exchange.settled) return;
    if (exchange.retry && this.reused && !exchange.gotBytes && !exchange.signal?.aborted) {
      // A kept-alive socket upstream closed just as we used it: once more on a new one.
      const retry = exchange.retry;
      exchange.retry = null;
      retry();
      return;
    }
    exchange.settled = true;
    if (exchange.signal?.aborted) exchange.reject(exchange.signal.reason ?? err);
    else exchange.reject(upstreamUnreachable(describeNetworkError(err)));
  }
}

/** The keep-alive pool for one upstream: free sockets, last in first out (as node's agent's 'lifo'). */
export class H1Pool {
  readonly #target: H1Target;
  readonly #idleMs: number;
  readonly #free: Connection[] = [];
  readonly #all = new Set<Connection>();
  /** retired: connections close when their answer is done instead of waiting for reuse */
  #retired = false;

  constructor(target: H1Target, idleMs: number) {
    this.#target = target;
    this.#idleMs = idleMs;
  }

  /** Open connections, busy or free. */
  get size(): number {
    return this.#all.size;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  request(request: H1Request): Promise<UpstreamResponse> {
    const signal = request.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const head = `${request.method} ${request.path} HTTP/1.1\r\nHost: ${this.#target.hostHeader}\r\nConnection: keep-alive\r\n${request.headerLines}\r\n`;
    return new Promise((resolve, reject) => {
      const exchange: Exchange = {
        resolve, reject, signal, onAbort: null, response: null, gotBytes: false, settled: false, retry: null, conn: null,
      };
      const begin = (conn: Connection) => {
        exchange.gotBytes = false;
        exchange.conn = conn;
        conn.start(exchange, request, head);
        if (signal) {
          exchange.onAbort ??= () => {
            if (exchange.conn?.exchange === exchange) exchange.conn.socket.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
          };
          signal.addEventListener('abort', exchange.onAbort, { once: true });
        }
      };
      const conn = this.#take();
      if (conn.reused) exchange.retry = () => begin(this.#open());
      begin(conn);
    });
  }

  #take(): Connection {
    const now = performance.now();
    for (;;) {
      const conn = this.#free.pop();
      if (!conn) return this.#open();
      if (!conn.socket.destroyed && conn.socket.readyState === 'open' && (conn.expiresAt === 0 || now < conn.expiresAt)) {
        conn.socket.ref();
        return conn;
      }
      this.#all.delete(conn);
      conn.socket.destroy();
    }
  }

  #open(): Connection {
    const conn = new Connection(this, this.#target, this.#idleMs);
    this.#all.add(conn);
    return conn;
  }

  release(conn: Connection): void {
    if (this.#retired || this.#free.length >= MAX_FREE) {
      conn.socket.destroy();
      return;
    }
    conn.socket.unref(); // a free socket does not keep the process alive (node's agent does the same)
    conn.touch(); // idle in the pool for idleMs: closed
    this.#free.push(conn);
  }

  forget(conn: Connection): void {
    this.#all.delete(conn);
    const i = this.#free.indexOf(conn);
    if (i !== -1) this.#free.splice(i, 1);
  }

  /** No more requests are coming (the host moved): free connections close now, busy ones when done. */
  retire(): void {
    this.#retired = true;
    for (const conn of this.#free.splice(0)) conn.socket.destroy();
  }

  close(): void {
    for (const conn of this.#all) conn.socket.destroy();
    this.#all.clear();
    this.#free.length = 0;
  }
}
