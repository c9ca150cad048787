// One run of an async job against upstream: stream the answer, merge it, and say how the
// run ended. It changes no job state; service.ts turns the outcome into transitions.

import { stopCodeOf } from '../errors.js';
import { LineSplitter } from '../ndjson.js';
import { ResultTooLargeError, StreamMerger } from './stream-merge.js';
import { parseRetryAfter, readUpstreamError, type Upstream, type UpstreamResponse } from '../upstream.js';
import type { JobError, JobKind } from './records.js';

export type RunOutcome =
  | { kind: 'completed'; response: Record<string, unknown> }
  | { kind: 'failed'; error: JobError;
      /** upstream could not be reached, or the connection died mid-answer: worth another try (ADR 0011) */
      retriable: boolean;
      /** upstream said 429 (a cloud usage limit, SPEC §12): run again after this many ms */
      retryAfterMs?: number }
  | { kind: 'aborted'; shutdown: boolean };

/** When a 429 carries no Retry-After: wait this long rather than hammer a spent account. */
export const DEFAULT_RETRY_AFTER_MS = 60_000;

export async function runOnce(
  upstream: Upstream, kind: JobKind, body: Record<string, unknown>, signal: AbortSignal, answered: () => void,
  now: () => number = Date.now,
): Promise<RunOutcome> {
  const path = kind === 'chat' ? '/api/chat' : '/api/generate';
  const merger = new StreamMerger(kind);
  let failure: JobError | null = null;
  let res: UpstreamResponse | undefined;
  let retryAfterMs: number | undefined;
  try {
    // Async jobs always stream from upstream: the merged result is what Ollama returns for stream:false.
    res = await upstream.send(path, { body: JSON.stringify({ ...body, stream: true }), signal });
    answered();
    if (!res.ok) {
      if (res.status === 429) retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), now()) ?? DEFAULT_RETRY_AFTER_MS;
      failure = { message: await readUpstreamError(res), status: res.status };
    } else if ((res.headers.get('content-type') ?? '').includes('ndjson')) {
      failure = await readStream(res, merger);
    } else {
      // A preload answers one JSON object, not a stream.
      const parsed = JSON.parse(await res.text()) as Record<string, unknown>;
      failure = merger.push(parsed) !== null ? { message: String(parsed.error) } : null;
    }
    // The connection ended without Ollama's final chunk: the runner died or the host went away.
    if (!failure && !merger.done) return { kind: 'failed', error: { message: 'upstream ended the stream before done' }, retriable: true };
  } catch (err) {
    if (signal.aborted) return { kind: 'aborted', shutdown: stopCodeOf(signal) === 'shutdown' };
    const e = err as { status?: number; message?: string; code?: string };
    const message = res?.failureReason() ?? (res ? `upstream failed mid-stream: ${e.message}` : e.message ?? String(err));
    // Before an answer only an unreachable upstream is worth a retry; once answering, any
    // network failure (reset, silence past the idle limit) is the generation dying mid-stream.
    const garbage = err instanceof ResultTooLargeError || err instanceof SyntaxError;
    const retriable = res ? !garbage && e.status === undefined : e.code === 'upstream_unreachable';
    return { kind: 'failed', error: { message, ...(e.status ? { status: e.status } : {}) }, retriable };
  }
  if (!failure) return { kind: 'completed', response: merger.result()! };
  return { kind: 'failed', error: failure, retriable: false, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
}

/** Reads an NDJSON body into the merger; returns the failure, if any. */
async function readStream(res: UpstreamResponse, merger: StreamMerger): Promise<JobError | null> {
  const splitter = new LineSplitter();
  const decoder = new TextDecoder();
  const take = (line: Uint8Array): JobError | null => {
    let chunk: Record<string, unknown>;
    try {
      chunk = JSON.parse(decoder.decode(line)) as Record<string, unknown>;
    } catch {
      return { message: 'upstream sent a malformed line' };
    }
    const error = merger.push(chunk);
    return error === null ? null : { message: error };
  };
  for await (const chunk of res.body) {
    for (const line of splitter.push(chunk)) {
      const failure = take(line);
      if (failure) {
        res.discard();
        return failure;
      }
    }
  }
  const last = splitter.flush();
  return last ? take(last) : null;
}
