// Several Ollama hosts (SPEC §17): foreman's lanes against the routers peers use (round robin
// and least connections over the hosts that have the model, as Olla, OllamaFlow or LiteLLM
// route), on one seeded workload over the same simulated hosts, side by side in one run, and
// against the lower bound. Reports loads, makespan and the p95 wait of sync jobs.

import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createAgent, getJson, percentile, sleep, streamPost } from './load.js';
import { startProcess, tempDir, type BenchProcess } from './procs.js';
import { ms, num, verdict, type BenchReport, type Row, type SummaryRow } from './report.js';

import { DEFAULT_SEED, HOSTS, MODELS, SEED, TOKENS_PER_SECOND, hasModel, loadTable, runMs, workload, type Job } from './hosts-workload.js';

/** The plain routers: pick a host that has the model, by round robin or by fewest requests in flight. */
async function startRouter(kind: 'round-robin' | 'least-connections', hosts: string[], catalogue: (h: number, model: string) => boolean): Promise<{ url: string; close(): Promise<void> }> {
  const inFlight = hosts.map(() => 0);
  let turn = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      const model = String((JSON.parse(body.toString()) as { model?: string }).model ?? '');
      const eligible = hosts.map((_, i) => i).filter((i) => catalogue(i, model));
      let h: number;
      if (kind === 'round-robin') h = eligible[turn++ % eligible.length]!;
      else h = eligible.reduce((best, i) => (inFlight[i]! < inFlight[best]! ? i : best), eligible[0]!);
      inFlight[h]!++;
      const url = new URL(hosts[h]!);
      const up = request({ host: url.hostname, port: url.port, path: req.url, method: req.method, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, { 'content-type': ur.headers['content-type'] ?? 'application/json' });
        ur.pipe(res);
        ur.once('end', () => inFlight[h]!--);
      });
      up.once('error', () => {
        inFlight[h]!--;
        res.destroy();
      });
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

interface Outcome {
  makespanMs: number;
  loads: number;
  syncWaitP95: number;
  syncWaitP50: number;
  errors: number;
}

interface Stats {
  loads: Record<string, number>;
  requests: Record<string, number>;
  loadOrder: string[];
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

/** Plays the workload: sync jobs stream /api/chat; async ones are POST /jobs on foreman, plain requests elsewhere. */
async function play(url: string, sims: BenchProcess[], jobs: Job[], asyncJobs: boolean, token?: string): Promise<Outcome> {
  for (const sim of sims) await getJson(`${sim.url}/sim/reset`, 5_000, {});
  const agent = createAgent(jobs.length + 8);
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  try {
    const started = performance.now();
    const results = await Promise.all(jobs.map(async (job, i) => {
      const wait = started + job.at - performance.now();
      if (wait > 0) await sleep(wait);
      const body = { model: job.model, messages: [{ role: 'user', content: `job ${i}` }], options: { num_predict: job.tokens } };
      if (!job.sync && asyncJobs) {
        const created = await postJson(`${url}/jobs`, body, auth);
        const done = await getJsonAuth(`${url}/jobs/${created.id}?wait=300`, auth);
        return { sync: false, endMs: performance.now(), waitMs: NaN, error: done.state !== 'completed' };
      }
      const r = await streamPost(url, '/api/chat', body, { agent, timeoutMs: 600_000, headers: auth });
      return { sync: job.sync, endMs: r.endMs, waitMs: r.ttfbMs, error: Boolean(r.error) || r.lines !== job.tokens + 1 };
    }));
    const stats = await Promise.all(sims.map((s) => getJson<Stats>(`${s.url}/sim/stats`)));
    if (process.env.HOSTS_BENCH_DEBUG) {
      const meanRun = (m: string) => {
        const js = jobs.filter((j) => `${j.model}:latest` === m);
        return js.reduce((a, j) => a + runMs(j), 0) / js.length;
      };
      const busy = stats.map((s, h) => Math.round(
        Object.entries(s.requests).reduce((a, [m, n]) => a + n * meanRun(m), 0) +
        s.loadOrder.reduce((a, m) => a + loadTable()[h]![MODELS.indexOf(m.replace(':latest', '') as (typeof MODELS)[number])]!, 0)));
      console.error(url, 'busy (work + loads) per host:', busy, stats.map((s) => s.loadOrder.map((m) => m.replace(':latest', '')).join(' > ')));
    }
    const waits = results.filter((r) => r.sync).map((r) => r.waitMs);
    return {
      makespanMs: Math.max(...results.map((r) => r.endMs)) - started,
      loads: stats.reduce((a, s) => a + sum(s.loads), 0),
      syncWaitP95: percentile(waits, 95),
      syncWaitP50: percentile(waits, 50),
      errors: results.filter((r) => r.error).length,
    };
  } finally {
    agent.destroy();
  }
}

function postJson(href: string, body: unknown, headers: Record<string, string>): Promise<{ id: string }> {
  return httpJson(href, 'POST', headers, body) as Promise<{ id: string }>;
}

function getJsonAuth(href: string, headers: Record<string, string>): Promise<{ state: string }> {
  return httpJson(href, 'GET', headers) as Promise<{ state: string }>;
}

function httpJson(href: string, method: string, headers: Record<string, string>, body?: unknown): Promise<unknown> {
  const url = new URL(href);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname, port: url.port, path: url.pathname + url.search, method, agent: false,
      headers: { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
    }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.once('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.once('error', reject);
    req.end(payload);
  });
}

export async function runHostsBench(options: { quick?: boolean } = {}): Promise<BenchReport> {
  const quick = options.quick ?? false;
  const jobs = workload(quick);
  const loads = loadTable();
  const sims: BenchProcess[] = [];
  let foreman: BenchProcess | undefined;
  const routers: Array<{ url: string; close(): Promise<void> }> = [];
  const rows: Row[] = [];
  const summary: SummaryRow[] = [];
  const groups = new Set(jobs.map((j) => j.model)).size;
  const work = jobs.reduce((a, j) => a + runMs(j), 0);
  // Lower bound: all run time plus one load per group (on its fastest host), spread over the hosts.
  const minLoad = (model: string) => {
    const j = MODELS.indexOf(model as (typeof MODELS)[number]);
    return Math.min(...loads.map((row, h) => (hasModel(h, j) ? row[j]! : Infinity)));
  };
  const usedModels = [...new Set(jobs.map((j) => j.model))];
  const bound = (work + usedModels.reduce((a, m) => a + minLoad(m), 0)) / HOSTS;
  try {
    for (let h = 0; h < HOSTS; h++) {
      const models = MODELS.map((m, j) => (hasModel(h, j) ? `${m}=${loads[h]![j]}` : null)).filter(Boolean).join(',');
      sims.push(await startProcess(`sim-host-${h + 1}`, 'sim', ['--tokens-per-second', String(TOKENS_PER_SECOND), '--num-parallel', '1', '--models', models]));
    }
    const urls = sims.map((s) => s.url);
    const catalogue = (h: number, model: string) => hasModel(h, MODELS.indexOf(model as (typeof MODELS)[number]));
    const foremanArgs = [
      '--upstream', urls.join(','), '--parallel', '1', '--data-dir', await tempDir('foreman-hosts'), '--shutdown-grace', '2s',
      '--tokens', 'bench-token', '--max-queue', '4096',
    ];
    foreman = await startProcess('foreman-hosts', 'serve', foremanArgs);
    routers.push(await startRouter('round-robin', urls, catalogue), await startRouter('least-connections', urls, catalogue));
    // HOSTS_BENCH_WARM=1 plays the workload on foreman once before measuring: the measured runs then
    // start with learned load and run times (a warm start), to tell cold-start costs from the rest.
    // Then foreman restarts on the same data dir and the same hosts (names are host:port): it
    // starts with the load times it measured (load-times.json) and reads the hosts' residency
    // afresh, rather than believing models loaded that /sim/reset unloaded behind its back.
    if (process.env.HOSTS_BENCH_WARM) {
      await play(foreman.url, sims, jobs, true, 'bench-token');
      await foreman.stop();
      for (const sim of sims) await getJson(`${sim.url}/sim/reset`, 5_000, {});
      foreman = await startProcess('foreman-hosts', 'serve', foremanArgs);
    }
    // HOSTS_BENCH_FOREMAN_ONLY=1 skips the two routers (a quick look at foreman while tuning it).
    const variants: Array<[string, string, boolean, string | undefined]> = [
      ...(process.env.HOSTS_BENCH_FOREMAN_ONLY ? [] : [
        ['round robin (installed models)', routers[0]!.url, false, undefined],
        ['least connections (installed models)', routers[1]!.url, false, undefined],
      ] as Array<[string, string, boolean, string | undefined]>),
      ['foreman (lanes, drain by model)', foreman.url, true, 'bench-token'],
    ];
    const outcomes = new Map<string, Outcome>();
    for (const [name, url, asyncJobs, token] of variants) {
      const o = await play(url, sims, jobs, asyncJobs, token);
      outcomes.set(name, o);
      rows.push({
        router: name, jobs: jobs.length, groups, hosts: HOSTS, loads: o.loads,
        'makespan ms': num(o.makespanMs), 'bound ms': num(bound), 'makespan/bound': num(o.makespanMs / bound, 2),
        'sync wait p50 ms': num(o.syncWaitP50), 'sync wait p95 ms': num(o.syncWaitP95), errors: o.errors,
      });
    }
    // The same backlog without the sync bursts: what the interruptions cost foreman (reference).
    const backlog = jobs.filter((j) => !j.sync);
    const backlogWork = backlog.reduce((a, j) => a + runMs(j), 0);
    const backlogModels = [...new Set(backlog.map((j) => j.model))];
    const backlogBound = (backlogWork + backlogModels.reduce((a, m) => a + minLoad(m), 0)) / HOSTS;
    const quiet = await play(foreman.url, sims, backlog, true, 'bench-token');
    rows.push({
      router: 'foreman, async backlog only (reference)', jobs: backlog.length, groups: backlogModels.length, hosts: HOSTS, loads: quiet.loads,
      'makespan ms': num(quiet.makespanMs), 'bound ms': num(backlogBound), 'makespan/bound': num(quiet.makespanMs / backlogBound, 2),
      'sync wait p50 ms': '-', 'sync wait p95 ms': '-', errors: quiet.errors,
    });
    // And the backlog sent as sync requests: the schedule without the async path's per-job journal work.
    const direct = await play(foreman.url, sims, backlog, false, 'bench-token');
    rows.push({
      router: 'foreman, the backlog as sync requests (reference)', jobs: backlog.length, groups: backlogModels.length, hosts: HOSTS, loads: direct.loads,
      'makespan ms': num(direct.makespanMs), 'bound ms': num(backlogBound), 'makespan/bound': num(direct.makespanMs / backlogBound, 2),
      'sync wait p50 ms': '-', 'sync wait p95 ms': '-', errors: direct.errors,
    });
    if (process.env.HOSTS_BENCH_LOG) (await import('node:fs')).writeFileSync(process.env.HOSTS_BENCH_LOG, foreman.logTail(100_000));
    if (process.env.HOSTS_BENCH_DEBUG) console.error(foreman.logTail(2000).split('\n').filter((l) => /model switch|host (down|up)|requeued/.test(l)).join('\n'));
    const f = outcomes.get('foreman (lanes, drain by model)')!;
    const lc = outcomes.get('least connections (installed models)') ?? { ...f, syncWaitP95: NaN };
    summary.push({ target: 'hosts: loads <= groups + hosts (foreman)', measured: `${f.loads} loads, ${groups} groups + ${HOSTS} hosts`, verdict: verdict(f.loads <= groups + HOSTS) });
    summary.push({ target: 'hosts: makespan within 1.2x lower bound (foreman)', measured: `${ms(f.makespanMs, 0)} / ${ms(bound, 0)} ms = ${(f.makespanMs / bound).toFixed(2)}`, verdict: verdict(f.makespanMs <= 1.2 * bound) });
    summary.push({ target: 'hosts: sync p95 wait <= half of least connections\'', measured: `${ms(f.syncWaitP95, 0)} vs ${ms(lc.syncWaitP95, 0)} ms = ${(f.syncWaitP95 / lc.syncWaitP95).toFixed(2)}`, verdict: verdict(f.syncWaitP95 <= 0.5 * lc.syncWaitP95) });
  } finally {
    for (const r of routers) await r.close();
    await foreman?.stop();
    for (const s of sims) await s.stop();
  }
  const loadRows = loads.map((row, h) => Object.fromEntries([['host', `host-${h + 1}`], ...MODELS.map((m, j) => [m, hasModel(h, j) ? row[j]! : '-'])]));
  return {
    title: `Several hosts: foreman lanes vs round robin and least connections (spec/bench/hosts-bench.ts${SEED === DEFAULT_SEED ? '' : `, HOSTS_BENCH_SEED=${SEED}`})`,
    tables: [
      { caption: `${jobs.length} seeded jobs (${jobs.filter((j) => !j.sync).length} async at t=0, ${jobs.filter((j) => j.sync).length} sync in bursts), ${groups} models over ${HOSTS} hosts`, rows },
      { caption: 'load time per host and model, ms (2-20 s scaled by 0.05; - = not installed)', rows: loadRows },
    ],
    notes: [
      `sims: --num-parallel 1, ${TOKENS_PER_SECOND} tok/s, 10..30 tokens a job; each model on two of three hosts. foreman: --parallel 1 per host, sync priority 10 (default), async jobs by POST /jobs.`,
      'Routers: each request goes to a host that has the model installed, by round robin or by fewest requests in flight; async jobs are plain requests there (they have no queue of their own).',
      'bound = (sum of run times + one load per model on its fastest host) / hosts. makespan = first send to last completion. sync wait = time to the first response byte.',
      'The last two rows run foreman again on the async backlog alone (no sync bursts), against its own bound: as async jobs (POST /jobs), then as plain sync requests (no journal work per job). They start with the load times learned in the first run, and with foreman\'s residency as the previous run left it while /sim/reset unloaded the hosts.',
      'loads = sum of the simulators\' /sim/stats loads. POST /sim/reset on every host before each run.',
    ],
    summary,
  };
}
