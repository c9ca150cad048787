// Drain-by-model vs Ollama's own first-come-first-served scheduler (SPEC §1): one seeded,
// interleaved workload over three models, sent straight to the simulator and through foreman
// (--parallel 1). Reports model loads, makespan and the lower bound; asserts nothing.

import { performance } from 'node:perf_hooks';
import { createAgent, getJson, sleep, streamPost, type StreamResult } from './load.js';
import { startProcess, tempDir, type BenchProcess } from './procs.js';
import { ms, num, verdict, type BenchReport, type Row, type SummaryRow } from './report.js';
import { seededRandom as prng } from '../support/prng.js';

const MODELS = ['llama3.2', 'qwen3', 'mistral'] as const;
const WARM_MODEL = 'gemma3'; // not in the workload: warms both paths without counting a load
const LOAD_MS = 300;
const TOKENS_PER_SECOND = 200; // 5 ms per token: 6..14 tokens = 30..70 ms per job, ~50 ms mean
const SEED = 20_251_026;

interface Job {
  model: string;
  numPredict: number;
  /** ms after the start at which the job is sent (0 for a burst) */
  at: number;
}


function workload(count: number, spreadMeanMs: number): Job[] {
  const pick = prng(SEED); // models and lengths: the same in every variant
  const gaps = prng(SEED + 1); // arrival gaps, exponential with the given mean
  let at = 0;
  return Array.from({ length: count }, (_, i) => {
    if (spreadMeanMs > 0 && i > 0) at += -Math.log(1 - gaps()) * spreadMeanMs;
    return { model: MODELS[Math.floor(pick() * MODELS.length)]!, numPredict: 6 + Math.floor(pick() * 9), at };
  });
}

const runMs = (job: Job) => (job.numPredict * 1000) / TOKENS_PER_SECOND;

/** Consecutive-model blocks in sending order: what a first-come-first-served scheduler loads. */
function runsOf(jobs: Job[]): number {
  let runs = 0;
  let last = '';
  for (const j of [...jobs].sort((a, b) => a.at - b.at)) {
    if (j.model !== last) runs++;
    last = j.model;
  }
  return runs;
}

interface SimStats {
  loads: Record<string, number>;
  evictions: Record<string, number>;
  unloads: Record<string, number>;
  loadOrder: string[];
  maxConcurrent: number;
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

interface Outcome {
  makespanMs: number;
  loads: number;
  evictions: number;
  unloads: number;
  meanLatencyMs: number;
  maxLatencyMs: number;
  errors: number;
}

async function play(url: string, sim: BenchProcess, jobs: Job[]): Promise<Outcome> {
  await getJson(`${sim.url}/sim/reset`, 5_000, {});
  const agent = createAgent(jobs.length + 4);
  try {
    const started = performance.now();
    const results = await Promise.all(
      jobs.map(async (job, i): Promise<StreamResult & { sentAt: number }> => {
        const wait = started + job.at - performance.now();
        if (wait > 0) await sleep(wait);
        const sentAt = performance.now();
        const body = {
          model: job.model,
          messages: [{ role: 'user', content: `job ${i}: summarise the ticket` }],
          options: { num_predict: job.numPredict },
        };
        return { ...(await streamPost(url, '/api/chat', body, { agent, timeoutMs: 300_000 })), sentAt };
      }),
    );
    const end = Math.max(...results.map((r) => r.endMs));
    const stats = await getJson<SimStats>(`${sim.url}/sim/stats`);
    const latencies = results.map((r) => r.endMs - r.sentAt);
    return {
      makespanMs: end - started,
      loads: sum(stats.loads),
      evictions: sum(stats.evictions),
      unloads: sum(stats.unloads),
      meanLatencyMs: latencies.reduce((a, b) => a + b, 0) / latencies.length,
      maxLatencyMs: Math.max(...latencies),
      errors: results.filter((r, i) => r.error || r.lines !== jobs[i]!.numPredict + 1).length,
    };
  } finally {
    agent.destroy();
  }
}

async function warmUp(url: string): Promise<void> {
  const agent = createAgent(4);
  try {
    for (let i = 0; i < 5; i++) {
      await streamPost(url, '/api/chat', { model: WARM_MODEL, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 2 } }, { agent, timeoutMs: 30_000 });
    }
  } finally {
    agent.destroy();
  }
}

export async function runSchedulingBench(options: { quick?: boolean } = {}): Promise<BenchReport> {
  const quick = options.quick ?? false;
  const count = quick ? 30 : 60;
  const variants = [
    { name: 'burst', jobs: workload(count, 0) },
    { name: 'spread (seeded, mean 60 ms apart)', jobs: workload(count, 60) },
  ];
  const sim = await startProcess('sim-sched', 'sim', [
    '--load-ms', String(LOAD_MS), '--tokens-per-second', String(TOKENS_PER_SECOND), '--num-parallel', '1',
  ]);
  let foreman: BenchProcess | undefined;
  const rows: Row[] = [];
  const summary: SummaryRow[] = [];
  try {
    foreman = await startProcess('foreman-sched', 'serve', [
      '--upstream', sim.url, '--parallel', '1', '--data-dir', await tempDir('foreman-sched'), '--shutdown-grace', '2s',
    ]);
    await warmUp(sim.url);
    await warmUp(foreman.url);
    for (const variant of variants) {
      const { jobs } = variant;
      const groups = new Set(jobs.map((j) => j.model)).size;
      const work = jobs.reduce((a, j) => a + runMs(j), 0);
      const last = jobs.reduce((a, j) => (j.at >= a.at ? j : a), jobs[0]!);
      const bound = Math.max(groups * LOAD_MS + work, last.at + runMs(last));
      const runs = runsOf(jobs);
      for (const [path, url] of [['direct (Ollama FCFS)', sim.url], ['via foreman (drain-by-model)', foreman.url]] as const) {
        const o = await play(url, sim, jobs);
        rows.push({
          workload: variant.name,
          path,
          jobs: jobs.length,
          groups,
          'FCFS runs': runs,
          loads: o.loads,
          'loads/groups': num(o.loads / groups, 2),
          'makespan ms': num(o.makespanMs),
          'bound ms': num(bound),
          'makespan/bound': num(o.makespanMs / bound, 3),
          'ms/job beyond loads+work': num((o.makespanMs - (o.loads * LOAD_MS + work)) / jobs.length, 1),
          'mean latency ms': num(o.meanLatencyMs),
          'max latency ms': num(o.maxLatencyMs),
          'evict/unload': `${o.evictions}/${o.unloads}`,
          errors: o.errors,
        });
        if (variant.name === 'burst' && path.startsWith('via')) {
          summary.push({ target: 'loads = groups for a burst (via foreman)', measured: `${o.loads} loads, ${groups} groups`, verdict: verdict(o.loads === groups) });
          summary.push({ target: 'makespan within 10% of lower bound (burst, via foreman)', measured: `${ms(o.makespanMs, 0)} / ${ms(bound, 0)} ms = ${(o.makespanMs / bound).toFixed(3)}`, verdict: verdict(o.makespanMs <= bound * 1.1) });
        }
        if (variant.name === 'burst' && path.startsWith('direct')) {
          summary.push({ target: 'reference: Ollama FCFS on the same burst', measured: `${o.loads} loads, makespan ${(o.makespanMs / bound).toFixed(2)}x bound`, verdict: 'info' });
        }
      }
    }
  } finally {
    await foreman?.stop();
    await sim.stop();
  }
  return {
    title: 'Scheduling: Ollama first-come-first-served (direct) vs foreman drain-by-model (via)',
    tables: [{ caption: `${count} seeded jobs over ${MODELS.join(', ')}; load ${LOAD_MS} ms, 6..14 tokens at ${TOKENS_PER_SECOND} tok/s`, rows }],
    notes: [
      `sim --load-ms ${LOAD_MS} --tokens-per-second ${TOKENS_PER_SECOND} --num-parallel 1; foreman --parallel 1, unload_on_switch on; POST /sim/reset before each run.`,
      'bound = groups x load + sum of run times (for spread: at least the last arrival plus its run time); makespan = first send to last response end.',
      'loads = sum of /sim/stats loads; FCFS runs = consecutive-model blocks in sending order (what Ollama\'s one load queue pays).',
      'ms/job beyond loads+work = (makespan - loads x load - sum of run times) / jobs: per-job cost of HTTP, the simulator and (via) foreman; for spread arrivals it also holds idle time waiting for arrivals.',
      'latency = per job, sent to response end; drain-by-model trades some jobs\' latency for fewer loads.',
    ],
    summary,
  };
}
