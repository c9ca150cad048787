// What makes two requests one queue group: the model (with Ollama's implied
// ':latest') plus the options that force Ollama to load the runner anew (SPEC §1).
// `x:local` names the local model x, so it shares x's group (SPEC §12). Names compare without regard
// to case, as Ollama compares them; keys normalise, job records and responses keep the name as sent.

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

/** The model part of a group key: `Llama3.2` and `llama3.2:latest` are one model to Ollama, so one key here. */
export function modelKey(model: string): string {
  return normalizeModel(model).toLowerCase();
}

/** True when two names address the same upstream model. */
export function sameModel(a: string, b: string): boolean {
  return modelKey(a) === modelKey(b);
}

export function groupKey(model: string, options: unknown): string {
  let key = modelKey(model);
  if (options && typeof options === 'object' && !Array.isArray(options)) {
    const o = options as Record<string, unknown>;
    for (const name of LOAD_OPTIONS) {
      const value = o[name];
      // Ollama reads the runner options as integers (a float is truncated): 8192.5 is 8192's runner.
      if (value !== undefined && value !== null) key += ` ${name}=${JSON.stringify(typeof value === 'number' ? Math.trunc(value) : value)}`;
    }
  }
  return key;
}

/** The model part of a group key. */
export function modelOfGroup(group: string): string {
  const space = group.indexOf(' ');
  return space === -1 ? group : group.slice(0, space);
}
