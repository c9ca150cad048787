// The hosts bench's seeded workload (hosts-bench.ts), shared with its virtual-time replay
// (hosts-sim.ts) so both play exactly the same jobs. HOSTS_BENCH_SEED picks another seed (load
// table and jobs both follow it), to check a policy is not fitted to the one seeded workload.

import { seededRandom as prng } from '../support/prng.js';

export const MODELS = ['llama3.2', 'qwen3', 'mistral', 'gemma3', 'phi4', 'deepseek-r1', 'granite3', 'smollm2'] as const;
export const HOSTS = 3;
export const SCALE = 0.05; // 2..20 s loads become 100..1000 ms
export const TOKENS_PER_SECOND = 200; // 5 ms per token
export const DEFAULT_SEED = 17_170_017;
export const SEED = Number(process.env.HOSTS_BENCH_SEED ?? DEFAULT_SEED);

/** Host h has model j unless (h + j) % 3 === 2: every model on two of the three hosts. */
export const hasModel = (h: number, j: number) => (h + j) % 3 !== 2;

export const modelIndex = (model: string) => MODELS.indexOf(model as (typeof MODELS)[number]);

export function loadTable(seed = SEED): number[][] {
  const r = prng(seed + 7);
  return Array.from({ length: HOSTS }, () => MODELS.map(() => Math.round((2_000 + r() * 18_000) * SCALE)));
}

export interface Job {
  model: string;
  tokens: number;
  at: number;
  sync: boolean;
}

export function workload(quick: boolean, seed = SEED): Job[] {
  const r = prng(seed);
  const jobs: Job[] = [];
  // A backlog of async work at the start, skewed towards a few models as real queues are.
  const asyncCount = quick ? 72 : 144;
  for (let i = 0; i < asyncCount; i++) {
    const j = Math.min(MODELS.length - 1, Math.floor(MODELS.length * r() ** 1.5));
    jobs.push({ model: MODELS[j]!, tokens: 10 + Math.floor(r() * 21), at: 0, sync: false });
  }
  // Bursts of interactive sync requests while the backlog drains.
  const bursts = quick ? 4 : 8;
  for (let b = 0; b < bursts; b++) {
    const at = 300 + b * 900 + Math.floor(r() * 300);
    const models = [MODELS[Math.floor(r() * MODELS.length)]!, MODELS[Math.floor(r() * MODELS.length)]!];
    for (let k = 0; k < 5; k++) jobs.push({ model: models[k % 2]!, tokens: 10 + Math.floor(r() * 21), at: at + k * 20, sync: true });
  }
  return jobs;
}

export const runMs = (j: Job) => (j.tokens * 1000) / TOKENS_PER_SECOND;
