// What makes two requests one queue group: the model (with Ollama's implied
// ':latest') plus the options that force Ollama to load the runner anew (SPEC §1).
// `x:local` names the local model x, so it shares x's group (SPEC §12).

import { parseModelRef } from './model-ref.js';

/** Options that change the runner, so a different value is a model switch on the Mac. */
export const LOAD_OPTIONS = [
  'num_ctx', 'num_batch', 'num_gpu', 'main_gpu', 'use_mmap', 'use_mlock', 'num_thread', 'low_vram', 'numa', 'vocab_only',
] as const;

/** `llama3.2`, `llama3.2:latest` and `llama3.2:local` name the same model; a tag or digest is kept. */
export function normalizeModel(model: string): string {
  const ref = parseModelRef(model);
  const name = ref.source === 'local' ? ref.base : model.trim();
  const slash = name.lastIndexOf('/');
  return name.indexOf(':', slash + 1) === -1 && !name.includes('@') ? `${name}:latest` : name;
}

export function groupKey(model: string, options: unknown): string {
  let key = normalizeModel(model);
  if (options && typeof options === 'object' && !Array.isArray(options)) {
    const o = options as Record<string, unknown>;
    for (const name of LOAD_OPTIONS) {
      if (o[name] !== undefined && o[name] !== null) key += ` ${name}=${JSON.stringify(o[name])}`;
    }
  }
  return key;
}

/** The model part of a group key. */
export function modelOfGroup(group: string): string {
  const space = group.indexOf(' ');
  return space === -1 ? group : group.slice(0, space);
}
