// A sync generation as a queued job: the caller waits in the queue, and when the
// job starts, upstream's status, headers and body reach it unchanged, one line
// or event per write (SPEC §2, §7). Shared by the native and /v1 surfaces.

import { describeNetworkError, internal, isHttpError, shuttingDown, StopReason, upstreamUnreachable, type HttpError } from '../errors.js';
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

export interface SyncJobDeps {
  scheduler: Scheduler;
  upstream: Upstream;
  syncPriority: number;
  heartbeatMs: number;
  /** Model aliases (SPEC §7): the target for a requested name, or null. */
  aliasOf?: (model: string) => string | null;
  /** Called once per finished stream with what the relay saw (metrics). */
  observe?: (info: { model: string; kind: GenerationKind; relay: RelayResult | null; ttftMs: number | null }) => void;
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
  const priority = parsePriority(req.headers['x-foreman-priority'], 'X-Foreman-Priority') ?? deps.syncPriority;
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
      await writeUnit(res, errorUnit(kind, err.message));
      res.end();
    }
  };

  const onClose = () => {
    if (res.writableFinished) return;
    stopHeartbeat();
    deps.scheduler.cancel(id, new StopReason('client_gone', 'client closed the connection'));
  };
  res.once('close', onClose);

  const run = async (rc: RunContext): Promise<FinishState> => {
    jobStarted = true;
    stopHeartbeat();
    const runStarted = performance.now();
    ctx.logFields.queue_ms = rc.queueMs;
    if (res.destroyed) return 'cancelled';
    let upstreamRes: UpstreamResponse;
    try {
      upstreamRes = await deps.upstream.send(job.upstreamPath, {
        body: job.raw, signal: rc.signal, headers: forwardableHeaders(req.headers),
      });
    } catch (err) {
      if (rc.signal.aborted) return 'cancelled';
      await fail(isHttpError(err) ? err : upstreamUnreachable(describeNetworkError(err)));
      return 'failed';
    }
    rc.upstreamAnswered();
    const foremanHeaders = { 'x-foreman-job-id': id, 'x-foreman-queue-ms': String(Math.round(rc.queueMs)) };
    if (heartbeatStarted) {
      if (!upstreamRes.ok) {
        await writeUnit(res, errorUnit(kind, await readUpstreamError(upstreamRes)));
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
    deps.observe?.({ model, kind: job.kind, relay, ttftMs });
    if (relay.outcome === 'client_gone' || rc.signal.aborted) return 'cancelled';
    return relay.outcome === 'done' && upstreamRes.ok ? 'completed' : 'failed';
  };

  // Armed before enqueue: a job may start synchronously inside enqueue, and then no beat may follow.
  if (streamed && deps.heartbeatMs > 0) {
    heartbeat = setTimeout(function beat() {
      if (jobStarted || res.destroyed) return stopHeartbeat();
      if (!heartbeatStarted) {
        heartbeatStarted = true;
        res.writeHead(200, {
          'content-type': isSseKind(kind) ? SSE : NDJSON,
          'x-foreman-job-id': id,
        });
        heartbeat = setInterval(beat, deps.heartbeatMs);
      }
      writeIfRoom(res, heartbeatUnit(kind, job.request.model));
    }, deps.heartbeatMs);
  }
  try {
    deps.scheduler.enqueue({
      id, model, group: groupKey(job.request.model, job.request.options), priority, origin: 'sync', kind: job.kind,
      run: (rc) =>
        run(rc)
          .catch((err) => {
            // A bug must not leave the caller hanging: answer 500, or cut the stream.
            if (!res.headersSent) sendError(res, internal(), surface);
            else res.destroy();
            throw err;
          })
          .finally(settle),
      dropped: (reason) => {
        stopHeartbeat();
        if (reason === 'shutdown') void fail(shuttingDown()).finally(settle);
        else settle();
      },
    });
  } catch (err) {
    stopHeartbeat();
    res.off('close', onClose);
    throw err;
  }

  await finished;
  stopHeartbeat();
}
