// Fair share between named keys (SPEC §15, ADR 0023), against the simulator through a real
// foreman with a keys file: run-time share of two flooding keys of weights 1 and 3; the queue
// wait of one key's sync requests behind another key's 500 async jobs, with and without fair
// share; and, in process, what a pick costs with 100,000 waiting jobs over 1, 100 and 10,000 keys.

import { performance } from 'node:perf_hooks';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { percentile, sleep } from './load.js';
import { startProcess, tempDir, type BenchProcess } from './procs.js';
import { num, verdict, type BenchReport, type Row, type SummaryRow } from './report.js';
import { createDrainQueue, type QueueItem } from '../../lib/sched/queue.js';
import { seededRandom } from '../support/prng.js';

const TOKENS_PER_SECOND = 400; // 2.5 ms per token
const ADMIN = 'bench-admin';
const KEYS = {
  keys: [
    { name: 'light', token: 'tok-light', weight: 1 },
    { name: 'heavy', token: 'tok-heavy', weight: 3 },
    { name: 'bulk', token: 'tok-bulk' },
    { name: 'interactive', token: 'tok-interactive' },
  ],
};

async function call(base: string, token: string, path: string, init: { method?: string; json?: unknown; headers?: Record<string, string> } = {}) {
  const res = await fetch(base + path, {
    method: init.method ?? (init.json !== undefined ? 'POST' : 'GET'),
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

/** Submits jobs `concurrency` at a time; returns their ids. */
async function submitAll(base: string, token: string, bodies: unknown[], concurrency = 32): Promise<string[]> {
  const ids: string[] = new Array(bodies.length);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < bodies.length) {
      const i = next++;
      const r = await call(base, token, '/jobs', { json: bodies[i] });
      if (r.status !== 202) throw new Error(`POST /jobs answered ${r.status}: ${JSON.stringify(r.body)}`);
      ids[i] = r.body.id;
    }
  }));
  return ids;
}

/** A job that holds the only slot until cancelled, so what is submitted next is all waiting. */
async function hold(base: string): Promise<string> {
  const r = await call(base, ADMIN, '/jobs', { json: { model: 'llama3.2', prompt: 'hold', sim: { fault: 'stall_before' } } });
  const id = r.body.id as string;
  for (let i = 0; i < 2000; i++) {
    if ((await call(base, ADMIN, `/jobs/${id}`)).body.state === 'working') return id;
    await sleep(5);
  }
  throw new Error('the holding job never started');
}

async function keysUsage(base: string): Promise<Map<string, { run: number; completed: number; waiting: number }>> {
  const body = (await call(base, ADMIN, '/keys')).body;
  return new Map(body.keys.map((k: any) => [k.name, { run: k.usage.run_seconds, completed: k.usage.jobs.completed ?? 0, waiting: k.waiting }]));
}

async function startForeman(sim: BenchProcess, name: string): Promise<BenchProcess> {
  const dir = await tempDir(name);
  const keysFile = join(dir, 'keys.json');
  await writeFile(keysFile, JSON.stringify(KEYS));
  return startProcess(name, 'serve', [
    '--upstream', sim.url, '--parallel', '1', '--data-dir', join(dir, 'data'), '--keys-file', keysFile,
    '--tokens', ADMIN, '--max-queue', '5000', '--shutdown-grace', '1s',
  ]);
}

async function weights(sim: BenchProcess, quick: boolean): Promise<{ rows: Row[]; summary: SummaryRow[] }> {
  const foreman = await startForeman(sim, 'foreman-fair-weights');
  try {
    const perKey = quick ? 120 : 240;
    const stopAt = quick ? 80 : 160;
    const random = seededRandom(23);
    // Varied lengths (4..40 tokens: 10..100 ms), the same draw for both keys' i-th job.
    const lengths = Array.from({ length: perKey }, () => 4 + Math.floor(random() * 37));
    const body = (n: number, i: number) => ({ model: 'llama3.2', prompt: `job ${i}`, options: { num_predict: n } });
    const holder = await hold(foreman.url);
    await Promise.all([
      submitAll(foreman.url, 'tok-light', lengths.map(body)),
      submitAll(foreman.url, 'tok-heavy', lengths.map(body)),
    ]);
    const started = performance.now();
    await call(foreman.url, ADMIN, `/jobs/${holder}/cancel`, { method: 'POST' });
    let usage = await keysUsage(foreman.url);
    while ((usage.get('light')!.completed + usage.get('heavy')!.completed) < stopAt) {
      await sleep(100);
      usage = await keysUsage(foreman.url);
    }
    const wall = performance.now() - started;
    const light = usage.get('light')!;
    const heavy = usage.get('heavy')!;
    const ratio = heavy.run / light.run;
    const rows: Row[] = [
      { key: 'light', weight: 1, 'jobs done': light.completed, 'run s': num(light.run, 2), 'share of run time': num(light.run / (light.run + heavy.run), 3), 'still waiting': light.waiting },
      { key: 'heavy', weight: 3, 'jobs done': heavy.completed, 'run s': num(heavy.run, 2), 'share of run time': num(heavy.run / (light.run + heavy.run), 3), 'still waiting': heavy.waiting },
    ];
    const summary: SummaryRow[] = [{
      target: 'weights 1:3 flooding one model: run time 1:3 within 15%',
      measured: `heavy/light run time ${ratio.toFixed(2)} (jobs ${heavy.completed}:${light.completed}) over ${(wall / 1000).toFixed(1)} s`,
      verdict: verdict(Math.abs(ratio / 3 - 1) <= 0.15),
    }];
    return { rows, summary };
  } finally {
    await foreman.stop();
  }
}

interface WaitOutcome { p50: number; p95: number; max: number; runMean: number }

/**
 * `bulk` queues 500 async jobs; then `sender` sends 20 sync requests at priority 0 (the async
 * default), all at once or one after another. Queue waits come from X-Foreman-Queue-Ms.
 */
async function syncBehindBulk(sim: BenchProcess, sender: string, mode: 'burst' | 'sequential', bulk: number): Promise<WaitOutcome> {
  const foreman = await startForeman(sim, `foreman-fair-sync-${sender}-${mode}`);
  try {
    const tokens = 4; // 10 ms per job
    const holder = await hold(foreman.url);
    await submitAll(foreman.url, 'tok-bulk', Array.from({ length: bulk }, (_, i) => ({ model: 'llama3.2', prompt: `bulk ${i}`, options: { num_predict: tokens } })));
    const t0 = performance.now();
    await call(foreman.url, ADMIN, `/jobs/${holder}/cancel`, { method: 'POST' });
    const send = async (i: number) => {
      const r = await call(foreman.url, sender, '/api/chat', {
        json: { model: 'llama3.2', stream: false, messages: [{ role: 'user', content: `sync ${i}` }], options: { num_predict: tokens } },
        headers: { 'x-foreman-priority': '0' },
      });
      if (r.status !== 200) throw new Error(`sync answered ${r.status}`);
      return Number(r.headers.get('x-foreman-queue-ms'));
    };
    const waits: number[] = [];
    if (mode === 'burst') waits.push(...(await Promise.all(Array.from({ length: 20 }, (_, i) => send(i)))));
    else for (let i = 0; i < 20; i++) waits.push(await send(i));
    // Mean run time of the bulk's jobs (over its first 100 at least): waits in units of jobs.
    let usage = await keysUsage(foreman.url);
    while (usage.get('bulk')!.completed < Math.min(100, bulk)) {
      await sleep(50);
      usage = await keysUsage(foreman.url);
    }
    const b = usage.get('bulk')!;
    void t0;
    return { p50: percentile(waits, 50), p95: percentile(waits, 95), max: Math.max(...waits), runMean: (b.run * 1000) / b.completed };
  } finally {
    await foreman.stop();
  }
}

/** Steady state: pick the next item, end it, enqueue a new one for the same owner; ns per cycle. */
function pickCost(waiting: number, owners: number): { nsPerCycle: number; nsPerEnqueue: number } {
  const random = seededRandom(owners);
  const queue = createDrainQueue<QueueItem>({ agingMs: 60_000, weightOf: (o) => 1 + (Number(o.slice(1)) % 3) });
  let id = 0;
  const item = (owner: string, now: number): QueueItem => ({ id: `j${id++}`, group: 'llama3.2:latest', priority: Math.floor(random() * 3), arrivalMs: now, owner });
  const t0 = performance.now();
  for (let i = 0; i < waiting; i++) queue.enqueue(item(`k${i % owners}`, i));
  const enqueueNs = ((performance.now() - t0) * 1e6) / waiting;
  const cycles = 100_000;
  let now = waiting;
  const t1 = performance.now();
  for (let i = 0; i < cycles; i++) {
    now += 1;
    const next = queue.pick(now, 'llama3.2:latest')!;
    queue.finished(next.id, 5 + (i % 50));
    queue.enqueue(item(next.owner!, now));
  }
  const cycleNs = ((performance.now() - t1) * 1e6) / cycles;
  return { nsPerCycle: cycleNs, nsPerEnqueue: enqueueNs };
}

export async function runFairBench(options: { quick?: boolean } = {}): Promise<BenchReport> {
  const quick = options.quick ?? false;
  const summary: SummaryRow[] = [];
  const tables: BenchReport['tables'] = [];

  const costRows: Row[] = [];
  const base = pickCost(100_000, 1);
  for (const [waiting, owners] of [[100_000, 1], [100_000, 100], [100_000, 10_000], [10_000, 100], [1_000, 100]] as const) {
    const c = owners === 1 && waiting === 100_000 ? base : pickCost(waiting, owners);
    costRows.push({ 'waiting jobs': waiting, keys: owners, 'ns per pick+finish+enqueue': num(c.nsPerCycle), 'vs 100,000 of one key': num(c.nsPerCycle / base.nsPerCycle, 2), 'ns per enqueue (fill)': num(c.nsPerEnqueue) });
  }
  const hundred = costRows[1]!;
  const small = costRows[4]!;
  summary.push({
    target: 'pick with 100,000 waiting over 100 keys: O(log n)',
    measured: `${hundred['ns per pick+finish+enqueue']} ns per cycle (${hundred['vs 100,000 of one key']}x one key; ${small['ns per pick+finish+enqueue']} ns with 1,000 waiting)`,
    verdict: 'info',
  });
  tables.push({ caption: 'pick cost in process (lib/sched/queue.ts): steady state of pick, finished, enqueue, one group', rows: costRows });

  const sim = await startProcess('sim-fair', 'sim', ['--load-ms', '0', '--tokens-per-second', String(TOKENS_PER_SECOND), '--num-parallel', '1']);
  try {
    const w = await weights(sim, quick);
    tables.push({ caption: 'two keys flooding llama3.2, weights 1 and 3, foreman --parallel 1 (async jobs of 10..100 ms)', rows: w.rows });
    summary.push(...w.summary);

    const bulk = quick ? 200 : 500;
    const waitRows: Row[] = [];
    const cases = [
      { label: 'fair share (own key)', sender: 'tok-interactive', mode: 'burst' as const },
      { label: 'no fair share (same key as the bulk)', sender: 'tok-bulk', mode: 'burst' as const },
      { label: 'fair share (own key)', sender: 'tok-interactive', mode: 'sequential' as const },
    ];
    const outcomes: WaitOutcome[] = [];
    for (const c of cases) {
      const o = await syncBehindBulk(sim, c.sender, c.mode, bulk);
      outcomes.push(o);
      waitRows.push({
        case: c.label, '20 sync requests': c.mode === 'burst' ? 'all at once' : 'one after another',
        'p50 wait ms': num(o.p50), 'p95 wait ms': num(o.p95), 'max wait ms': num(o.max),
        'p95 in jobs': num(o.p95 / o.runMean, 1), 'mean job ms': num(o.runMean, 1),
      });
    }
    tables.push({ caption: `one key with ${bulk} async jobs queued; another sends 20 sync requests at the same priority (0)`, rows: waitRows });
    summary.push({
      target: `sync p95 wait behind another key's ${bulk} jobs: with vs without fair share`,
      measured: `${num(outcomes[0]!.p95)} ms vs ${num(outcomes[1]!.p95)} ms (burst of 20); one at a time p95 ${num(outcomes[2]!.p95)} ms = ${(outcomes[2]!.p95 / outcomes[2]!.runMean).toFixed(1)} jobs`,
      verdict: verdict(outcomes[0]!.p95 * 5 < outcomes[1]!.p95),
    });
  } finally {
    await sim.stop();
  }
  return {
    title: 'Fair share between named keys (spec/bench/fair-bench.ts)',
    tables,
    notes: [
      `sim --load-ms 0 --tokens-per-second ${TOKENS_PER_SECOND} --num-parallel 1; foreman --parallel 1 with a keys file; a fresh foreman per case.`,
      'Before each case a stalled job holds the only slot while the backlog is submitted, so everything starts queued; then it is cancelled.',
      'Run time per key is GET /keys usage.run_seconds (what fair share charges); waits are X-Foreman-Queue-Ms of the sync answers.',
      '"No fair share" sends the sync requests with the bulk key\'s own token: one key, so the queue is first come first served, as before keys.',
      'Pick cost: 100,000 jobs of one group at priorities 0..2, owners round robin, weights 1..3; each cycle picks, charges 5..54 ms and enqueues a new job.',
    ],
    summary,
  };
}
