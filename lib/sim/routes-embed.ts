// POST /api/embed, /api/embeddings (legacy) and /v1/embeddings. Embedding
// models use their own residency slot with parallelism 1; a generation model
// asked for embeddings answers from the generation slot, as Ollama's does.

import { elapsedNs, untilAborted } from './clock.js';
import type { ModelEntry } from './catalog.js';
import { checkTypes } from './body.js';
import { DEFAULT_KEEP_ALIVE_MS, parseKeepAlive } from './duration.js';
import type { Exchange, Surface } from './exchange.js';
import { checkOptions, loadSpec } from './options.js';
import { preload } from './routes-native.js';
import type { Held } from './serve.js';
import { answeredByFault, withRunner } from './serve.js';
import { countPromptTokens, embedVector } from './text.js';
import { CT_JSON, CT_JSON_BARE, SimError, badRequest, goJson, notFoundEmbed } from './wire.js';

type Body = Record<string, unknown>;

export async function handleEmbed(ex: Exchange, body: Body): Promise<void> {
  checkTypes(body, 'api.EmbedRequest', { model: 'string', options: 'object', truncate: 'bool' });
  const model = (body['model'] as string | undefined) ?? '';
  const inputs = embedInputs(body['input'], 'invalid input type');
  const entry = lookup(ex, model, 'ollama', () => new SimError(404, `model '' not found`));
  if (!entry) return;
  const options = (body['options'] ?? {}) as Body;
  checkOptions(options);
  const spec = loadSpec(options, parseKeepAlive(body['keep_alive']) ?? DEFAULT_KEEP_ALIVE_MS);
  if (inputs.length === 0) return preload(ex, entry, spec, () => `{"model":${goJson(model)},"embeddings":[]}`);
  await embed(ex, entry, spec, 'ollama', (held) => {
    const vectors = inputs.map((text) => embedVector(entry.name, text, entry.embeddingLength));
    const tokens = inputs.reduce((n, text) => n + countPromptTokens(text, 2), 0);
    return (
      `{"model":${goJson(model)},"embeddings":${JSON.stringify(vectors)},` +
      `"total_duration":${elapsedNs(ex.startMs)},"load_duration":${elapsedNs(ex.startMs, held.readyMs)},` +
      `"prompt_eval_count":${tokens}}`
    );
  });
}

export async function handleEmbeddings(ex: Exchange, body: Body): Promise<void> {
  checkTypes(body, 'api.EmbeddingRequest', { model: 'string', prompt: 'string', options: 'object' });
  const model = (body['model'] as string | undefined) ?? '';
  const entry = lookup(ex, model, 'ollama', () => badRequest('model is required'));
  if (!entry) return;
  const options = (body['options'] ?? {}) as Body;
  checkOptions(options);
  const spec = loadSpec(options, parseKeepAlive(body['keep_alive']) ?? DEFAULT_KEEP_ALIVE_MS);
  const prompt = (body['prompt'] as string | undefined) ?? '';
  if (prompt === '') return preload(ex, entry, spec, () => '{"embedding":[]}');
  await embed(ex, entry, spec, 'ollama', () => {
    return `{"embedding":${JSON.stringify(embedVector(entry.name, prompt, entry.embeddingLength))}}`;
  });
}

export async function handleOpenAiEmbeddings(ex: Exchange, body: Body): Promise<void> {
  checkTypes(body, 'openai.EmbedRequest', { model: 'string', encoding_format: 'string' });
  const model = (body['model'] as string | undefined) ?? '';
  if (body['input'] === undefined || body['input'] === null) throw badRequest('invalid input');
  const inputs = embedInputs(body['input'], 'invalid input');
  const entry = lookup(ex, model, 'openai', () => badRequest('model is required'));
  if (!entry) return;
  const spec = loadSpec({}, DEFAULT_KEEP_ALIVE_MS); // the OpenAI layer has no keep_alive
  const base64 = String(body['encoding_format'] ?? '').toLowerCase() === 'base64';
  await embed(ex, entry, spec, 'openai', () => {
    let tokens = 0;
    const data = inputs.map((text, index) => {
      tokens += countPromptTokens(text, 2);
      const vector = embedVector(entry.name, text, entry.embeddingLength);
      return { object: 'embedding', embedding: base64 ? float32Base64(vector) : vector, index };
    });
    return goJson({ object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } }) + '\n';
  });
}

/** Resolves the model or answers the error itself (returns undefined). */
function lookup(ex: Exchange, model: string, surface: Surface, missing: () => SimError): ModelEntry | undefined {
  if (model === '') throw missing();
  if (answeredByFault(ex, surface, notFoundEmbed(model), false)) return undefined;
  const entry = ex.core.catalog.find(model);
  if (!entry) throw notFoundEmbed(model);
  return entry;
}

function embedInputs(input: unknown, invalid: string): string[] {
  if (input === undefined || input === null || input === '') return [];
  if (typeof input === 'string') return [input];
  if (Array.isArray(input) && input.every((s) => typeof s === 'string')) return input as string[];
  throw badRequest(invalid);
}

/** Schedules, holds the runner's permit, applies the after-scheduling faults, answers. */
function embed(ex: Exchange, entry: ModelEntry, spec: ReturnType<typeof loadSpec>, surface: Surface, render: (held: Held) => string) {
  return withRunner(ex, entry, spec, { surface, counted: true, permit: true }, async (held) => {
    const d = ex.directive;
    if (d.fault === 'stall') return untilAborted(ex.signal);
    if (d.fault === 'reset') return ex.reset();
    if (d.fault === 'error_mid') return ex.sendError(d.status, d.message, surface);
    const contentType = surface === 'openai' ? CT_JSON_BARE : CT_JSON;
    if (d.fault === 'bad_line') return ex.send(200, contentType, 'not json');
    ex.send(200, contentType, render(held));
  });
}

function float32Base64(vector: number[]): string {
  return Buffer.from(new Float32Array(vector).buffer).toString('base64');
}
