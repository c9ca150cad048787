// Splits a byte stream into complete lines (NDJSON) or events (SSE) without
// decoding: a cut can fall anywhere, even inside a UTF-8 sequence, and since
// '\n' (0x0A) never occurs inside a multi-byte sequence, splitting bytes on it is exact.

const NL = 0x0a;

export class LineTooLongError extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`upstream sent a line longer than ${limit} bytes`);
    this.name = 'LineTooLongError';
    this.limit = limit;
  }
}

/** Default bound on one line: far above any real chunk, below what would hurt the process. */
export const MAX_LINE_BYTES = 32 * 1024 * 1024;

/**
 * Holds at most one partial line (bounded by maxLine) and hands out complete
 * lines, each ending in '\n'. Lines are views into the input chunks where possible.
 */
export class LineSplitter {
  #carry: Uint8Array[] = [];
  #carryBytes = 0;
  readonly #maxLine: number;

  constructor(maxLine = MAX_LINE_BYTES) {
    this.#maxLine = maxLine;
  }

  get pendingBytes(): number {
    return this.#carryBytes;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    const lines: Uint8Array[] = [];
    let start = 0;
    let nl = chunk.indexOf(NL);
    while (nl !== -1) {
      const piece = chunk.subarray(start, nl + 1);
      if (this.#carryBytes > 0) {
        this.#check(this.#carryBytes + piece.length);
        this.#carry.push(piece);
        lines.push(Buffer.concat(this.#carry, this.#carryBytes + piece.length));
        this.#carry = [];
        this.#carryBytes = 0;
      } else {
        this.#check(piece.length);
        lines.push(piece);
      }
      start = nl + 1;
      nl = chunk.indexOf(NL, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#check(this.#carryBytes + rest.length);
      this.#carry.push(rest);
      this.#carryBytes += rest.length;
    }
    return lines;
  }

  /** The unterminated last line, with '\n' added, or null when nothing is held. */
  flush(): Uint8Array | null {
    if (this.#carryBytes === 0) return null;
    const line = Buffer.concat([...this.#carry, Buffer.from('\n')], this.#carryBytes + 1);
    this.#carry = [];
    this.#carryBytes = 0;
    return line;
  }

  #check(bytes: number): void {
    if (bytes > this.#maxLine) {
      this.#carry = [];
      this.#carryBytes = 0;
      throw new LineTooLongError(this.#maxLine);
    }
  }
}

/** A line that is only '\n' or '\r\n'. */
export function isBlankLine(line: Uint8Array): boolean {
  return line.length === 1 || (line.length === 2 && line[0] === 0x0d);
}

/**
 * Groups lines into SSE events: an event is every line up to and including
 * the blank line that ends it (`data: …\n\n`). Bounded like the line splitter.
 */
export class EventSplitter {
  readonly #lines: LineSplitter;
  #event: Uint8Array[] = [];
  #eventBytes = 0;
  readonly #maxEvent: number;

  constructor(maxEvent = MAX_LINE_BYTES) {
    this.#lines = new LineSplitter(maxEvent);
    this.#maxEvent = maxEvent;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    const events: Uint8Array[] = [];
    for (const line of this.#lines.push(chunk)) this.#take(line, events);
    return events;
  }

  /** What is left: an event missing its blank line gets one. */
  flush(): Uint8Array | null {
    const last = this.#lines.flush();
    const events: Uint8Array[] = [];
    if (last) this.#take(last, events);
    if (events.length) return events[0]!;
    if (this.#eventBytes === 0) return null;
    this.#event.push(Buffer.from('\n'));
    const out = Buffer.concat(this.#event, this.#eventBytes + 1);
    this.#event = [];
    this.#eventBytes = 0;
    return out;
  }

  #take(line: Uint8Array, events: Uint8Array[]): void {
    if (isBlankLine(line)) {
      if (this.#eventBytes === 0) return; // stray blank line between events: nothing to deliver
      this.#event.push(line);
      events.push(Buffer.concat(this.#event, this.#eventBytes + line.length));
      this.#event = [];
      this.#eventBytes = 0;
      return;
    }
    if (this.#eventBytes + line.length > this.#maxEvent) {
      this.#event = [];
      this.#eventBytes = 0;
      throw new LineTooLongError(this.#maxEvent);
    }
    this.#event.push(line);
    this.#eventBytes += line.length;
  }
}

/** Cheap shape check for the hot path: a JSON object line starts with '{' and ends with '}\n'. */
export function looksLikeJsonObjectLine(line: Uint8Array): boolean {
  return isJsonObjectLineAt(line, 0, line.length);
}

/** The same check on `buf[start, end)` (a line ending in '\n'), without a view. */
export function isJsonObjectLineAt(buf: Uint8Array, start: number, endOfLine: number): boolean {
  let end = endOfLine - 1; // skip '\n'
  if (end > start && buf[end - 1] === 0x0d) end--;
  let i = start;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
  let j = end - 1;
  while (j > i && (buf[j] === 0x20 || buf[j] === 0x09)) j--;
  return buf[i] === 0x7b && buf[j] === 0x7d;
}
