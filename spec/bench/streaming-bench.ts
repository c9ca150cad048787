// Streaming through foreman vs straight to the simulator, side by side in one run (SPEC §2):
// NDJSON chunks per second, time to first byte, foreman's CPU per 100k chunks, and foreman's
// RSS with 1,000 streams waiting in its queue. Measures and reports; asserts nothing.

import { performance } from 'node:perf_hooks';
import type { ClientRequest } from 'node:http';
import { closedLoop, createAgent, getJson, percentile, sleep, streamPost, type ClosedLoopRun } from './load.js';
import { startProcess, tempDir, type BenchProcess } from './procs.js';
import { mib, ms, num, verdict, type BenchReport, type Row, type SummaryRow } from './report.js';

const MODEL = 'llama3.2';
/** foreman's --parallel is at most 64 (lib/config.ts); the simulator gets the same number of slots. */
const SLOTS = 64;
const CONCURRENCY = [1, 32, 256] as const;

interface Regime {
  name: string;
  tokensPerSecond: number;
  numPredict: number;
  durationMs: number;
  caps: Record<(typeof CONCURRENCY)[number], number>;
}

function regimes(quick: boolean): Regime[] {
  return [
    {
      name: 'realistic 50 tok/s',
      tokensPerSecond: 50,
      numPredict: 20, // 0.4 s per stream
      durationMs: quick ? 1_500 : 4_000,
      caps: { 1: 40, 32: 1_000, 256: quick ? 256 : 768 },
    },
    {
      name: 'unlimited (CPU-bound)',
      tokensPerSecond: 0,
      numPredict: 200,
      durationMs: quick ? 1_000 : 4_000,
      caps: { 1: 5_000, 32: 20_000, 256: quick ? 1_024 : 4_096 },
    },
  ];
}

const chatBody = (numPredict: number, extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  messages: [{ role: 'user', content: 'Tell me a story about a lighthouse keeper.' }],
  options: { num_predict: numPredict },
  ...extra,
});

interface Side {
  run: ClosedLoopRun;
  chunks: number;
  chunksPerS: number;
  ttfbP50: number;
  ttfbP99: number;
  errors: number;
  /** CPU of the proxy in the path (foreman or the bare proxy), 0 for direct */
  proxyCpuUs: number;
  simCpuUs: number;
}

type PathName = 'direct' | 'foreman' | 'bare proxy';

async function measure(
  url: string, concurrency: number, regime: Regime, sim: BenchProcess, proxy: BenchProcess | null,
): Promise<Side> {
  const agent = createAgent(concurrency);
  const expectedLines = regime.numPredict + 1;
  try {
    const [simBefore, proxyBefore] = await Promise.all([sim.usage(), proxy?.usage()]);
    const run = await closedLoop({
      concurrency,
      durationMs: regime.durationMs,
      maxRequests: regime.caps[concurrency as (typeof CONCURRENCY)[number]],
      minRequests: concurrency,
      send: () => streamPost(url, '/api/chat', chatBody(regime.numPredict), { agent, timeoutMs: 120_000 }),
    });
    const [simAfter, proxyAfter] = await Promise.all([sim.usage(), proxy?.usage()]);
    const chunks = run.results.reduce((n, r) => n + r.lines, 0);
    const errors = run.results.filter((r) => r.error || r.lines !== expectedLines).length;
    const ttfb = run.results.map((r) => r.ttfbMs);
    return {
      run, chunks, chunksPerS: chunks / (run.wallMs / 1000),
      ttfbP50: percentile(ttfb, 50), ttfbP99: percentile(ttfb, 99), errors,
      proxyCpuUs: proxyAfter && proxyBefore ? proxyAfter.cpuUs - proxyBefore.cpuUs : 0,
      simCpuUs: simAfter.cpuUs - simBefore.cpuUs,
    };
  } finally {
    agent.destroy();
  }
}

async function warmUp(url: string, numPredict: number, requests: number): Promise<void> {
  const agent = createAgent(8);
  try {
    await closedLoop({
      concurrency: 8, durationMs: 60_000, maxRequests: requests,
      send: () => streamPost(url, '/api/chat', chatBody(numPredict), { agent, timeoutMs: 60_000 }),
    });
  } finally {
    agent.destroy();
  }
}

async function startForeman(name: string, upstream: string, flags: string[]): Promise<BenchProcess> {
  return startProcess(name, 'serve', [
    '--upstream', upstream, '--data-dir', await tempDir(name), '--shutdown-grace', '2s', ...flags,
  ]);
}

const per100k = (cpuUs: number, chunks: number) => num((cpuUs / 1000 / chunks) * 100_000);

function row(regime: Regime, c: number, path: PathName, side: Side, direct: Side): Row {
  const proxied = path !== 'direct';
  return {
    regime: regime.name,
    conc: c,
    path,
    reqs: side.run.results.length,
    'chunks/s': num(side.chunksPerS),
    'x direct': proxied ? num(side.chunksPerS / direct.chunksPerS, 3) : '',
    'TTFB p50 ms': ms(side.ttfbP50),
    'TTFB p99 ms': ms(side.ttfbP99),
    'added p50 ms': proxied ? ms(side.ttfbP50 - direct.ttfbP50) : '',
    'added p99 ms': proxied ? ms(side.ttfbP99 - direct.ttfbP99) : '',
    'proxy CPU ms/100k chunks': proxied ? per100k(side.proxyCpuUs, side.chunks) : '',
    'proxy CPU us/req': proxied ? num(side.proxyCpuUs / side.run.results.length) : '',
    'sim CPU ms/100k chunks': per100k(side.simCpuUs, side.chunks),
    errors: side.errors,
  };
}

type Sides = Record<PathName, Side>;

async function regimeRows(regime: Regime, quick: boolean, rows: Row[], sides: Map<string, Sides>) {
  const sim = await startProcess(`sim-${regime.tokensPerSecond}`, 'sim', [
    '--load-ms', '0', '--tokens-per-second', String(regime.tokensPerSecond), '--num-parallel', String(SLOTS),
    '--max-queue', '4096', '--models', MODEL,
  ]);
  let foreman: BenchProcess | undefined;
  let bare: BenchProcess | undefined;
  try {
    foreman = await startForeman('foreman-stream', sim.url, ['--parallel', String(SLOTS), '--max-queue', '4096']);
    bare = await startProcess('bare-proxy', 'bare-proxy', ['--upstream', sim.url]);
    const warmPredict = regime.tokensPerSecond > 0 ? 2 : regime.numPredict;
    const warmRequests = regime.tokensPerSecond > 0 ? 100 : quick ? 200 : 600;
    for (const p of [sim, foreman, bare]) await warmUp(p.url, warmPredict, warmRequests);
    for (const c of CONCURRENCY) {
      const s: Sides = {
        direct: await measure(sim.url, c, regime, sim, null),
        foreman: await measure(foreman.url, c, regime, sim, foreman),
        'bare proxy': await measure(bare.url, c, regime, sim, bare),
      };
      sides.set(`${regime.tokensPerSecond}:${c}`, s);
      for (const path of ['direct', 'foreman', 'bare proxy'] as const) rows.push(row(regime, c, path, s[path], s.direct));
    }
  } finally {
    await bare?.stop();
    await foreman?.stop();
    await sim.stop();
  }
}

interface WaitingRss {
  waiting: number;
  idleRss: number;
  rss: number;
  heapUsed: number;
  queuedInMs: number;
  emptiedInMs: number;
  stallRunning: boolean;
}

interface QueueView {
  totals?: { waiting?: number; running?: number };
}

async function pollQueue(url: string, until: (q: QueueView) => boolean, timeoutMs: number): Promise<{ q: QueueView; ms: number; ok: boolean }> {
  const started = performance.now();
  let q: QueueView = {};
  for (;;) {
    q = await getJson<QueueView>(`${url}/queue`, 5_000);
    if (until(q)) return { q, ms: performance.now() - started, ok: true };
    if (performance.now() - started > timeoutMs) return { q, ms: performance.now() - started, ok: false };
    await sleep(50);
  }
}

/** foreman --parallel 1: one stalled stream runs, then `count` streamed requests wait in the queue. */
async function waitingRss(count: number): Promise<WaitingRss> {
  const sim = await startProcess('sim-rss', 'sim', ['--load-ms', '0', '--tokens-per-second', '50', '--models', MODEL]);
  let foreman: BenchProcess | undefined;
  const agent = createAgent(count + 16);
  const requests: ClientRequest[] = [];
  const pending: Promise<unknown>[] = [];
  try {
    foreman = await startForeman('foreman-rss', sim.url, ['--parallel', '1', '--max-queue', String(count * 2)]);
    await warmUp(foreman.url, 2, 40);
    const idle = await foreman.usage();
    const send = (extra: Record<string, unknown>) =>
      pending.push(streamPost(foreman!.url, '/api/chat', chatBody(20, extra), { agent, onRequest: (r) => requests.push(r) }));
    send({ sim: { fault: 'stall' } });
    const running = await pollQueue(foreman.url, (q) => q.totals?.running === 1, 10_000);
    const started = performance.now();
    for (let i = 0; i < count; i++) send({});
    const queued = await pollQueue(foreman.url, (q) => (q.totals?.waiting ?? 0) >= count, 60_000);
    const queuedInMs = performance.now() - started;
    const loaded = await foreman.usage();
    for (const r of requests) r.destroy();
    const emptied = await pollQueue(foreman.url, (q) => q.totals?.waiting === 0 && q.totals?.running === 0, 20_000);
    return {
      waiting: queued.q.totals?.waiting ?? 0,
      idleRss: idle.rss,
      rss: loaded.rss,
      heapUsed: loaded.heapUsed,
      queuedInMs,
      emptiedInMs: emptied.ok ? emptied.ms : NaN,
      stallRunning: running.ok,
    };
  } finally {
    for (const r of requests) r.destroy();
    await Promise.race([Promise.allSettled(pending), sleep(10_000)]);
    agent.destroy();
    await foreman?.stop();
    await sim.stop();
  }
}

export async function runStreamingBench(options: { quick?: boolean } = {}): Promise<BenchReport> {
  const quick = options.quick ?? false;
  const rows: Row[] = [];
  const sides = new Map<string, Sides>();
  for (const regime of regimes(quick)) await regimeRows(regime, quick, rows, sides);

  const WAITING = 1_000;
  const rss = await waitingRss(WAITING);
  const rssRows: Row[] = [{
    'waiting (GET /queue)': rss.waiting,
    'stalled job running': rss.stallRunning ? 'yes' : 'no',
    'RSS idle MiB': mib(rss.idleRss),
    'RSS waiting MiB': mib(rss.rss),
    'heapUsed MiB': mib(rss.heapUsed),
    'KiB per waiting stream': num((rss.rss - rss.idleRss) / 1024 / Math.max(1, rss.waiting), 1),
    'all queued in ms': num(rss.queuedInMs),
    'queue empty after abort ms': num(rss.emptiedInMs),
  }];

  const summary: SummaryRow[] = [];
  const label = (tps: number) => (tps > 0 ? 'realistic' : 'unlimited');
  for (const tps of [50, 0]) {
    const s = sides.get(`${tps}:32`);
    if (!s) continue;
    const ratio = s.foreman.chunksPerS / s.direct.chunksPerS;
    const bareRatio = s['bare proxy'].chunksPerS / s.direct.chunksPerS;
    summary.push({
      target: `chunks/s via foreman >= 90% of direct, c=32, ${label(tps)}`,
      measured: `${(ratio * 100).toFixed(1)}% (bare proxy ${(bareRatio * 100).toFixed(1)}%)`,
      verdict: verdict(ratio >= 0.9),
    });
  }
  for (const tps of [50, 0]) {
    for (const c of [1, 32]) {
      const s = sides.get(`${tps}:${c}`);
      if (!s) continue;
      const added = s.foreman.ttfbP50 - s.direct.ttfbP50;
      summary.push({
        target: `added TTFB p50 < 1 ms, c=${c}, ${label(tps)}`,
        measured: `${ms(added)} ms, p99 ${ms(s.foreman.ttfbP99 - s.direct.ttfbP99)} (bare ${ms(s['bare proxy'].ttfbP50 - s.direct.ttfbP50)})`,
        verdict: verdict(added < 1),
      });
    }
  }
  const cpu = sides.get('0:32');
  if (cpu) {
    summary.push({
      target: 'foreman CPU per 100k chunks, c=32, unlimited',
      measured: `${per100k(cpu.foreman.proxyCpuUs, cpu.foreman.chunks)} ms (bare proxy ${per100k(cpu['bare proxy'].proxyCpuUs, cpu['bare proxy'].chunks)} ms)`,
      verdict: 'info',
    });
  }
  summary.push({
    target: `RSS < 150 MB with ${WAITING} waiting streams`,
    measured: `${(rss.rss / 1e6).toFixed(1)} MB (${rss.waiting} waiting; idle ${(rss.idleRss / 1e6).toFixed(1)} MB)`,
    verdict: rss.waiting >= WAITING ? verdict(rss.rss < 150e6) : 'n/a',
  });

  return {
    title: 'Streaming: straight to the simulator (direct) vs through foreman vs through a bare node:http proxy',
    tables: [
      { caption: 'NDJSON chunks per second and time to first byte', rows },
      { caption: `foreman RSS with ${WAITING} streamed requests waiting (--parallel 1, one stalled job running)`, rows: rssRows },
    ],
    notes: [
      `/api/chat, stream true, one model, sim --load-ms 0 --num-parallel ${SLOTS}; foreman --parallel ${SLOTS} (its maximum), so at c=256 both sides run ${SLOTS} streams at once and the rest wait (sim semaphore vs foreman queue); TTFB at c=256 includes that wait.`,
      'realistic: 20 tokens per stream at 50 tok/s (upstream-bound); unlimited: 200 tokens per stream, no delay (CPU-bound).',
      'Load generator, simulator and foreman are three processes; on a 2-core machine they compete for CPU, so "unlimited" ratios measure the shared CPU, not foreman alone.',
      'bare proxy = spec/bench/bare-proxy.ts, node:http piping upstream bytes as they come (no queue, no re-chunking, no logs): the cost of any Node hop on this machine.',
      'chunks/s = NDJSON lines received / wall time of the run; TTFB = request sent to first body byte; added = path minus direct percentile (distributions, not pairs).',
      'CPU = process.cpuUsage() delta (user+system, all threads) over the run, reported by the child over IPC, per 100k chunks received and per request; at 50 tok/s every chunk is its own wake-up, so per-chunk cost is far above the batched "unlimited" case. foreman logs its request lines to a file.',
      `RSS: process.memoryUsage().rss of foreman after GET /queue shows totals.waiting >= ${WAITING}; then every client socket is destroyed and the queue must empty.`,
    ],
    summary,
  };
}
