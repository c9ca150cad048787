// Streaming straight to the simulator (direct), through foreman and through nginx (when installed),
// side by side in one run: several rounds, the paths in a different order each round, medians
// reported (SPEC §2). NDJSON lines per second, time to first byte, proxy CPU per 100k lines, and
// foreman's RSS with 1,000 streams waiting in its queue. Measures and reports; asserts nothing.

import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { ClientRequest } from 'node:http';
import { closedLoop, createAgent, getJson, percentile, sleep, streamPost } from './load.js';
import { startProcess, tempDir, type BenchProcess } from './procs.js';
import { findNginx, startNginx } from './nginx.js';
import { mib, ms, num, verdict, type BenchReport, type Row, type SummaryRow } from './report.js';

const MODEL = 'llama3.2';
/** foreman's --parallel is at most 64 (lib/config.ts); the simulator gets the same number of slots. */
const SLOTS = 64;

type PathName = 'direct' | 'foreman' | 'nginx';

interface Load {
  concurrency: number;
  numPredict: number;
  durationMs: number;
  /** a fixed amount of work per sample when min = max (the realistic regime) */
  minRequests: number;
  maxRequests: number;
}

interface Sample {
  reqs: number;
  lines: number;
  linesPerS: number;
  ttfbP50: number;
  errors: number;
  /** what the failed requests said (error, or a line count other than expected) */
  errorKinds: string[];
  wallMs: number;
  /** CPU of the proxy in the path (foreman or nginx), 0 for direct */
  proxyCpuUs: number;
}

const chatBody = (numPredict: number, extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  messages: [{ role: 'user', content: 'Tell me a story about a lighthouse keeper.' }],
  options: { num_predict: numPredict },
  ...extra,
});

async function sample(url: string, load: Load, proxy: BenchProcess | null): Promise<Sample> {
  const agent = createAgent(load.concurrency);
  const expectedLines = load.numPredict + 1;
  try {
    const before = await proxy?.usage();
    const run = await closedLoop({
      concurrency: load.concurrency, durationMs: load.durationMs, minRequests: load.minRequests, maxRequests: load.maxRequests,
      send: () => streamPost(url, '/api/chat', chatBody(load.numPredict), { agent, timeoutMs: 120_000 }),
    });
    const after = await proxy?.usage();
    const lines = run.results.reduce((n, r) => n + r.lines, 0);
    return {
      reqs: run.results.length, lines, linesPerS: lines / (run.wallMs / 1000),
      ttfbP50: percentile(run.results.map((r) => r.ttfbMs), 50),
      errors: run.results.filter((r) => r.error || r.lines !== expectedLines).length,
      errorKinds: [...new Set(run.results.filter((r) => r.error || r.lines !== expectedLines)
        .map((r) => r.error ?? `${r.lines} of ${expectedLines} lines`))],
      wallMs: run.wallMs,
      proxyCpuUs: before && after ? after.cpuUs - before.cpuUs : 0,
    };
  } finally {
    agent.destroy();
  }
}

async function warmUp(url: string, numPredict: number, requests: number, concurrency = 8): Promise<void> {
  const agent = createAgent(concurrency);
  try {
    await closedLoop({
      concurrency, durationMs: 60_000, maxRequests: requests,
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

const median = (xs: number[]) => percentile(xs, 50);
const range = (xs: number[], digits: number) => {
  const finite = xs.filter(Number.isFinite);
  return finite.length < 2 ? '' : ` [${Math.min(...finite).toFixed(digits)}..${Math.max(...finite).toFixed(digits)}]`;
};
const cpuPer100k = (s: Sample) => (s.proxyCpuUs / 1e6 / s.lines) * 100_000;

interface Paths {
  order: PathName[];
  url: Record<string, string>;
  proc: Record<string, BenchProcess | null>;
}

/** Samples of each path per round; round r starts with a different path, so drift hits every path alike. */
async function rounds(paths: Paths, count: number, load: Load): Promise<Record<string, Sample[]>> {
  const out: Record<string, Sample[]> = {};
  for (const p of paths.order) out[p] = [];
  for (let r = 0; r < count; r++) {
    const order = paths.order.map((_, i) => paths.order[(i + r) % paths.order.length]!);
    for (const p of order) out[p]!.push(await sample(paths.url[p]!, load, paths.proc[p] ?? null));
  }
  return out;
}

/** Per-round comparisons with direct (same round), then the median over rounds. */
interface Compared {
  linesPerS: number;
  ratio: number[];
  ttfb: number;
  added: number[];
  cpu100k: number;
  cpuCore: number;
  errors: number;
  errorKinds: string[];
  reqs: number;
}

function compare(samples: Record<string, Sample[]>, path: string): Compared {
  const own = samples[path]!;
  const direct = samples.direct!;
  return {
    linesPerS: median(own.map((s) => s.linesPerS)),
    ratio: own.map((s, i) => s.linesPerS / direct[i]!.linesPerS),
    ttfb: median(own.map((s) => s.ttfbP50)),
    added: own.map((s, i) => s.ttfbP50 - direct[i]!.ttfbP50),
    cpu100k: median(own.map(cpuPer100k)),
    cpuCore: median(own.map((s) => s.proxyCpuUs / 1000 / s.wallMs)),
    errors: own.reduce((n, s) => n + s.errors, 0),
    errorKinds: [...new Set(own.flatMap((s) => s.errorKinds))],
    reqs: own.reduce((n, s) => n + s.reqs, 0),
  };
}

function row(regime: string, c: number, path: string, x: Compared): Row {
  const proxied = path !== 'direct';
  return {
    regime, conc: c, path, reqs: x.reqs,
    'lines/s': num(x.linesPerS),
    'x direct': proxied ? `${median(x.ratio).toFixed(3)}${range(x.ratio, 3)}` : '',
    'TTFB p50 ms': ms(x.ttfb),
    'added p50 ms': proxied ? `${ms(median(x.added))}${range(x.added, 2)}` : '',
    'proxy CPU s/100k lines': proxied ? ms(x.cpu100k, 3) : '',
    'proxy CPU % core': proxied ? num(x.cpuCore * 100, 1) : '',
    errors: x.errors,
  };
}

interface Measured {
  unlimited32: Record<string, Compared>;
  unlimited1: Record<string, Compared>;
  realistic: Record<string, Compared>;
}

async function withStack<T>(
  name: string, tokensPerSecond: number, warm: { numPredict: number; requests: number; concurrency?: number }, nginxBinary: string | null,
  body: (paths: Paths) => Promise<T>,
): Promise<T> {
  const sim = await startProcess(`sim-${name}`, 'sim', [
    '--load-ms', '0', '--tokens-per-second', String(tokensPerSecond), '--num-parallel', String(SLOTS),
    '--max-queue', '4096', '--models', MODEL,
  ]);
  let foreman: BenchProcess | undefined;
  let nginx: BenchProcess | undefined;
  try {
    foreman = await startForeman(`foreman-${name}`, sim.url, ['--parallel', String(SLOTS), '--max-queue', '4096']);
    if (nginxBinary) nginx = await startNginx(nginxBinary, sim.url);
    const paths: Paths = {
      order: nginx ? ['direct', 'foreman', 'nginx'] : ['direct', 'foreman'],
      url: { direct: sim.url, foreman: foreman.url, ...(nginx ? { nginx: nginx.url } : {}) },
      proc: { direct: null, foreman, ...(nginx ? { nginx } : {}) },
    };
    for (const p of paths.order) await warmUp(paths.url[p]!, warm.numPredict, warm.requests, warm.concurrency);
    return await body(paths);
  } finally {
    await nginx?.stop();
    await foreman?.stop();
    await sim.stop();
  }
}

function compareAll(samples: Record<string, Sample[]>): Record<string, Compared> {
  return Object.fromEntries(Object.keys(samples).map((p) => [p, compare(samples, p)]));
}

// 256 clients, 64 slots on either side; a fixed amount of work per sample, so "x direct" is the
// hand-off cost of the queue and the relay, not how many requests fit in a time box.
const realisticLoad = (quick: boolean): Load => ({
  concurrency: 256, numPredict: 25, durationMs: 0, minRequests: quick ? 256 : 512, maxRequests: quick ? 256 : 512,
});

async function measureRealistic(quick: boolean, nginxBinary: string | null, rounds_ = quick ? 1 : 3): Promise<Record<string, Compared>> {
  const load = realisticLoad(quick);
  // Warmed with one sample's worth of the same load: a cold foreman spends a third of its CPU in
  // V8's optimizing compiler for its first few thousand requests (ADR 0015), nginx has no JIT.
  const warm = { numPredict: load.numPredict, requests: load.maxRequests, concurrency: load.concurrency };
  return withStack('realistic', 50, warm, nginxBinary, async (paths) => compareAll(await rounds(paths, rounds_, load)));
}

async function measureAll(quick: boolean, nginxBinary: string | null): Promise<Measured> {
  const count = quick ? 2 : 5;
  const numPredict = 2_000;
  const unlimited = await withStack('unlimited', 0, { numPredict, requests: quick ? 40 : 120 }, nginxBinary, async (paths) => {
    const busy: Load = { concurrency: 32, numPredict, durationMs: quick ? 1_500 : 3_000, minRequests: 32, maxRequests: 20_000 };
    const lone: Load = { concurrency: 1, numPredict, durationMs: quick ? 1_000 : 2_000, minRequests: 20, maxRequests: 5_000 };
    const s32 = await rounds(paths, count, busy);
    const s1 = await rounds(paths, count, lone);
    return { unlimited32: compareAll(s32), unlimited1: compareAll(s1) };
  });
  const realistic = await measureRealistic(quick, nginxBinary);
  return { ...unlimited, realistic };
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
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(pending), new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer); // else the run ends with "still open: Timeout"
    agent.destroy();
    await foreman?.stop();
    await sim.stop();
  }
}

export async function runStreamingBench(options: { quick?: boolean } = {}): Promise<BenchReport> {
  const quick = options.quick ?? false;
  const nginxBinary = findNginx();
  const loadBefore = loadavg()[0]!;
  const m = await measureAll(quick, nginxBinary);
  const loadAfter = loadavg()[0]!;
  const rows: Row[] = [];
  const paths = Object.keys(m.unlimited32);
  for (const p of paths) rows.push(row('unlimited, 2,000 tokens', 32, p, m.unlimited32[p]!));
  for (const p of paths) rows.push(row('unlimited, 2,000 tokens', 1, p, m.unlimited1[p]!));
  for (const p of paths) rows.push(row('50 tok/s, 25 tokens', 256, p, m.realistic[p]!));

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

  const f32 = m.unlimited32.foreman!;
  const n32 = m.unlimited32.nginx;
  const f1 = m.unlimited1.foreman!;
  const n1 = m.unlimited1.nginx;
  const fr = m.realistic.foreman!;
  const nginxSays = (x: Compared | undefined, what: (c: Compared) => string) => (x ? ` (nginx ${what(x)})` : '');
  const ratio = (x: Compared) => `${median(x.ratio).toFixed(3)}${range(x.ratio, 3)}`;
  const added = (x: Compared) => `${ms(median(x.added))}${range(x.added, 2)} ms`;
  const overNginx = n32 ? f32.ttfb - n32.ttfb : NaN;
  const summary: SummaryRow[] = [
    {
      target: 'throughput >= 0.95 x direct, c=32, unlimited',
      measured: `${ratio(f32)}${nginxSays(n32, ratio)}`,
      verdict: verdict(median(f32.ratio) >= 0.95),
    },
    {
      target: 'TTFB p50 at c=32 within 3 ms of direct',
      measured: `+${added(f32)}${nginxSays(n32, added)}`,
      verdict: verdict(median(f32.added) <= 3),
    },
    {
      target: 'TTFB p50 at c=32 within 3 ms of nginx',
      measured: n32 ? `${ms(overNginx)} ms (foreman ${ms(f32.ttfb)}, nginx ${ms(n32.ttfb)})` : 'nginx not installed',
      verdict: n32 ? verdict(overNginx <= 3) : 'n/a',
    },
    {
      target: 'TTFB p50, lone client, within +0.5 ms of direct',
      measured: `+${added(f1)}${nginxSays(n1, added)}`,
      verdict: verdict(median(f1.added) <= 0.5),
    },
    {
      target: 'CPU per 100k lines <= 0.25 s, c=32, unlimited',
      measured: `${ms(f32.cpu100k, 3)} s${nginxSays(n32, (x) => `${ms(x.cpu100k, 3)} s`)}`,
      verdict: verdict(f32.cpu100k <= 0.25),
    },
    {
      target: 'throughput >= 0.98 x direct, 256 streams at 50 tok/s',
      measured: `${ratio(fr)}${nginxSays(m.realistic.nginx, ratio)}`,
      verdict: verdict(median(fr.ratio) >= 0.98),
    },
    {
      target: 'foreman CPU < 10% of a core, 256 streams at 50 tok/s',
      measured: `${num(fr.cpuCore * 100, 1)}%${nginxSays(m.realistic.nginx, (x) => `${num(x.cpuCore * 100, 1)}%`)}`,
      verdict: verdict(fr.cpuCore < 0.1),
    },
    {
      target: `RSS < 150 MB with ${WAITING} waiting streams`,
      measured: `${(rss.rss / 1e6).toFixed(1)} MB (${rss.waiting} waiting; idle ${(rss.idleRss / 1e6).toFixed(1)} MB)`,
      verdict: rss.waiting >= WAITING ? verdict(rss.rss < 150e6) : 'n/a',
    },
  ];

  const roundCount = quick ? 2 : 5;
  const failures = [m.unlimited32, m.unlimited1, m.realistic].flatMap((x) =>
    Object.entries(x).filter(([, c]) => c.errors > 0).map(([p, c]) => `${p}: ${c.errorKinds.slice(0, 3).join('; ')}`));
  return {
    title: `Streaming: straight to the simulator (direct) vs through foreman${nginxBinary ? ' vs through nginx' : ''}`,
    tables: [
      { caption: `NDJSON lines per second and time to first byte: medians over rounds [min..max of the per-round values]`, rows },
      { caption: `foreman RSS with ${WAITING} streamed requests waiting (--parallel 1, one stalled job running)`, rows: rssRows },
    ],
    notes: [
      nginxBinary
        ? `nginx = ${nginxBinary}, one process (daemon off, master_process off), proxy_buffering off, HTTP/1.1 keep-alive to the simulator; its CPU from /proc/<pid>/schedstat.`
        : 'nginx not found (set FOREMAN_BENCH_NGINX=/path/to/nginx, or apt-get install nginx): its column is left out.',
      `load average (1 min) ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after on ${cpus().length} cores: above about 1 per core, other processes' CPU and the OS's wake-up latency show up in every column, most in the proxied ones.`,
      `/api/chat, stream true, one model, sim --load-ms 0 --num-parallel ${SLOTS}; foreman --parallel ${SLOTS}.`,
      `unlimited: 2,000 tokens per response, no delay (CPU-bound), ${roundCount} rounds of ${quick ? '1.5' : '3'} s at c=32 and ${quick ? '1' : '2'} s at c=1 per path, the order of the paths rotated each round.`,
      `50 tok/s: ${quick ? 256 : 512} requests of 25 tokens per sample from 256 clients, ${SLOTS} running at once on either side (sim semaphore vs foreman queue), ${quick ? 1 : 3} rounds.`,
      '"x direct" and "added" are computed per round against that round\'s direct sample, then the median (and range) over rounds.',
      'lines/s = NDJSON lines received / wall time; TTFB = request sent to first body byte, p50 of the sample; CPU = process CPU (user+system) over the sample per 100k lines received, or per wall time ("% core").',
      'Load generator, simulator and proxy share 2 cores here: in the CPU-bound regime every ms of proxy CPU is taken from the others, so the ratio reflects the proxy\'s CPU.',
      ...(failures.length ? [`failed requests: ${failures.join(' | ')}`] : []),
      `RSS: process.memoryUsage().rss of foreman after GET /queue shows totals.waiting >= ${WAITING}; then every client socket is destroyed and the queue must empty.`,
    ],
    summary,
  };
}

/**
 * `--only realistic`: the 256-streams-at-50-tok/s regime alone (about a minute), for A/B work on
 * per-request and per-line costs; five rounds instead of three (one with --quick).
 */
export async function runRealisticBench(options: { quick?: boolean } = {}): Promise<BenchReport> {
  const quick = options.quick ?? false;
  const nginxBinary = findNginx();
  const loadBefore = loadavg()[0]!;
  const count = quick ? 1 : 5;
  const m = await measureRealistic(quick, nginxBinary, count);
  const loadAfter = loadavg()[0]!;
  const rows = Object.keys(m).map((p) => row('50 tok/s, 25 tokens', 256, p, m[p]!));
  const fr = m.foreman!;
  const nr = m.nginx;
  const ratio = (x: Compared) => `${median(x.ratio).toFixed(3)}${range(x.ratio, 3)}`;
  const core = (x: Compared) => `${num(x.cpuCore * 100, 1)}%`;
  return {
    title: `Streaming, 256 streams at 50 tok/s: direct vs foreman${nginxBinary ? ' vs nginx' : ''}`,
    tables: [{ caption: 'medians over rounds [min..max of the per-round values]', rows }],
    notes: [
      `${quick ? 256 : 512} requests of 25 tokens per sample from 256 clients, ${SLOTS} running at once on either side, ${count} rounds, the order of the paths rotated each round.`,
      `load average (1 min) ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after on ${cpus().length} cores.`,
    ],
    summary: [
      { target: 'throughput >= 0.98 x direct, 256 streams at 50 tok/s', measured: `${ratio(fr)}${nr ? ` (nginx ${ratio(nr)})` : ''}`, verdict: verdict(median(fr.ratio) >= 0.98) },
      { target: 'foreman CPU < 10% of a core, 256 streams at 50 tok/s', measured: `${core(fr)}${nr ? ` (nginx ${core(nr)})` : ''}`, verdict: verdict(fr.cpuCore < 0.1) },
    ],
  };
}
