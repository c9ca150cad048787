// Deterministic model output: tokens from a hash of model + prompt + seed (the
// same request gives the same reply), tool-call arguments from a tool's
// schema, and L2-normalised embedding vectors. Pure: no I/O, no clock.

import { hashString, Rng } from './rng.js';
import { goJson } from './wire.js';

// Tokens carry their own leading space. Some are multi-byte UTF-8 (2, 3 and
// 4 bytes) or need JSON escaping, so splitting and re-chunking tests hit them.
const VOCAB = [
  ' the', ' model', ' answers', ' quickly', ' and', ' a', ' queue', ' of', ' requests', ' is',
  ' café', ' →', ' naïve', ' 🙂', ' über', ' déjà', ' vu', ' stream', ' token', ' data',
  ' to', ' in', ' it', ' with', ' Ollama', ' server', ' load', ' time', ' “quoted”', ' <b>',
  ' &', ' "x"', '.', ',', '\n', ' 日本', ' 🚀', ' résumé', ' fast', ' slow',
];
// Safe inside a JSON string value (format:"json" replies): no quote, backslash or newline.
const SAFE = VOCAB.map((_, i) => i).filter((i) => !/["\\\n]/.test(VOCAB[i]!));

const TEXT_FIRST = VOCAB.map((t) => t.replace(/^ /, ''));
const JSON_FIRST = TEXT_FIRST.map((t) => goJson(t));
const JSON_REST = VOCAB.map((t) => goJson(t));

/** A lazily drawn token sequence; `json` and `text` share one draw. */
export class TokenSource {
  #rng: Rng;
  #first = true;
  #jsonMode: boolean;
  #index = 0;
  #count: number;
  text = '';
  json = '""';

  constructor(seed: number, count: number, jsonMode: boolean) {
    this.#rng = new Rng(seed);
    this.#count = count;
    this.#jsonMode = jsonMode;
  }

  /** Advances to the next token; read `.text` and `.json` (pre-encoded) after. */
  next(): void {
    const i = this.#index++;
    if (this.#jsonMode && i === 0) return this.#set('{"answer":"');
    if (this.#jsonMode && i === this.#count - 1) return this.#set('"}');
    const pick = this.#jsonMode ? SAFE[this.#rng.int(SAFE.length)]! : this.#rng.int(VOCAB.length);
    if (this.#first || (this.#jsonMode && i === 1)) {
      this.#first = false;
      this.text = TEXT_FIRST[pick]!;
      this.json = JSON_FIRST[pick]!;
    } else {
      this.text = VOCAB[pick]!;
      this.json = JSON_REST[pick]!;
    }
  }

  #set(text: string): void {
    this.#first = false;
    this.text = text;
    this.json = goJson(text);
  }
}

export interface ToolCall {
  id: string;
  index: number;
  name: string;
  arguments: Record<string, unknown>;
}

/** The word that makes the simulator call a tool (documented in index.ts). */
export const TOOL_TRIGGER = /\bweather\b/i;

/**
 * One call to the first tool, with plausible arguments for its declared
 * properties (required ones if listed, else all): strings 'Tokyo' (or the
 * first enum value), numbers 1, booleans true, arrays [], objects {}.
 */
export function planToolCall(tools: unknown[], seed: number): ToolCall | null {
  const fn = (tools[0] as { function?: { name?: unknown; parameters?: unknown } } | undefined)?.function;
  if (!fn || typeof fn.name !== 'string') return null;
  const params = (fn.parameters ?? {}) as { properties?: unknown; required?: unknown };
  const props = (params.properties && typeof params.properties === 'object' ? params.properties : {}) as Record<string, unknown>;
  const required = Array.isArray(params.required) ? params.required.filter((k): k is string => typeof k === 'string') : [];
  const keys = required.length > 0 ? required : Object.keys(props);
  const args: Record<string, unknown> = {};
  for (const key of keys) args[key] = sampleValue(key, props[key]);
  return { id: 'call_' + new Rng(seed ^ 0x5bd1e995).alnum(8), index: 0, name: fn.name, arguments: args };
}

function sampleValue(key: string, schema: unknown): unknown {
  const s = (schema ?? {}) as { type?: unknown; enum?: unknown };
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'number':
    case 'integer':
      return 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return {};
    default:
      return /unit/i.test(key) ? 'celsius' : 'Tokyo';
  }
}

/** Rough token count of a prompt: about four bytes a token, as Llama tokenisers average. */
export function countPromptTokens(text: string, overhead: number): number {
  return Math.max(1, Math.ceil(Buffer.byteLength(text) / 4) + overhead);
}

/** Seed for a reply: model + prompt + options.seed, so identical requests agree. */
export function replySeed(model: string, prompt: string, seed: unknown): number {
  return hashString(prompt, hashString(`${model}\u0000${typeof seed === 'number' ? seed : ''}`));
}

/** Deterministic unit vector (float32-rounded) for one input. */
export function embedVector(model: string, input: string, length: number): number[] {
  const rng = new Rng(hashString(input, hashString(model)));
  const raw: number[] = new Array(length);
  let norm = 0;
  for (let i = 0; i < length; i++) {
    const v = rng.next() * 2 - 1;
    raw[i] = v;
    norm += v * v;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < length; i++) raw[i] = Number(Math.fround(raw[i]! / norm).toPrecision(8));
  return raw;
}

/** generate's `context`: token ids for prompt + reply, capped at the context window. */
export function contextIds(seed: number, count: number): number[] {
  const rng = new Rng(seed ^ 0x27d4eb2d);
  const ids: number[] = new Array(count);
  for (let i = 0; i < count; i++) ids[i] = 1 + rng.int(128_000);
  return ids;
}
