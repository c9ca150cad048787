// Request `options` and `think` as Ollama reads them: typed option checks
// (api.Options.FromMap texts, status 500), the runner options whose change
// forces a reload, and the think flag.

import type { LoadSpec } from './residency.js';
import { optionTypeError } from '../ollama-options.js';
import { SimError, badRequest } from './wire.js';

// Runner options (sched.go needsReload) and the defaults they compare against,
// so `num_ctx: 4096` and no num_ctx share a runner, while 8192 forces a reload.
const RUNNER_DEFAULTS: Record<string, number | boolean | null> = {
  num_ctx: 4096,
  num_batch: 512,
  num_gpu: -1,
  use_mmap: null,
  use_mlock: false,
  num_thread: 0,
};

export const DEFAULT_NUM_CTX = 4096;

/** Validates option types; throws 500 `option "x" must be of type float32` like Ollama. */
export function checkOptions(options: Record<string, unknown>): void {
  const error = optionTypeError(options);
  if (error !== null) throw new SimError(500, error);
}

/** The load spec for a request: runner options merged over defaults, plus keep_alive. */
export function loadSpec(options: Record<string, unknown>, keepAliveMs: number): LoadSpec {
  const merged: Record<string, number | boolean | null> = { ...RUNNER_DEFAULTS };
  for (const key of Object.keys(RUNNER_DEFAULTS)) {
    const value = options[key];
    if (typeof value === 'number') merged[key] = Math.trunc(value); // Go converts float64 to int
    else if (typeof value === 'boolean') merged[key] = value;
  }
  const numCtx = typeof merged['num_ctx'] === 'number' && merged['num_ctx'] > 0 ? merged['num_ctx'] : DEFAULT_NUM_CTX;
  return { key: JSON.stringify(merged), numCtx, keepAliveMs };
}

/** options.num_predict when positive (reply length, done_reason "length"), else undefined. */
export function numPredict(options: Record<string, unknown>): number | undefined {
  const n = options['num_predict'];
  return typeof n === 'number' && n >= 1 ? Math.min(Math.trunc(n), MAX_TOKENS) : undefined;
}

/** Bound on one reply, so a num_predict of 1e12 cannot exhaust memory. */
export const MAX_TOKENS = 10_000_000;

/**
 * `think`: true/false or an effort level. Returns undefined when absent
 * (thinking models then think), else whether thinking was asked for.
 */
export function parseThink(value: unknown): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && ['low', 'medium', 'high', 'max'].includes(value)) return true;
  throw badRequest(`invalid think value: ${JSON.stringify(value)} (must be "high", "medium", "low", true, or false)`);
}
