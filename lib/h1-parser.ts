// An HTTP/1.1 response parser for the upstream client (lib/h1-client.ts): status line, headers,
// then a content-length, chunked or close-delimited body, fed socket reads cut anywhere. Pure:
// no sockets, no timers. Every buffer it holds has a bound; past it the response is an error.

const CR = 0x0d;
const LF = 0x0a;

/** Bound on the status line and headers together (node's own default is 16 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Bound on one chunk-size line, extensions included. */
export const MAX_CHUNK_LINE_BYTES = 4096;
/** Bound on the trailer section after the last chunk. */
export const MAX_TRAILER_BYTES = 16 * 1024;

export class ProtocolError extends Error {
  readonly code = 'HPE_INVALID';
  constructor(message: string) {
    super(`upstream sent a malformed response: ${message}`);
    this.name = 'ProtocolError';
  }
}

export interface ResponseHead {
  status: number;
  /** lower-cased names; repeated headers joined with ', ' */
  headers: Record<string, string>;
  /** whether the connection may carry another request once this body is complete */
  keepAlive: boolean;
  /** from `Keep-Alive: timeout=N`, in ms, when upstream said */
  keepAliveMs: number | null;
}

export interface ParserEvents {
  head(head: ResponseHead): void;
  /** A piece of body: a view into the read that carried it (not copied). */
  body(piece: Buffer): void;
  /** The body is complete. */
  complete(): void;
}

const enum State { Head, Length, ChunkSize, ChunkData, ChunkDataEnd, Trailer, Close, Done }

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;
/** Headers node's IncomingMessage keeps the first of when repeated. */
const SINGLE = new Set([
  'age', 'authorization', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since', 'if-unmodified-since',
  'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  return -1;
}

function hasToken(list: string | undefined, token: string): boolean {
  if (list === undefined) return false;
  for (const part of list.split(',')) if (part.trim().toLowerCase() === token) return true;
  return false;
}

/**
 * One response at a time: create it when the request is written, feed it every read with
 * push(), and end() when the socket ends. `noBody` for a HEAD request. 1xx heads are skipped.
 */
export class ResponseParser {
  readonly #events: ParserEvents;
  readonly #noBody: boolean;
  #state = State.Head;
  #held: Buffer | null = null; // a partial head, chunk-size line or trailer
  #remaining = 0; // body bytes left in a length body or the current chunk
  #dataEndSeen = 0; // bytes of the CRLF after chunk data seen so far
  #lineBytes = 0; // bytes of the current trailer line, CR aside
  #trailerBytes = 0;
  #extra = 0;
  #keepAlive = false;

  constructor(events: ParserEvents, options: { noBody?: boolean } = {}) {
    this.#events = events;
    this.#noBody = options.noBody ?? false;
  }

  get done(): boolean {
    return this.#state === State.Done;
  }

  /** Between chunks of a chunked body, nothing held: the next byte starts a chunk-size line. */
  get atChunkBoundary(): boolean {
    return this.#state === State.ChunkSize && this.#held === null;
  }

  /** Whether the head arrived (the body may be under way). */
  get headSeen(): boolean {
    return this.#state !== State.Head;
  }

  /**
   * Feeds one read; returns how much of it was taken: all of it, unless `untilBoundary` asks to
   * stop where a chunk-size line is next (the client then looks for frames it can pass on whole).
   * Throws ProtocolError on a malformed or oversized response.
   */
  /** Hands on the body bytes from `at` that the current length or chunk still expects; returns where they end. */
  #bodyBytes(buf: Buffer, at: number): number {
    const n = Math.min(this.#remaining, buf.length - at);
    this.#events.body(at === 0 && n === buf.length ? buf : buf.subarray(at, at + n));
    this.#remaining -= n;
    return at + n;
  }

  push(buf: Buffer, untilBoundary = false): number {
    let at = 0;
    const end = buf.length;
    while (at < end) {
      switch (this.#state) {
        case State.Head:
          at = this.#head(buf, at);
          if (untilBoundary && this.atChunkBoundary) return at;
          break;
        case State.Length:
          at = this.#bodyBytes(buf, at);
          if (this.#remaining === 0) this.#finish();
          break;
        case State.ChunkSize:
          at = this.#chunkSize(buf, at);
          break;
        case State.ChunkData: {
          at = this.#bodyBytes(buf, at);
          if (this.#remaining === 0) {
            this.#state = State.ChunkDataEnd;
            this.#dataEndSeen = 0;
          }
          break;
        }
        case State.ChunkDataEnd: {
          // The CRLF after a chunk's data, possibly split between reads.
          const byte = buf[at]!;
          if (this.#dataEndSeen === 0 && byte === CR) {
            this.#dataEndSeen = 1;
            at++;
          } else if (byte === LF) {
            at++;
            this.#state = State.ChunkSize;
            if (untilBoundary) return at;
          } else throw new ProtocolError('chunk data not followed by CRLF');
          break;
        }
        case State.Trailer:
          at = this.#trailer(buf, at);
          break;
        case State.Close:
          this.#events.body(at === 0 ? buf : buf.subarray(at));
          at = end;
          break;
        case State.Done:
          // Bytes after a complete response: a well-behaved upstream sends none.
          this.#extra += end - at;
          return end;
      }
    }
    return end;
  }

  /** The socket ended: completes a close-delimited body; otherwise the response was cut short. */
  end(): void {
    if (this.#state === State.Close) {
      this.#finish();
      return;
    }
    if (this.#state !== State.Done) throw new ProtocolError(this.#state === State.Head ? 'connection closed before the response head' : 'connection closed mid-body');
  }

  #finish(): void {
    this.#state = State.Done;
    this.#held = null;
    this.#events.complete();
  }

  /** Appends to the held partial line/head; returns the whole of it (the held part first). */
  #hold(piece: Buffer, limit: number, what: string): Buffer {
    const total = (this.#held?.length ?? 0) + piece.length;
    if (total > limit) throw new ProtocolError(`${what} over ${limit} bytes`);
    this.#held = this.#held ? Buffer.concat([this.#held, piece], total) : Buffer.from(piece);
    return this.#held;
  }

  #head(buf: Buffer, at: number): number {
    // Where the blank line ends, searching the held bytes' tail too (the CRLFCRLF may be split).
    const held = this.#held;
    const heldLen = held?.length ?? 0;
    const joined = held ? Buffer.concat([held, buf.subarray(at)]) : buf.subarray(at);
    const from = Math.max(0, heldLen - 3);
    const blank = joined.indexOf('\r\n\r\n', from, 'latin1');
    if (blank === -1) {
      if (joined.length > MAX_HEAD_BYTES) throw new ProtocolError(`header block over ${MAX_HEAD_BYTES} bytes`);
      this.#held = held ? joined : Buffer.from(joined);
      return buf.length;
    }
    if (blank + 4 > MAX_HEAD_BYTES) throw new ProtocolError(`header block over ${MAX_HEAD_BYTES} bytes`);
    this.#held = null;
    const consumed = at + blank + 4 - heldLen;
    this.#parseHead(joined.toString('latin1', 0, blank));
    return consumed;
  }

  #parseHead(text: string): void {
    const lines = text.split('\r\n');
    const m = STATUS_LINE.exec(lines[0]!);
    if (!m) throw new ProtocolError('bad status line');
    const http11 = m[1] === '1';
    const status = Number(m[2]);
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new ProtocolError('bad header line');
      const name = line.slice(0, colon);
      if (!TOKEN.test(name)) throw new ProtocolError('bad header name');
      const value = line.slice(colon + 1).trim();
      const key = name.toLowerCase();
      const seen = headers[key];
      if (seen === undefined) headers[key] = value;
      else if (key === 'content-length') {
        if (seen !== value) throw new ProtocolError('conflicting content-length');
      } else if (!SINGLE.has(key)) headers[key] = `${seen}, ${value}`;
      // else: node keeps the first of a header that may appear once; so do we.
    }
    if (status >= 100 && status < 200) {
      if (status === 101) throw new ProtocolError('unexpected 101 Switching Protocols');
      return; // an interim response: the real one follows (state stays Head)
    }
    const connection = headers.connection;
    let keepAlive = http11 ? !hasToken(connection, 'close') : hasToken(connection, 'keep-alive');
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    let length = -1;
    if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) throw new ProtocolError('bad content-length');
      length = Number(cl);
    }
    let keepAliveMs: number | null = null;
    const ka = headers['keep-alive'];
    if (ka !== undefined) {
      const t = /(?:^|[,\s])timeout=(\d+)/i.exec(ka);
      if (t) keepAliveMs = Number(t[1]) * 1000;
    }
    this.#events.head({ status, headers, keepAlive, keepAliveMs });
    if (this.#noBody || status === 204 || status === 304) return this.#finishHead(keepAlive);
    if (te !== undefined) {
      // Both a coding and a length: the coding wins and the connection may not be trusted again.
      if (cl !== undefined) keepAlive = false;
      const codings = te.split(',');
      if (codings[codings.length - 1]!.trim().toLowerCase() === 'chunked') {
        this.#keepAlive = keepAlive;
        this.#state = State.ChunkSize;
        return;
      }
      this.#keepAlive = false;
      this.#state = State.Close;
      return;
    }
    if (length >= 0) {
      this.#keepAlive = keepAlive;
      if (length === 0) return this.#finishHead(keepAlive);
      this.#remaining = length;
      this.#state = State.Length;
      return;
    }
    this.#keepAlive = false;
    this.#state = State.Close;
  }

  /** Bytes that came after the complete response (then the connection is not reused). */
  get extraBytes(): number {
    return this.#extra;
  }

  /** Whether the connection may be reused: only after a complete body and when upstream allows it. */
  get reusable(): boolean {
    return this.#state === State.Done && this.#keepAlive && this.#extra === 0;
  }

  #finishHead(keepAlive: boolean): void {
    this.#keepAlive = keepAlive;
    this.#finish();
  }

  #chunkSize(buf: Buffer, at: number): number {
    const nl = buf.indexOf(LF, at);
    if (nl === -1) {
      this.#hold(buf.subarray(at), MAX_CHUNK_LINE_BYTES, 'chunk-size line');
      return buf.length;
    }
    let line: Buffer;
    if (this.#held) {
      line = this.#hold(buf.subarray(at, nl), MAX_CHUNK_LINE_BYTES, 'chunk-size line');
      this.#held = null;
    } else {
      if (nl - at > MAX_CHUNK_LINE_BYTES) throw new ProtocolError(`chunk-size line over ${MAX_CHUNK_LINE_BYTES} bytes`);
      line = buf.subarray(at, nl);
    }
    let len = line.length;
    if (len > 0 && line[len - 1] === CR) len--;
    let size = 0;
    let i = 0;
    for (; i < len; i++) {
      const v = hexValue(line[i]!);
      if (v < 0) break;
      if (i >= 12) throw new ProtocolError('chunk size too large');
      size = size * 16 + v;
    }
    if (i === 0) throw new ProtocolError('bad chunk size');
    // After the digits: optional whitespace, then the end or `;extensions` (ignored).
    while (i < len && (line[i] === 0x20 || line[i] === 0x09)) i++;
    if (i < len && line[i] !== 0x3b) throw new ProtocolError('bad chunk size');
    if (size === 0) {
      this.#state = State.Trailer;
      this.#lineBytes = 0;
      this.#trailerBytes = 0;
    } else {
      this.#remaining = size;
      this.#state = State.ChunkData;
    }
    return nl + 1;
  }

  #trailer(buf: Buffer, at: number): number {
    // Trailer lines until an empty one; their content is dropped, only counted against the bound.
    for (; at < buf.length; at++) {
      const byte = buf[at]!;
      if (byte === LF) {
        if (this.#lineBytes === 0) {
          this.#finish();
          return at + 1;
        }
        this.#lineBytes = 0;
      } else if (byte !== CR) this.#lineBytes++;
      if (++this.#trailerBytes > MAX_TRAILER_BYTES) throw new ProtocolError(`trailer section over ${MAX_TRAILER_BYTES} bytes`);
    }
    return at;
  }
}
