// The `options` Ollama knows (api.Options) and the words it uses for a value of the wrong type.
// One table for foreman's edge check (a 400, SPEC §8) and the simulator's (a 500, as Ollama answers).

export type OptionKind = 'integer' | 'float32' | 'boolean' | 'array';

export const OPTION_KINDS: Readonly<Record<string, OptionKind>> = {
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
 * Ollama's message for the first option of the wrong type (`option "num_ctx" must be of type integer`),
 * or null when every known option fits. Unknown options pass (Ollama ignores them); null means unset.
 */
export function optionTypeError(options: Record<string, unknown>): string | null {
  for (const [key, value] of Object.entries(options)) {
    const kind = OPTION_KINDS[key];
    if (kind === undefined || value === null) continue;
    const ok = kind === 'boolean' ? typeof value === 'boolean'
      : kind === 'array' ? Array.isArray(value)
      : typeof value === 'number' && Number.isFinite(value);
    if (!ok) return `option ${JSON.stringify(key)} must be of type ${kind}`;
    if (kind === 'array' && !(value as unknown[]).every((s) => typeof s === 'string')) {
      return `option ${JSON.stringify(key)} must be of an array of strings`;
    }
  }
  return null;
}
