// Upstream body -> client, one complete line (NDJSON) or event (SSE) per write.
// Backpressure: when write() says false we wait for 'drain' or 'close', so a slow
// reader holds at most one socket buffer here, never the whole stream (SPEC §2).

import type { ServerResponse } from 'node:http';
import { EventSplitter, LineSplitter, looksLikeJsonObjectLine } from '../ndjson.js';
import type { UpstreamResponse } from '../upstream.js';
import { describeNetworkError } from '../errors.js';
import { writeFrames, writeUnits } from './unit-writer.js';
import { decodeLineFrames, type FramedPiece } from '../h1-frames.js';

export type Framing = 'ndjson' | 'sse' | 'raw';

export interface RelayResult {
  outcome: 'done' | 'client_gone' | 'upstream_error';
  error: string | null;
  /** the last complete line or event */
  last: Uint8Array | null;
  /** the last one that carries data (not `data: [DONE]`), for the final chunk's counts */
  lastData: Uint8Array | null;
  /** ms from relay start to the first unit written, null when none */
  firstUnitMs: number | null;
}

export interface RelayOptions {
  framing: Framing;
  /** Aborted when the client goes away; also what cancels the upstream fetch. */
  signal: AbortSignal;
  /** Renders the one error unit written when upstream fails mid-stream. */
  renderError?: (message: string) => Uint8Array;
  /** Whether the last unit ends the stream properly, for surfaces whose end is not NDJSON done or SSE [DONE]. */
  endsStream?: (last: Uint8Array) => boolean;
  now?: () => number;
}

/**
 * Resolves true on 'drain', false on 'close' or abort; removes its listeners either way. The
 * socket's own 'drain' counts too: frames may have been written to it directly (writeFrames).
 */
export function waitForDrain(res: ServerResponse, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = res.socket;
    const finish = (ok: boolean) => {
      res.off('drain', onDrain);
      socket?.off('drain', onDrain);
      res.off('close', onClose);
      signal?.removeEventListener('abort', onClose);
      resolve(ok);
    };
    const onDrain = () => finish(true);
    const onClose = () => finish(false);
    res.once('drain', onDrain);
    socket?.once('drain', onDrain);
    res.once('close', onClose);
    signal?.addEventListener('abort', onClose, { once: true });
  });
}

/** Writes one unit; false when the client is gone (or the job was aborted while the client read slowly). */
export async function writeUnit(res: ServerResponse, unit: Uint8Array, signal?: AbortSignal): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return false;
  if (res.write(unit)) return true;
  return waitForDrain(res, signal);
}

const DONE_MARK = Buffer.from('"done":true');
const ERROR_MARK = Buffer.from('{"error"');
const SSE_DONE = Buffer.from('data: [DONE]');
// Anthropic's closing event carries no counts; they are in the message_delta before it.
const MESSAGE_STOP = Buffer.from('event: message_stop');

const startsWith = (unit: Uint8Array, mark: Buffer) =>
  unit.length >= mark.length && Buffer.from(unit.buffer, unit.byteOffset, mark.length).equals(mark);

/** A closing unit without data: `data: [DONE]`, or Anthropic's `message_stop`. */
function isSseDone(unit: Uint8Array): boolean {
  return startsWith(unit, SSE_DONE) || startsWith(unit, MESSAGE_STOP);
}

/** Did this stream end the way clients expect (a done chunk, an error line, or [DONE])? */
function endedProperly(framing: Framing, last: Uint8Array | null): boolean {
  if (framing === 'raw') return true;
  if (!last) return false;
  const buf = Buffer.from(last.buffer, last.byteOffset, last.byteLength);
  if (framing === 'sse') return buf.indexOf(SSE_DONE) !== -1 || buf.indexOf('"error"') !== -1;
  return buf.indexOf(DONE_MARK) !== -1 || buf.indexOf(ERROR_MARK) !== -1 || buf.indexOf('"status":"success"') !== -1;
}

export async function relayBody(upstream: UpstreamResponse, res: ServerResponse, options: RelayOptions): Promise<RelayResult> {
  const now = options.now ?? performance.now.bind(performance);
  const started = now();
  const result: RelayResult = { outcome: 'done', error: null, last: null, lastData: null, firstUnitMs: null };
  const splitter = options.framing === 'ndjson' ? new LineSplitter() : options.framing === 'sse' ? new EventSplitter() : null;

  // Hot path: the units of one upstream read leave in one write; a full socket buffer is awaited
  // once per upstream read, so there is no promise per chunk unless the client reads slowly.
  let needDrain = false;
  let previous: Uint8Array | null = null;
  const emit = (units: readonly Uint8Array[]): boolean => {
    if (units.length === 0) return !res.destroyed;
    if (result.firstUnitMs === null) result.firstUnitMs = now() - started;
    previous = units.length > 1 ? units[units.length - 2]! : result.last;
    result.last = units[units.length - 1]!;
    if (res.destroyed || res.writableEnded) return false;
    if (!writeUnits(res, units)) needDrain = true;
    return true;
  };
  // Whole one-line frames from upstream go out as they came when nothing is held (ADR 0026):
  // the bytes are exactly those writeUnits would build from their lines.
  const lines = splitter instanceof LineSplitter ? splitter : null;
  const framesOk = lines !== null && res.chunkedEncoding && res.headersSent;
  const emitFrames = (piece: FramedPiece): boolean => {
    if (result.firstUnitMs === null) result.firstUnitMs = now() - started;
    result.last = piece.lineFrames!.last;
    if (res.destroyed || res.writableEnded) return false;
    if (!writeFrames(res, piece)) needDrain = true;
    return true;
  };
  const drained = (): boolean | Promise<boolean> => {
    if (!needDrain) return !res.destroyed;
    needDrain = false;
    return waitForDrain(res, options.signal);
  };
  const fail = async (message: string) => {
    result.outcome = 'upstream_error';
    result.error = message;
    upstream.discard();
    if (options.renderError && !res.destroyed) await writeUnit(res, options.renderError(message), options.signal);
  };
  const gone = () => {
    result.outcome = 'client_gone';
    upstream.discard();
    return result;
  };

  try {
    for await (let chunk of upstream.body) {
      let units: Uint8Array[];
      if ((chunk as FramedPiece).lineFrames !== undefined) {
        if (framesOk && lines!.pendingBytes === 0) {
          if (!emitFrames(chunk)) return gone();
          const ok = drained();
          if (ok !== true && !(await ok)) return gone();
          continue;
        }
        chunk = decodeLineFrames(chunk); // a partial line is held (or the client is not chunked): the lines alone
      }
      if (!splitter) units = [chunk];
      else {
        units = splitter.push(chunk);
        if (options.framing === 'ndjson') {
          const bad = units.findIndex((unit) => !looksLikeJsonObjectLine(unit));
          if (bad !== -1) {
            // The good lines before the bad one still go out, as they did one by one.
            if (!emit(units.slice(0, bad))) return gone();
            await fail('upstream sent a malformed line');
            return result;
          }
        }
      }
      if (!emit(units)) return gone();
      const ok = drained();
      if (ok !== true && !(await ok)) return gone();
    }
    const tail = splitter?.flush();
    if (tail && (!emit([tail]) || !(await drained()))) return gone();
    result.lastData = result.last !== null && isSseDone(result.last) ? previous : result.last;
    const ended = options.endsStream && result.last ? options.endsStream(result.last) : endedProperly(options.framing, result.last);
    if (!ended) await fail('upstream ended the stream early');
  } catch (err) {
    if (options.signal.aborted || res.destroyed) return gone();
    await fail(`upstream failed mid-stream: ${upstream.failureReason() ?? describeNetworkError(err)}`);
  }
  return result;
}
