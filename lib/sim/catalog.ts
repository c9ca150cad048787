// The models the simulator "has on disk": name resolution, and the static
// descriptions /api/tags, /api/show, /api/ps and /v1/models print. It knows
// nothing about residency or requests.

import { createHash } from 'node:crypto';
import type { SimModel } from './types.js';
import { isCloudModel, parseModelRef } from '../sched/model-ref.js';

export interface ModelEntry {
  readonly name: string; // normalised, e.g. 'llama3.2:latest'
  readonly kind: 'generate' | 'embedding';
  readonly loadMs: number | undefined;
  readonly tokensPerSecond: number | undefined;
  readonly sizeBytes: number;
  readonly thinking: boolean;
  readonly tools: boolean;
  readonly embeddingLength: number;
  readonly family: string;
  readonly parameterSize: string;
  readonly quantization: string;
  readonly contextLength: number;
  readonly digest: string;
  readonly modifiedMs: number;
  /** a cloud stub: runs on ollama.com, never loads here (SPEC §12) */
  readonly remote: boolean;
}

interface Known {
  family: string;
  parameterSize: string;
  sizeBytes: number;
  contextLength: number;
  thinking?: boolean;
}

// Real figures for the default set, so /api/ps and /api/show look familiar.
const KNOWN: Record<string, Known> = {
  llama3: { family: 'llama', parameterSize: '3.2B', sizeBytes: 2_019_393_189, contextLength: 131072 },
  qwen3: { family: 'qwen3', parameterSize: '8.2B', sizeBytes: 5_225_387_923, contextLength: 40960, thinking: true },
  mistral: { family: 'llama', parameterSize: '7.2B', sizeBytes: 4_113_301_824, contextLength: 32768 },
  gemma3: { family: 'gemma3', parameterSize: '4.3B', sizeBytes: 3_338_801_804, contextLength: 131072 },
  'nomic-embed': { family: 'nomic-bert', parameterSize: '137M', sizeBytes: 274_302_450, contextLength: 2048 },
  'deepseek-r1': { family: 'qwen2', parameterSize: '8.2B', sizeBytes: 5_225_376_047, contextLength: 131072, thinking: true },
};

export const DEFAULT_MODELS: readonly SimModel[] = [
  { name: 'llama3.2:latest' },
  { name: 'qwen3:latest', thinking: true },
  { name: 'mistral:latest' },
  { name: 'gemma3:latest' },
  { name: 'nomic-embed-text:latest', kind: 'embedding' },
  { name: 'gpt-oss:120b-cloud', cloud: true },
];

/** 'llama3.2' -> 'llama3.2:latest'; the tag is implied when the last path part has none. */
export function normalizeName(name: string): string {
  const lastPart = name.slice(name.lastIndexOf('/') + 1);
  return lastPart.includes(':') ? name : `${name}:latest`;
}

/** A model description from its name alone (CLI --models, /api/pull). */
export function modelFromName(name: string): SimModel {
  const kind = name.includes('embed') ? 'embedding' : 'generate';
  const known = knownFor(name);
  return { name: normalizeName(name), kind, thinking: known?.thinking ?? false };
}

function knownFor(name: string): Known | undefined {
  const base = name.slice(name.lastIndexOf('/') + 1).toLowerCase();
  for (const prefix of Object.keys(KNOWN)) if (base.startsWith(prefix)) return KNOWN[prefix];
  return undefined;
}

function toEntry(model: SimModel, modifiedMs: number): ModelEntry {
  const name = normalizeName(model.name);
  const kind = model.kind ?? 'generate';
  const known = knownFor(name);
  return {
    name,
    kind,
    loadMs: model.loadMs,
    tokensPerSecond: model.tokensPerSecond,
    sizeBytes: model.sizeBytes ?? known?.sizeBytes ?? 1_000_000_000,
    thinking: kind === 'generate' && (model.thinking ?? false),
    tools: kind === 'generate' && (model.tools ?? true),
    embeddingLength: Math.max(1, Math.floor(model.embeddingLength ?? 8)),
    family: known?.family ?? (kind === 'embedding' ? 'bert' : 'llama'),
    parameterSize: known?.parameterSize ?? (kind === 'embedding' ? '137M' : '3.2B'),
    quantization: kind === 'embedding' ? 'F16' : 'Q4_K_M',
    contextLength: known?.contextLength ?? (kind === 'embedding' ? 2048 : 131072),
    digest: createHash('sha256').update(name).digest('hex'),
    modifiedMs,
    remote: kind === 'generate' && (model.cloud ?? isCloudModel(name)),
  };
}

export class Catalog {
  #entries = new Map<string, ModelEntry>(); // lower-cased name -> entry

  constructor(models: readonly SimModel[], now: number) {
    // The first model is the most recently modified, so /api/tags keeps the given order.
    models.forEach((model, i) => this.add(model, now - i * 60_000));
  }

  add(model: SimModel, modifiedMs: number): ModelEntry {
    const entry = toEntry(model, modifiedMs);
    this.#entries.set(entry.name.toLowerCase(), entry);
    return entry;
  }

  /** Looks a requested name up; Ollama matches names case-insensitively. */
  find(requested: string): ModelEntry | undefined {
    const entry = this.#entries.get(normalizeName(requested).toLowerCase());
    if (entry) return entry;
    // `x:local` is the local x; `x:8b:cloud` is the stub pulled as `x:8b-cloud` (`x:cloud` without a tag).
    const ref = parseModelRef(requested);
    if (ref.source === 'local') return this.#entries.get(normalizeName(ref.base).toLowerCase());
    if (ref.source === 'cloud') {
      const lastPart = ref.base.slice(ref.base.lastIndexOf('/') + 1);
      const stub = this.#entries.get((lastPart.includes(':') ? `${ref.base}-cloud` : `${ref.base}:cloud`).toLowerCase());
      return stub?.remote ? stub : undefined;
    }
    return undefined;
  }

  delete(requested: string): ModelEntry | undefined {
    const entry = this.find(requested);
    if (entry) this.#entries.delete(entry.name.toLowerCase());
    return entry;
  }

  /** Most recently modified first, as /api/tags sorts. */
  list(): ModelEntry[] {
    return [...this.#entries.values()].sort((a, b) => b.modifiedMs - a.modifiedMs);
  }
}

export function details(entry: ModelEntry): Record<string, unknown> {
  return {
    parent_model: '',
    format: 'gguf',
    family: entry.family,
    families: [entry.family],
    parameter_size: entry.parameterSize,
    quantization_level: entry.quantization,
  };
}

export function capabilities(entry: ModelEntry): string[] {
  if (entry.kind === 'embedding') return ['embedding'];
  const caps = ['completion'];
  if (entry.tools) caps.push('tools');
  if (entry.thinking) caps.push('thinking');
  return caps;
}
