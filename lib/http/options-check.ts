// Types of the `options` Ollama knows (api.Options), checked at the edge: a wrong type is a 400 with
// Ollama's own words, before it can form a queue group of its own or cost the loaded model a switch.

import { badRequest } from '../errors.js';

type OptionKind = 'integer' | 'float32' | 'boolean' | 'array';

const KINDS: Readonly<Record<string, OptionKind>> = {
  num_keep: 'integer', seed: 'integer', num_predict: 'integer', top_k: 'integer',
  repeat_last_n: 'integer', mirostat: 'integer', num_ctx: 'integer', num_batch: 'integer',
  num_gpu: 'integer', main_gpu: 'integer', num_thread: 'integer',
  top_p: 'float32', min_p: 'float32', typical_p: 'float32', temperature: 'float32',
  repeat_penalty: 'float32', presence_penalty: 'float32', frequency_penalty: 'float32',
  mirostat_tau: 'float32', mirostat_eta: 'float32', tfs_z: 'float32',
  penalize_newline: 'boolean', numa: 'boolean', low_vram: 'boolean', vocab_only: 'boolean',
  use_mmap: 'boolean', use_mlock: 'boolean', f16_kv: 'boolean', logits_all: 'boolean',
  stop: 'array',
};

/**
 * Ollama answers these with 500 (`option "num_ctx" must be of type integer`); SPEC §8 makes it a 400, same words.
 * Unknown options pass (Ollama ignores them); null means unset.
 */
export function checkOptionTypes(options: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(options)) {
    const kind = KINDS[key];
    if (kind === undefined || value === null) continue;
    const ok = kind === 'boolean' ? typeof value === 'boolean'
      : kind === 'array' ? Array.isArray(value)
      : typeof value === 'number' && Number.isFinite(value);
    if (!ok) throw badRequest(`option ${JSON.stringify(key)} must be of type ${kind}`);
    if (kind === 'array' && !(value as unknown[]).every((s) => typeof s === 'string')) {
      throw badRequest(`option ${JSON.stringify(key)} must be of an array of strings`);
    }
  }
}
