// Chunk frames that can go to the client as they came (ADR 0026): each holds exactly one
// complete JSON-object line, framed exactly as node frames a write() (lower-case hex length,
// no leading zero, no extension). Ollama flushes one line per chunk, so nearly every read of
// a stream is such frames; anything else takes the line splitter. Pure: no sockets.

import { isJsonObjectLineAt } from './ndjson.js';

const CR = 0x0d;
const LF = 0x0a;

/** What a body piece carries when it is raw frames rather than decoded bytes. */
export interface LineFrames {
  /** frames in the piece */
  count: number;
  /** the last line (a view into the piece), for the relay's books */
  last: Uint8Array;
}

/** A body piece of raw frames, marked for the relay; other readers never get one. */
export type FramedPiece = Uint8Array & { lineFrames?: LineFrames };

export interface FrameScan {
  /** end of the last whole, canonical one-line frame (== at when none) */
  stop: number;
  count: number;
  lastStart: number;
  lastEnd: number;
}

function lowerHex(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/**
 * Walks `buf[at, end)` frame by frame while each frame is whole and canonical and holds one
 * JSON-object line; stops before the first that is not (a partial frame, the last-chunk `0`,
 * upper-case hex, an extension, two lines or half a line in one chunk).
 */
export function scanLineFrames(buf: Uint8Array, at: number, end: number): FrameScan {
  const scan: FrameScan = { stop: at, count: 0, lastStart: at, lastEnd: at };
  let i = at;
  while (i < end) {
    // size: 1..8 lower-case hex digits, no leading zero (node writes a length that way)
    let size = lowerHex(buf[i]!);
    if (size <= 0) break;
    let j = i + 1;
    for (; j < end && j - i < 8; j++) {
      const v = lowerHex(buf[j]!);
      if (v < 0) break;
      size = size * 16 + v;
    }
    if (j + 1 >= end || buf[j] !== CR || buf[j + 1] !== LF) break;
    const start = j + 2;
    const stop = start + size;
    if (stop + 2 > end || buf[stop] !== CR || buf[stop + 1] !== LF) break;
    if (buf[stop - 1] !== LF || buf.indexOf(LF, start) !== stop - 1) break;
    if (!isJsonObjectLineAt(buf, start, stop)) break;
    scan.count++;
    scan.lastStart = start;
    scan.lastEnd = stop;
    i = stop + 2;
    scan.stop = i;
  }
  return scan;
}

/** The lines of raw frames found by scanLineFrames, joined: for a reader that needs the bytes alone. */
export function decodeLineFrames(frames: Uint8Array): Buffer {
  const pieces: Uint8Array[] = [];
  let total = 0;
  let i = 0;
  while (i < frames.length) {
    let size = 0;
    while (frames[i] !== CR) size = size * 16 + lowerHex(frames[i++]!);
    const start = i + 2;
    pieces.push(frames.subarray(start, start + size));
    total += size;
    i = start + size + 2;
  }
  return Buffer.concat(pieces, total);
}
