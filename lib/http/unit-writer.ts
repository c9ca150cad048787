// Writes whole lines or events to a response: the units that arrived together leave in one
// write() (one syscall), yet each stays its own HTTP chunk on the wire, as before (SPEC §2).
// Node would frame every write() itself, at several socket writes per unit; we frame a batch once.

import type { ServerResponse } from 'node:http';

/** node's own fields (stable since node 12): whether the head left, and what waits for a socket. */
interface ResponseInternals {
  _headerSent?: boolean;
  outputData?: unknown[];
}

const CRLF_0 = 0x0d;
const CRLF_1 = 0x0a;
const HEX = Buffer.from('0123456789abcdef', 'latin1');

function hexDigits(n: number): number {
  let digits = 1;
  while (n >= 16) {
    n = Math.floor(n / 16);
    digits++;
  }
  return digits;
}

/** `<hex length>\r\n<unit>\r\n` for each unit, in one buffer: exactly the frames node writes per write(). */
export function chunkFrames(units: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const unit of units) total += hexDigits(unit.length) + unit.length + 4;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const unit of units) {
    let n = unit.length;
    const digits = hexDigits(n);
    for (let i = digits - 1; i >= 0; i--) {
      out[at + i] = HEX[n % 16]!;
      n = Math.floor(n / 16);
    }
    at += digits;
    out[at++] = CRLF_0;
    out[at++] = CRLF_1;
    out.set(unit, at);
    at += unit.length;
    out[at++] = CRLF_0;
    out[at++] = CRLF_1;
  }
  return out;
}

/**
 * Writes `units` (each a complete line or event) with one write() of one buffer, even for a
 * single unit (node's own framing costs four socket writes per unit). Returns write()'s answer:
 * false means the socket buffer is full and the caller should wait for 'drain'.
 * Headers must have been sent (writeHead) when the response is chunked.
 */
export function writeUnits(res: ServerResponse, units: readonly Uint8Array[]): boolean {
  if (units.length === 0) return !res.writableNeedDrain;
  if (res.chunkedEncoding && res.headersSent) return writeFrames(res, chunkFrames(units));
  // A length-delimited or close-delimited body has no frames: the bytes alone.
  return res.write(units.length === 1 ? units[0]! : Buffer.concat(units));
}

/**
 * Writes chunk frames already built (by chunkFrames, or upstream's own, checked to be exactly what chunkFrames
 * would build: lib/h1-frames.ts) with one write(). Only for a chunked response whose headers are set.
 */
export function writeFrames(res: ServerResponse, frames: Uint8Array): boolean {
  // Once the head is on the socket and nothing of this response waits in it, frames go to the
  // socket itself: ServerResponse.write would cork it and uncork a tick later (a nextTick and a
  // buffered write per streamed line, ADR 0026) only to make the same one write. The order of
  // bytes is the socket's; res.end() still writes the last chunk after these. A false answer
  // means the socket's buffer is full: waitForDrain (proxy.ts) listens on the socket too.
  const socket = res.socket;
  if (socket !== null && (res as ResponseInternals)._headerSent === true && (res as ResponseInternals).outputData?.length === 0
    && !res.writableEnded && socket.writable) {
    return socket.write(frames);
  }
  // node frames each write() as one chunk; these are framed already, so for this one call it
  // must not frame again. Restored at once: res.end() still writes the last chunk.
  res.chunkedEncoding = false;
  try {
    return res.write(frames);
  } finally {
    res.chunkedEncoding = true;
  }
}

/**
 * Writes a unit that may be skipped (a heartbeat) only when the socket has room: a client that
 * does not read while it waits in the queue must not make foreman buffer a beat per interval.
 */
export function writeIfRoom(res: ServerResponse, unit: Uint8Array): boolean {
  if (res.destroyed || res.writableEnded || res.writableNeedDrain) return false;
  res.write(unit);
  return true;
}
