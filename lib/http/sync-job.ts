// A sync generation as a queued job: the caller waits in the queue, and when the
// job starts, upstream's status, headers and body reach it unchanged, one line
// or event per write (SPEC §2, §7). Shared by the native and /v1 surfaces.

import { describeNetworkError, forbidden, internal, isHttpError, shuttingDown, StopReason, upstreamUnreachable, type HttpError } from '../errors.js';
import { groupKey } from '../sched/model-group.js';
import { newJobId } from '../jobs/ids.js';
import { parsePriority } from './priority.js';
import type { GenerationKind, GenerationRequest } from './generation-request.js';
import { forwardableHeaders, readUpstreamError, type Upstream, type UpstreamResponse } from '../upstream.js';
import type { FinishState, RunContext, Scheduler } from '../sched/scheduler.js';
import { relayBody, writeUnit, type Framing, type RelayResult } from './proxy.js';
import { copyResponseHeaders } from './passthrough.js';
import { writeIfRoom } from './unit-writer.js';
import { sendError } from './body.js';
import { endOfStream, errorUnit, heartbeatUnit, isSseKind } from './stream-units.js';
import type { RequestContext } from './server.js';
import { ArrivalMemory } from './arrival-memory.js';
import { ANONYMOUS, mayUseModel, priorityFor, type Key } from '../keys/keys-file.js';

export interface SyncJobDeps {
  scheduler: Scheduler;
  upstream: Upstream;
  syncPriority: number;
  heartbeatMs: number;
  /** Model aliases (SPEC §7): the target for a requested name, or null. */
  aliasOf?: (model: string) => string | null;
  /** Arrival times of requests whose callers left the queue, for their retries (ADR 0018). */
  arrivals?: ArrivalMemory;
  /** The scheduler's clock, for arrival times. */
  now?: () => number;
  /** Called once per finished stream with what the relay saw (metrics). */
  observe?: (info: { model: string; kind: GenerationKind; key: string; relay: RelayResult | null; ttftMs: number | null }) => void;
}

/** 403 unless the key may use the model, by the name asked or the model an alias sends it to (SPEC §15 `models`). */
export function checkModel(key: Key, model: string, aliasOf?: (model: string) => string | null): void {
  if (mayUseModel(key, model)) return;
  const target = aliasOf?.(model);
  if (target && mayUseModel(key, target)) return;
  throw forbidden(`key '${key.name}' may not use model '${model}'`);
}

export interface SyncJobRequest {
  upstreamPath: string;
  raw: Buffer;
  request: GenerationRequest;
  kind: GenerationKind;
}

const NDJSON = 'application/x-ndjson';
const SSE = 'text/event-stream';

function framingOf(contentType: string | null): Framing {
  if (!contentType) return 'raw';
  if (contentType.includes(NDJSON)) return 'ndjson';
  if (contentType.includes(SSE)) return 'sse';
  return 'raw';
}


export async function serveSyncJob(ctx: RequestContext, deps: SyncJobDeps, job: SyncJobRequest): Promise<void> {
  const { req, res, surface } = ctx;
  const kind = job.kind;
  const key = ctx.key ?? ANONYMOUS;
  checkModel(key, job.request.model, deps.aliasOf);
  const asked = parsePriority(req.headers['x-foreman-priority'], 'X-Foreman-Priority');
  const priority = priorityFor(key, asked, key.syncPriority ?? deps.syncPriority);
  const id = newJobId('s_');
  const model = job.request.model; // as sent; the group key normalises
  const streamed = job.request.stream && !job.request.isLoadOnly;
  ctx.logFields.job = id;
  ctx.logFields.model = model;

  let heartbeat: NodeJS.Timeout | undefined;
  let heartbeatStarted = false;
  let jobStarted = false;
  let settle!: () => void;
  const finished = new Promise<void>((resolve) => (settle = resolve));
  const stopHeartbeat = () => {
    clearTimeout(heartbeat);
    clearInterval(heartbeat);
    heartbeat = undefined;
  };
  const fail = async (err: HttpError) => {
    if (!res.headersSent) sendError(res, err, surface);
    else {
      await writeUnit(res, errorUnit(kind, err.message, err.status));
      res.end();
    }
  };

  // A retry of a request whose caller gave up while it waited queues at the old place.
  const now = deps.now ?? Date.now;
  const memory = deps.arrivals;
  let memoryKey: string | null = null;
  const keyOfRequest = () => (memoryKey ??= ArrivalMemory.keyOf(key.name, job.upstreamPath, job.raw));
  const remembered = memory && memory.size > 0 ? memory.take(keyOfRequest(), now()) : undefined;
  if (remembered !== undefined) ctx.logFields.kept_arrival = 1;
  const arrivalMs = remembered ?? now();
  let everStarted = false;

  const onClose = () => {
    if (res.writableFinished) return;
    stopHeartbeat();
    if (memory && !everStarted) memory.remember(keyOfRequest(), arrivalMs, now());
    deps.scheduler.cancel(id, new StopReason('client_gone', 'client closed the connection'));
  };
  res.once('close', onClose);

  const run = async (rc: RunContext): Promise<FinishState> => {
    jobStarted = true;
    everStarted = true;
    stopHeartbeat();
    const runStarted = performance.now();
    ctx.logFields.queue_ms = rc.queueMs;
    if (res.destroyed) return 'cancelled';
    let upstreamRes: UpstreamResponse;
    if (rc.host !== undefined) ctx.logFields.host = rc.host;
    try {
      upstreamRes = await (rc.upstream ?? deps.upstream).send(job.upstreamPath, {
        body: job.raw, signal: rc.signal, headers: forwardableHeaders(req.headers), lineFrames: true,
      });
    } catch (err) {
      if (rc.signal.aborted) return 'cancelled';
      const error = isHttpError(err) ? err : upstreamUnreachable(describeNetworkError(err));
      // Several hosts: nothing reached the caller from this host, so another host serves it unseen (SPEC §17).
      if (error.code === 'upstream_unreachable' && rc.failover?.(error.message)) {
        jobStarted = false;
        armHeartbeat();
        return 'requeued';
      }
      await fail(error);
      return 'failed';
    }
    rc.upstreamAnswered();
    if (upstreamRes.status === 404) rc.modelMissing?.();
    // Several hosts: a host answering 5xx (busy, out of memory, a dying runner) failed before any
    // byte of its reached the caller, so another host serves it unseen (SPEC §17). Its body is
    // kept: when every host failed, the caller gets the last one's status and body unchanged.
    if (upstreamRes.status >= 500 && rc.failover) {
      const text = await upstreamRes.text(UPSTREAM_ERROR_MAX).catch(() => '');
      if (rc.failover(`answered ${upstreamRes.status}`)) {
        jobStarted = false;
        armHeartbeat();
        return 'requeued';
      }
      upstreamRes = withBody(upstreamRes, text);
    }
    const foremanHeaders: Record<string, string> = {
      'x-foreman-job-id': id, 'x-foreman-queue-ms': String(Math.round(rc.queueMs)), 'x-foreman-priority': String(priority),
    };
    if (rc.host !== undefined) foremanHeaders['x-foreman-host'] = rc.host;
    if (heartbeatStarted) {
      if (!upstreamRes.ok) {
        await writeUnit(res, errorUnit(kind, await readUpstreamError(upstreamRes), upstreamRes.status));
        res.end();
        return 'failed';
      }
    }
    const framing = upstreamRes.ok ? framingOf(upstreamRes.headers.get('content-type')) : 'raw';
    if (!heartbeatStarted) {
      // A relayed stream may end with an error line of foreman's own: upstream's length would cut it off.
      const headers = copyResponseHeaders(upstreamRes, foremanHeaders);
      if (framing !== 'raw') delete headers['content-length'];
      res.writeHead(upstreamRes.status, headers);
    }
    const started = performance.now();
    const relay = await relayBody(upstreamRes, res, {
      framing, signal: rc.signal, renderError: framing === 'raw' ? undefined : (m) => errorUnit(kind, m),
      endsStream: framing === 'sse' ? endOfStream(kind) : undefined,
    });
    // A whole-body answer cut short cannot carry an error line: close so the client sees the failure.
    if (relay.outcome === 'upstream_error' && framing === 'raw') res.destroy();
    else res.end();
    // Time to first token means a streamed chunk; a whole JSON answer has no first token to time.
    const ttftMs = relay.firstUnitMs === null || framing === 'raw' ? null : started - runStarted + relay.firstUnitMs;
    deps.observe?.({ model, kind: job.kind, key: key.name, relay, ttftMs });
    const loadNs = loadDurationOf(relay.lastData);
    if (loadNs !== null) rc.loadReported?.(loadNs / 1e6);
    if (relay.outcome === 'client_gone' || rc.signal.aborted) return 'cancelled';
    return relay.outcome === 'done' && upstreamRes.ok ? 'completed' : 'failed';
  };

  // Armed before enqueue: a job may start synchronously inside enqueue, and then no beat may follow.
  // Armed again when a failed-over job waits for another host.
  function armHeartbeat() {
    if (!streamed || deps.heartbeatMs <= 0 || res.destroyed) return;
    let ticking = false;
    heartbeat = setTimeout(function beat() {
      if (jobStarted || res.destroyed) return stopHeartbeat();
      if (!heartbeatStarted) {
        heartbeatStarted = true;
        res.writeHead(200, {
          'content-type': isSseKind(kind) ? SSE : NDJSON,
          'x-foreman-job-id': id,
          'x-foreman-priority': String(priority),
        });
      }
      if (!ticking) {
        ticking = true;
        heartbeat = setInterval(beat, deps.heartbeatMs);
      }
      writeIfRoom(res, heartbeatUnit(kind, job.request.model, req.headers));
    }, deps.heartbeatMs);
  }
  armHeartbeat();
  try {
    deps.scheduler.enqueue({
      id, model, group: groupKey(job.request.model, job.request.options), priority, origin: 'sync', kind: job.kind, key: key.name,
      session: sessionOf(req.headers),
      bytes: job.raw.length,
      run: (rc) =>
        run(rc)
          .then((state) => {
            // A failed-over job is back in the queue: its caller keeps waiting.
            if (state !== 'requeued') settle();
            return state;
          }, (err) => {
            // A bug must not leave the caller hanging: answer 500, or cut the stream.
            if (!res.headersSent) sendError(res, internal(), surface);
            else res.destroy();
            settle();
            throw err;
          }),
      dropped: (reason) => {
        stopHeartbeat();
        if (reason === 'shutdown') void fail(shuttingDown()).finally(settle);
        else settle();
      },
    }, remembered !== undefined ? { arrivalMs: remembered } : {});
  } catch (err) {
    stopHeartbeat();
    res.off('close', onClose);
    throw err;
  }

  await finished;
  stopHeartbeat();
}

/** The headers agents send to keep a session's turns together (SPEC §17). */
const SESSION_HEADERS = ['session-id', 'x-session-id', 'x-session-affinity', 'x-claude-code-session-id'];

export function sessionOf(headers: Record<string, string | string[] | undefined>): string | null {
  for (const name of SESSION_HEADERS) {
    const v = headers[name];
    const text = Array.isArray(v) ? v[0] : v;
    if (text && text.trim()) return text.trim().slice(0, 256);
  }
  return null;
}

/** Ollama's load_duration (ns) in a native final chunk, or null (other surfaces have none). */
export function loadDurationOf(unit: Uint8Array | null): number | null {
  if (!unit) return null;
  const m = /"load_duration":(\d+)/.exec(Buffer.from(unit.buffer, unit.byteOffset, unit.byteLength).toString('utf8'));
  return m ? Number(m[1]) : null;
}

const UPSTREAM_ERROR_MAX = 1024 * 1024;

/** An upstream answer whose body was already read, to relay as it was. */
function withBody(res: UpstreamResponse, text: string): UpstreamResponse {
  const bytes = Buffer.from(text);
  return {
    status: res.status, ok: res.ok, headers: res.headers,
    body: (async function* () {
      if (bytes.length > 0) yield bytes;
    })(),
    text: async () => text,
    discard: () => {},
    failureReason: () => null,
  };
}
