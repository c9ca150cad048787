// Wires foreman together: config -> upstream client, scheduler, routes, server.
// createForeman() returns a started instance with close(); bin/cli only call this.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { createUpstream, type Upstream } from './upstream.js';
import { Scheduler } from './sched/scheduler.js';
import { createLimiter } from './sched/limiter.js';
import { createHttpServer, type Route } from './http/server.js';
import { ollamaRoutes, type OllamaRouteDeps } from './http/routes-ollama.js';
import { openaiRoutes } from './http/routes-openai.js';
import { opsRoutes, type HealthReport } from './http/routes-ops.js';
import { createForemanMetrics, tokensOfFinalUnit } from './ops/foreman-metrics.js';
import { METRICS_CONTENT_TYPE } from './ops/metrics.js';
import { renderUiPage } from './ops/ui-page.js';
import type { QueueSnapshot } from './sched/snapshot.js';
import { VERSION } from './version.js';
import { openJournal, type Journal, type JournalIo } from './journal/journal.js';
import { JobService } from './jobs/service.js';
import { JobReplay } from './jobs/records.js';
import { JobStore } from './jobs/store.js';
import { jobRoutes } from './http/routes-jobs.js';

export interface Foreman {
  readonly server: Server;
  /** http://host:port actually bound (port 0 resolves here) */
  readonly url: string;
  readonly scheduler: Scheduler;
  readonly upstream: Upstream;
  readonly jobs: JobService;
  readonly journal: Journal;
  snapshot(): QueueSnapshot;
  /** Graceful stop (SPEC §9): stop accepting, 503 to waiting sync callers, running jobs get shutdown_grace. */
  close(): Promise<void>;
}

export interface ForemanDeps {
  log?: Logger;
  now?: () => number;
  /** Webhook retry schedule; tests inject a short one. */
  webhookSchedule?: readonly number[];
  webhookTimeoutMs?: number;
  /** Silence after which an upstream request is abandoned; tests shorten it. */
  upstreamIdleMs?: number;
  /** The journal's and job files' write calls; tests inject a failing disk. */
  journalIo?: JournalIo;
  /** First delay between write probes once the disk failed; tests shorten it. */
  journalProbeMs?: number;
}

export async function createForeman(config: Readonly<Config>, deps: ForemanDeps = {}): Promise<Foreman> {
  const log = deps.log ?? createLogger(config.log_format);
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const upstream = createUpstream(config.upstream, config.upstream_token, deps.upstreamIdleMs);
  const embeddings = createLimiter(config.embed_parallel, config.max_queue);
  let snapshot: () => QueueSnapshot = () => { throw new Error('not wired'); };
  const metrics = createForemanMetrics(() => snapshot());
  // The journal first: a second foreman on the same data dir must fail before it binds a port.
  // Its replay feeds the job reducer line by line: no record array, no bodies in memory.
  const replay = new JobReplay();
  let jobsRef: JobService | null = null;
  const journal = await openJournal({
    dir: config.data_dir, log, visit: replay.visit, io: deps.journalIo, probeMs: deps.journalProbeMs,
    onFsync: (ms) => metrics.journalFsync(ms),
    onHealth: (h) => jobsRef?.journalHealthChanged(h),
  });
  const store = new JobStore(config.data_dir, journal, deps.journalIo);
  let files: Awaited<ReturnType<JobStore['listFiles']>>;
  try {
    await store.init();
    files = await store.listFiles();
  } catch (err) {
    await journal.close();
    throw err;
  }
  if (journal.replay.tornTail || journal.replay.badLines > 0) {
    log.warn('journal damaged', {
      torn_tail: journal.replay.tornTail, bad_lines: journal.replay.badLines, copy: journal.replay.copiedAside ?? undefined,
    });
  }

  const scheduler = new Scheduler({
    parallel: config.parallel,
    maxQueue: config.max_queue,
    maxQueueBytes: config.max_queue_bytes,
    agingMs: config.aging_ms,
    unloadOnSwitch: config.unload_on_switch,
    upstream,
    log,
    now,
    events: {
      started: (job, queueMs) => {
        metrics.jobStarted(job.origin, queueMs);
        if (job.origin === 'sync') log.info('job working', { job: job.id, model: job.model, origin: job.origin, queue_ms: queueMs });
      },
      finished: (job, state, queueMs, runMs) => {
        metrics.jobFinished(job.origin, state, runMs);
        if (job.origin === 'sync') log.info(`job ${state}`, { job: job.id, model: job.model, origin: job.origin, queue_ms: queueMs, run_ms: runMs });
      },
      switched: () => metrics.modelSwitched(),
    },
  });

  const jobs = new JobService({
    journal, replay, store, files, scheduler, upstream, log, now,
    maxQueue: config.max_queue,
    maxAttempts: config.max_attempts,
    retentionMs: config.retention_ms,
    webhookSecret: config.webhook_secret,
    webhookMaxResult: config.webhook_max_result,
    webhookSchedule: deps.webhookSchedule,
    webhookTimeoutMs: deps.webhookTimeoutMs,
    onWebhook: (outcome) => metrics.webhookDelivery(outcome),
    onTransition: (job, state) => log.info(`job ${state}`, { job: job.id, model: job.model, origin: 'async', attempts: job.attempts }),
  });
  jobsRef = jobs;

  snapshot = () => {
    const s = scheduler.snapshot(now());
    return {
      at: new Date(now()).toISOString(),
      upstream: config.upstream,
      loaded_group: s.loaded_group,
      loaded_model: s.loaded_model,
      running: s.running,
      groups: s.groups,
      totals: {
        waiting: scheduler.waiting,
        running: s.running.length,
        max_queue: config.max_queue,
        parallel: config.parallel,
        ...s.counts,
      },
      switches: s.switches,
      recent: s.recent,
      embeddings: { in_flight: embeddings.active, max: embeddings.max },
    };
  };

  const health = async (): Promise<HealthReport> => {
    let reachable = false;
    let version: string | null = null;
    let error: string | undefined;
    try {
      version = await upstream.version(AbortSignal.timeout(2_000));
      reachable = true;
    } catch (err) {
      error = (err as Error).message;
    }
    const store = jobs.storeHealth();
    const reasons: string[] = [];
    if (!reachable) reasons.push(`upstream unreachable: ${error ?? 'no answer'}`);
    if (!store.journal.writable) reasons.push(store.journal.reason ?? 'journal cannot write');
    if (journal.replay.tornTail || journal.replay.badLines > 0) {
      reasons.push(`journal damage found at start (torn tail: ${journal.replay.tornTail}, bad lines: ${journal.replay.badLines}); copy at ${journal.replay.copiedAside}`);
    }
    if (store.compaction.failures > 0) reasons.push(`journal compaction failing: ${store.compaction.last_error}`);
    return {
      status: reasons.length === 0 ? 'ok' : 'degraded',
      ...(reasons.length ? { reasons } : {}),
      upstream: { url: config.upstream, reachable, version, ...(error ? { error } : {}) },
      version: VERSION,
      uptime_s: Math.floor((now() - startedAt) / 1000),
      journal: {
        path: journal.path,
        writable: store.journal.writable,
        unwritable_since: store.journal.since === null ? null : new Date(store.journal.since).toISOString(),
        torn_tail: journal.replay.tornTail,
        bad_lines: journal.replay.badLines,
        copied_aside: journal.replay.copiedAside,
        orphan_records: jobs.replayOrphans,
        compaction: store.compaction,
        bytes: journal.stats().bytes,
        jobs: jobs.counts(),
      },
    };
  };

  const generationDeps: OllamaRouteDeps = {
    upstream,
    scheduler,
    embeddings,
    maxBody: config.max_body,
    syncPriority: config.sync_priority,
    heartbeatMs: config.stream_heartbeat_ms,
    observe: ({ model, relay, ttftMs }) => metrics.streamObserved(model, ttftMs, tokensOfFinalUnit(relay?.lastData ?? null)),
  };

  const routes: Route[] = [
    ...opsRoutes({
      health,
      queue: snapshot,
      metrics: () => metrics.registry.render(),
      metricsContentType: METRICS_CONTENT_TYPE,
      uiPage: renderUiPage,
    }),
    ...jobRoutes({ jobs, maxBody: config.max_body }),
    ...ollamaRoutes(generationDeps),
    ...openaiRoutes(generationDeps),
  ];

  const server = createHttpServer({ routes, tokens: config.tokens, log });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listen.port, config.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await jobs.close();
    await journal.close();
    throw err;
  }
  jobs.recover();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  log.info('listening', { url, upstream: config.upstream, parallel: config.parallel, auth: config.tokens.length > 0 });
  void scheduler.refreshResidency(AbortSignal.timeout(5_000));

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      log.info('shutting down', { grace_ms: config.shutdown_grace_ms });
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await scheduler.shutdown(config.shutdown_grace_ms);
      server.closeAllConnections();
      await serverClosed;
      await jobs.close();
      await journal.close();
      upstream.close();
      log.info('stopped');
    })());

  return { server, url, scheduler, upstream, jobs, journal, snapshot, close };
}
