// Wires foreman together: config -> upstream client, scheduler, routes, server.
// createForeman() returns a started instance with close(); bin/cli only call this.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import type { Upstream } from './upstream.js';
import { HostPool } from './hosts/pool.js';
import { resolveHosts } from './hosts/specs.js';
import { compareVersions } from './http/hosts-routing.js';
import { Scheduler } from './sched/scheduler.js';
import { createHttpServer, type Route } from './http/server.js';
import { createBrowserPolicy } from './http/browser.js';
import { ollamaRoutes, type OllamaRouteDeps } from './http/routes-ollama.js';
import { openaiRoutes } from './http/routes-openai.js';
import { agentRoutes } from './http/routes-agents.js';
import { createAliasResolver } from './http/aliases.js';
import { opsRoutes, type HealthReport } from './http/routes-ops.js';
import { createForemanMetrics, tokensOfFinalUnit } from './ops/foreman-metrics.js';
import { METRICS_CONTENT_TYPE } from './ops/metrics.js';
import { renderUiPage } from './ops/ui-page.js';
import { cachedProbe } from './ops/health-probe.js';
import { buildQueueView, type QueueSnapshot } from './ops/queue-view.js';
import { VERSION } from './version.js';
import { openJournal, type Journal } from './journal/journal.js';
import { JobService } from './jobs/service.js';
import { jobRoutes } from './http/routes-jobs.js';

export interface Foreman {
  readonly server: Server;
  /** http://host:port actually bound (port 0 resolves here) */
  readonly url: string;
  readonly scheduler: Scheduler;
  readonly upstream: Upstream;
  readonly hosts: HostPool;
  readonly jobs: JobService;
  readonly journal: Journal;
  snapshot(): QueueSnapshot;
  /** Graceful stop (SPEC §9): stop accepting, 503 to waiting sync callers, running jobs get shutdown_grace. */
  close(): Promise<void>;
}

/** How old the upstream part of /health may be. */
const HEALTH_MAX_AGE_MS = 1_000;

export interface ForemanDeps {
  log?: Logger;
  now?: () => number;
  /** Webhook retry schedule; tests inject a short one. */
  webhookSchedule?: readonly number[];
  webhookTimeoutMs?: number;
  /** Silence after which an upstream request is abandoned; tests shorten it. */
  upstreamIdleMs?: number;
  /** Host health probe interval (SPEC §17: 5 s); tests shorten it. */
  hostProbeMs?: number;
}

export async function createForeman(config: Readonly<Config>, deps: ForemanDeps = {}): Promise<Foreman> {
  const log = deps.log ?? createLogger(config.log_format);
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const hosts = new HostPool(resolveHosts(config), {
    log, idleMs: deps.upstreamIdleMs, maxWaiting: config.max_queue, probeMs: deps.hostProbeMs,
  });
  const upstream = hosts.first.upstream;
  let snapshot: () => QueueSnapshot = () => { throw new Error('not wired'); };
  const metrics = createForemanMetrics(() => snapshot());
  // The journal first: a second foreman on the same data dir must fail before it binds a port.
  const journal = await openJournal({ dir: config.data_dir, log, onFsync: (ms) => metrics.journalFsync(ms) });
  if (journal.replay.tornTail || journal.replay.badLines > 0) {
    log.warn('journal damaged', {
      torn_tail: journal.replay.tornTail, bad_lines: journal.replay.badLines, copy: journal.replay.copiedAside ?? undefined,
    });
  }

  const scheduler = new Scheduler({
    parallel: config.parallel,
    maxQueue: config.max_queue,
    agingMs: config.aging_ms,
    unloadOnSwitch: config.unload_on_switch,
    cloudParallel: config.cloud_parallel,
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
    journal, scheduler, upstream, log, now,
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

  snapshot = () =>
    buildQueueView(scheduler.state(now()), {
      nowMs: now(), upstream: config.upstream, maxQueue: config.max_queue, parallel: config.parallel,
      embeddings: {
        active: hosts.hosts.reduce((a, h) => a + h.embeddings.active, 0),
        max: hosts.hosts.reduce((a, h) => a + h.embeddings.max, 0),
      },
    });

  // One host: at most one upstream call per second however often /health is polled (SPEC §9).
  const probeUpstream = cachedProbe(async () => {
    try {
      return { reachable: true, version: await upstream.version(AbortSignal.timeout(2_000)) as string | null, error: undefined as string | undefined };
    } catch (err) {
      return { reachable: false, version: null, error: (err as Error).message };
    }
  }, HEALTH_MAX_AGE_MS, now);

  const health = async (): Promise<HealthReport> => {
    let reachable = false;
    let version: string | null = null;
    let error: string | undefined;
    let hostsDown = false;
    if (hosts.multi) {
      // The probes keep each host's state (SPEC §17); /health reads it and costs the hosts nothing.
      const up = hosts.hosts.filter((h) => h.state === 'up');
      reachable = up.length > 0;
      hostsDown = up.length < hosts.hosts.length;
      version = up.map((h) => h.version).filter((v): v is string => v !== null).sort(compareVersions)[0] ?? null;
      if (hostsDown) error = hosts.hosts.filter((h) => h.state === 'down').map((h) => `host ${h.name} down: ${h.error ?? 'unreachable'}`).join('; ');
    } else {
      ({ reachable, version, error } = await probeUpstream());
    }
    return {
      status: reachable && !hostsDown && !journal.replay.tornTail && journal.replay.badLines === 0 ? 'ok' : 'degraded',
      upstream: { url: config.upstream, reachable, version, ...(error ? { error } : {}) },
      ...(hosts.multi ? { hosts: hosts.hosts.map((h) => ({ name: h.name, url: h.url, state: h.state, version: h.version, error: h.error })) } : {}),
      version: VERSION,
      uptime_s: Math.floor((now() - startedAt) / 1000),
      journal: {
        path: journal.path,
        torn_tail: journal.replay.tornTail,
        bad_lines: journal.replay.badLines,
        copied_aside: journal.replay.copiedAside,
        orphan_records: jobs.replayOrphans,
        jobs: jobs.counts(),
      },
    };
  };

  const generationDeps: OllamaRouteDeps = {
    upstream,
    scheduler,
    hosts,
    maxBody: config.max_body,
    syncPriority: config.sync_priority,
    heartbeatMs: config.stream_heartbeat_ms,
    aliasOf: createAliasResolver(config.aliases),
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
    ...agentRoutes(generationDeps),
  ];

  const browser = createBrowserPolicy({ origins: config.origins, listenHost: config.listen.host });
  const server = createHttpServer({ routes, tokens: config.tokens, log, browser, maxConnections: config.max_connections });
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
  hosts.start();

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
      hosts.close();
      log.info('stopped');
    })());

  return { server, url, scheduler, upstream, hosts, jobs, journal, snapshot, close };
}
