// Wires foreman together: config -> upstream client, scheduler, routes, server.
// createForeman() returns a started instance with close(); bin/cli only call this.

import type { Server } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import type { Upstream } from './upstream.js';
import { HostPool } from './hosts/pool.js';
import type { Host } from './hosts/host.js';
import { resolveHosts } from './hosts/specs.js';
import { compareVersions } from './http/hosts-routing.js';
import { Scheduler } from './sched/scheduler.js';
import { LoadTimesSaver, loadTimesPath, readLoadTimes } from './hosts/load-times-file.js';
import { createHttpServer, type Route } from './http/server.js';
import { createBrowserPolicy } from './browser-policy.js';
import { ollamaRoutes, type OllamaRouteDeps } from './http/routes-ollama.js';
import { openaiRoutes } from './http/routes-openai.js';
import { agentRoutes } from './http/routes-agents.js';
import { createAliasResolver } from './http/aliases.js';
import { ArrivalMemory } from './http/arrival-memory.js';
import { opsRoutes, type HealthReport } from './http/routes-ops.js';
import { createForemanMetrics, tokensOfFinalUnit } from './ops/foreman-metrics.js';
import { METRICS_CONTENT_TYPE } from './ops/metrics.js';
import { renderUiPage } from './ops/ui-page.js';
import { cachedProbe } from './ops/health-probe.js';
import { effectiveMaxConnections, openFileLimit } from './ops/fd-limit.js';
import { buildQueueView, type QueueSnapshot } from './ops/queue-view.js';
import { VERSION } from './version.js';
import { openJournal, type Journal, type JournalIo } from './journal/journal.js';
import { JobService } from './jobs/service.js';
import { JobReplay } from './jobs/records.js';
import { JobStore } from './jobs/store.js';
import { reclaimNow } from './jobs/reclaim.js';
import { jobRoutes } from './http/routes-jobs.js';
import { createWebhookTransport, type Resolver } from './http/webhook-transport.js';
import { policyForListen } from './webhooks/targets.js';
import { keyRoutes } from './http/routes-keys.js';
import { KeyRegistry } from './keys/registry.js';
import { KeysFileError, type Key } from './keys/keys-file.js';
import { tokensOfText, UsageBook } from './keys/usage.js';
import { registerKeyMetrics } from './ops/key-metrics.js';

export interface Foreman {
  readonly server: Server;
  /** http://host:port actually bound (port 0 resolves here) */
  readonly url: string;
  readonly scheduler: Scheduler;
  readonly upstream: Upstream;
  readonly hosts: HostPool;
  readonly jobs: JobService;
  readonly journal: Journal;
  readonly keys: KeyRegistry;
  readonly usage: UsageBook;
  /** The whole queue, as an admin sees it. */
  snapshot(): QueueSnapshot;
  /** Reads keys_file again (SIGHUP does this); false when the file was refused or there is none. */
  reloadKeys(reason?: string): boolean;
  /**
   * Reads hosts_file again (SIGHUP does this; SPEC §17): hosts added and removed by name, jobs
   * running on a removed host finish there. False when nothing could be applied.
   */
  reloadHosts(reason?: string): boolean;
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
  /** Name resolution for webhook targets; tests make names resolve to chosen addresses. */
  webhookResolve?: Resolver;
  /** Silence after which an upstream request is abandoned; tests shorten it. */
  upstreamIdleMs?: number;
  /** Host health probe interval (SPEC §17: 5 s); tests shorten it. */
  hostProbeMs?: number;
  /** The journal's and job files' write calls; tests inject a failing disk. */
  journalIo?: JournalIo;
  /** First delay between write probes once the disk failed; tests shorten it. */
  journalProbeMs?: number;
}

export async function createForeman(config: Readonly<Config>, deps: ForemanDeps = {}): Promise<Foreman> {
  const log = deps.log ?? createLogger(config.log_format);
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const hosts = new HostPool(resolveHosts(config), {
    log, idleMs: deps.upstreamIdleMs, maxWaiting: config.max_queue, probeMs: deps.hostProbeMs,
  });
  const upstream = hosts.firstUpstream();
  let keys: KeyRegistry;
  try {
    keys = new KeyRegistry({ tokens: config.tokens, keysFile: config.keys_file, log });
  } catch (err) {
    if (err instanceof KeysFileError) throw new Error(`keys_file: ${err.message}`);
    throw err;
  }
  const usage = new UsageBook();
  let snapshot: () => QueueSnapshot = () => { throw new Error('not wired'); };
  const metrics = createForemanMetrics(() => snapshot());
  // The journal first: a second foreman on the same data dir must fail before it binds a port.
  // Its replay feeds the job reducer line by line: no record array, no bodies in memory.
  const replay = new JobReplay();
  let jobsRef: JobService | null = null;
  const journal = await openJournal({
    dir: config.data_dir, log, visit: replay.visit, io: deps.journalIo, probeMs: deps.journalProbeMs,
    probeDirs: [join(config.data_dir, 'bodies'), join(config.data_dir, 'results')],
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
    cloudParallel: config.cloud_parallel,
    upstream,
    hosts: hosts.multi ? hosts.hosts : undefined,
    markDown: (host, reason) => hosts.markDown(host as Host, reason),
    modelMissing: (host) => hosts.modelMissing(host as Host),
    hostRetired: (host) => {
      (host as Host).idle = true;
      hosts.closeRetired();
    },
    loadCostsChanged: () => loadTimes?.changed(),
    log,
    now,
    keyPolicy: (name) => {
      const key = keys.byName(name);
      // A removed key's queued jobs stay and run, with no limits of their own and weight 1.
      return { weight: key?.weight ?? 1, maxRunning: key?.maxRunning ?? null, maxQueued: key?.maxQueued ?? null };
    },
    events: {
      started: (job, queueMs) => {
        metrics.jobStarted(job.origin, queueMs);
        if (job.origin === 'sync') log.info('job working', { job: job.id, model: job.model, key: job.key ?? undefined, origin: job.origin, queue_ms: queueMs });
      },
      finished: (job, state, queueMs, runMs) => {
        metrics.jobFinished(job.origin, state, runMs);
        if (job.key) usage.jobFinished(job.key, state, queueMs, runMs);
        if (job.origin === 'sync') log.info(`job ${state}`, { job: job.id, model: job.model, key: job.key ?? undefined, origin: job.origin, queue_ms: queueMs, run_ms: runMs });
      },
      switched: () => metrics.modelSwitched(),
    },
  });

  // Several hosts: the load and run times measured by earlier runs (ADR 0025), kept in the data dir.
  let loadTimes: LoadTimesSaver | null = null;
  if (scheduler.fleet) {
    const path = loadTimesPath(config.data_dir);
    await readLoadTimes(path, scheduler.fleet.costs, log);
    loadTimes = new LoadTimesSaver({ path, costs: scheduler.fleet.costs, log, now });
  }

  // Which webhook targets are refused (SPEC §5, ADR 0021): a foreman reachable from the LAN must not be a
  // way into the LAN, so private targets need webhook_allow; one on loopback serves local scripts.
  const webhookPolicy = policyForListen(config.listen.host, config.webhook_allow);

  const jobs = new JobService({
    journal, replay, store, files, scheduler, upstream, log, now,
    maxQueue: config.max_queue,
    maxAttempts: config.max_attempts,
    retentionMs: config.retention_ms,
    webhookSecret: config.webhook_secret,
    webhookMaxResult: config.webhook_max_result,
    webhookSchedule: deps.webhookSchedule,
    webhookTimeoutMs: deps.webhookTimeoutMs,
    webhookSend: createWebhookTransport({ policy: webhookPolicy, resolve: deps.webhookResolve }),
    onWebhook: (outcome) => metrics.webhookDelivery(outcome),
    onTransition: (job, state, response) => {
      if (state === 'completed' && job.key && response) {
        usage.tokens(job.key, Number(response.prompt_eval_count) || null, Number(response.eval_count) || null);
      }
      log.info(`job ${state}`, { job: job.id, model: job.model, key: job.key ?? undefined, origin: 'async', attempts: job.attempts });
    },
  });
  keys.onReload(() => scheduler.refreshKeys());
  registerKeyMetrics(metrics.registry, {
    usage,
    names: () => [...new Set([...keys.list().map((k) => k.name), ...usage.names()])],
    waitingOf: (k) => scheduler.waitingOf(k),
    runningOf: (k) => scheduler.runningOf(k),
  });
  jobsRef = jobs;

  snapshot = () => {
    const view = buildQueueView(scheduler.state(now()), {
      nowMs: now(), upstream: config.upstream, maxQueue: config.max_queue, parallel: config.parallel,
      embeddings: {
        active: hosts.hosts.reduce((a, h) => a + h.embeddings.active, 0),
        max: hosts.hosts.reduce((a, h) => a + h.embeddings.max, 0),
      },
      hosts: hosts.multi ? hosts.hosts.map((h) => h.view()) : undefined,
    });
    const writable = journal.health();
    view.store = {
      writable: writable.writable, reason: writable.reason, waiting_bytes: scheduler.waitingBytes, max_queue_bytes: config.max_queue_bytes,
    };
    return view;
  };

  // One host: at most one upstream call per second however often /health is polled (SPEC §9).
  const probeUpstream = cachedProbe(async () => {
    try {
      return { reachable: true, version: await upstream.version(AbortSignal.timeout(2_000)) as string | null, error: undefined as string | undefined };
    } catch (err) {
      return { reachable: false, version: null, error: (err as Error).message };
    }
  }, HEALTH_MAX_AGE_MS, now);

  // SPEC §15: a key that is not admin sees its own jobs and the aggregate counts.
  const queueFor = (key: Key): QueueSnapshot => {
    const s = snapshot();
    const mine = { name: key.name, admin: key.admin, waiting: scheduler.waitingOf(key.name), running: scheduler.runningOf(key.name) };
    if (key.admin) return { ...s, key: mine };
    return {
      ...s,
      running: s.running.filter((r) => r.key === key.name),
      recent: s.recent.filter((r) => r.key === key.name),
      key: mine,
    };
  };

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
    const store = jobs.storeHealth();
    const reasons: string[] = [];
    if (!reachable || hostsDown) reasons.push(hostsDown && reachable ? error ?? 'a host is down' : `upstream unreachable: ${error ?? 'no answer'}`);
    if (!store.journal.writable) reasons.push(store.journal.reason ?? 'journal cannot write');
    if (journal.replay.tornTail || journal.replay.badLines > 0) {
      reasons.push(`journal damage found at start (torn tail: ${journal.replay.tornTail}, bad lines: ${journal.replay.badLines}); copy at ${journal.replay.copiedAside}`);
    }
    if (store.compaction.failures > 0) reasons.push(`journal compaction failing: ${store.compaction.last_error}`);
    return {
      status: reasons.length === 0 ? 'ok' : 'degraded',
      ...(reasons.length ? { reasons } : {}),
      upstream: { url: config.upstream, reachable, version, ...(error ? { error } : {}) },
      ...(hosts.multi ? { hosts: hosts.hosts.map((h) => ({ name: h.name, url: h.url, state: h.state, version: h.version, error: h.error })) } : {}),
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
    hosts,
    maxBody: config.max_body,
    syncPriority: config.sync_priority,
    heartbeatMs: config.stream_heartbeat_ms,
    aliasOf: createAliasResolver(config.aliases),
    arrivals: new ArrivalMemory(),
    now,
    observe: ({ model, key, relay, ttftMs }) => {
      metrics.streamObserved(model, ttftMs, tokensOfFinalUnit(relay?.lastData ?? null));
      const last = relay?.lastData;
      if (last) {
        const t = tokensOfText(Buffer.from(last.buffer, last.byteOffset, last.byteLength).toString('utf8'));
        usage.tokens(key, t.prompt, t.completion);
      }
    },
  };

  const routes: Route[] = [
    ...opsRoutes({
      health,
      queue: queueFor,
      metrics: () => metrics.registry.render(),
      metricsContentType: METRICS_CONTENT_TYPE,
      uiPage: renderUiPage,
    }),
    ...jobRoutes({ jobs, maxBody: config.max_body, webhookPolicy, aliasOf: generationDeps.aliasOf }),
    ...keyRoutes({ registry: keys, usage, waitingOf: (k) => scheduler.waitingOf(k), runningOf: (k) => scheduler.runningOf(k) }),
    ...ollamaRoutes(generationDeps),
    ...openaiRoutes(generationDeps),
    ...agentRoutes(generationDeps),
  ];

  const browser = createBrowserPolicy({ origins: config.origins, listenHost: config.listen.host });
  // Below the open-file limit, or the cap protects nothing (SPEC §16).
  const fdLimit = openFileLimit();
  const connections = effectiveMaxConnections(config.max_connections, fdLimit);
  if (connections.lowered) {
    log.warn('max_connections lowered', { configured: config.max_connections, max_connections: connections.max, open_file_limit: fdLimit ?? undefined });
  }
  const server = createHttpServer({
    routes, log, maxConnections: connections.max, browser,
    authenticate: (headers) => keys.authenticate(headers),
    onRequest: (key, path) => usage.request(key.name, path),
  });
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
    await loadTimes?.close();
    await journal.close();
    throw err;
  }
  jobs.recover();
  // The replayed lines are garbage now; give their memory back before serving (SPEC §16).
  reclaimNow();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  log.info('listening', { url, upstream: config.upstream, parallel: config.parallel, auth: keys.enabled, keys: keys.list().length });
  keys.watch();
  void scheduler.refreshResidency(AbortSignal.timeout(5_000));
  // A host down: its lane takes nothing; back up: its residency is read and it takes work again.
  hosts.onChange((host, what) => scheduler.hostChanged(host, what === 'up'));
  hosts.start();

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      log.info('shutting down', { grace_ms: config.shutdown_grace_ms });
      keys.close();
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await scheduler.shutdown(config.shutdown_grace_ms);
      server.closeAllConnections();
      await serverClosed;
      await jobs.close();
      await loadTimes?.close();
      await journal.close();
      hosts.close();
      log.info('stopped');
    })());

  const reloadKeys = (reason = 'reload') => keys.reload(reason);
  const reloadHosts = (reason = 'reload'): boolean => {
    if (config.hosts_file === undefined) return false;
    let specs: ReturnType<typeof resolveHosts>;
    try {
      specs = resolveHosts(config);
    } catch (err) {
      log.warn('hosts_file refused; hosts kept', { reason, error: (err as Error).message });
      return false;
    }
    // One host runs the single lane of SPEC §1; several need the lanes built at start.
    if (!hosts.multi) {
      if (specs.length > 1) log.warn('hosts_file lists several hosts; foreman started with one: restart to use them', { reason });
      return false;
    }
    const change = hosts.update(specs);
    scheduler.updateHosts(change.added, change.removed);
    log.info('hosts reloaded', {
      reason, added: change.added.map((h) => h.name).join(',') || undefined, removed: change.removed.map((h) => h.name).join(',') || undefined,
      new_limits: change.limits.join(',') || undefined, moved: change.moved.map((h) => `${h.name}=${h.url}`).join(',') || undefined,
    });
    return true;
  };
  return { server, url, scheduler, upstream, hosts, jobs, journal, keys, usage, snapshot, reloadKeys, reloadHosts, close };
}
