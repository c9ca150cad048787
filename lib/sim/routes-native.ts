// POST /api/chat and /api/generate: validation in Ollama's order with its
// error texts (ollama-wire.md §3), preload and unload, then the token loop.

import { createdAt } from './clock.js';
import type { ModelEntry } from './catalog.js';
import { checkTypes } from './body.js';
import { DEFAULT_KEEP_ALIVE_MS, parseKeepAlive } from './duration.js';
import type { Exchange } from './exchange.js';
import { chatFormat, generateFormat } from './format-native.js';
import { serveGeneration } from './generation.js';
import { checkOptions, loadSpec, parseThink } from './options.js';
import { planReply } from './reply.js';
import { answeredByFault, withRunner } from './serve.js';
import { CT_JSON, badRequest, goJson, notFoundGenerate } from './wire.js';
import { echoedName } from './cloud.js';

type Body = Record<string, unknown>;

export async function handleChat(ex: Exchange, body: Body): Promise<void> {
  checkTypes(
    body,
    'api.ChatRequest',
    { model: 'string', messages: 'array', stream: 'bool', options: 'object', tools: 'array' },
    { messages: '[]api.Message', tools: 'api.Tools' },
  );
  const messages = (body['messages'] ?? []) as unknown[];
  const prompt = renderMessages(messages);
  const stream = body['stream'] !== false;
  const model = (body['model'] as string | undefined) ?? '';
  if (model === '') throw badRequest('model is required');
  const keepAliveMs = parseKeepAlive(body['keep_alive']);
  const think = parseThink(body['think']);
  if (answeredByFault(ex, 'ollama', notFoundGenerate(model), stream)) return;
  const entry = ex.core.catalog.find(model);
  if (!entry) throw notFoundGenerate(model);
  const loadReply = (reason: string) =>
    `{"model":${goJson(model)},"created_at":"${createdAt()}","message":{"role":"assistant","content":""},` +
    `"done":true,"done_reason":"${reason}"}`;
  if (messages.length === 0 && keepAliveMs === 0) return unload(ex, entry, loadReply('unload'));
  const tools = (body['tools'] ?? []) as unknown[];
  checkCapabilities(entry, model, 'chat', think, tools.length > 0);
  const options = (body['options'] ?? {}) as Body;
  checkOptions(options);
  const spec = loadSpec(options, keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS);
  if (messages.length === 0) return preload(ex, entry, spec, () => loadReply('load'));
  const last = messages[messages.length - 1] as Body;
  const reply = planReply({
    entry,
    prompt,
    options,
    think,
    tools,
    lastUserText: String(last['role']).toLowerCase() === 'user' ? String(last['content'] ?? '') : '',
    jsonMode: isJsonFormat(body['format']),
    defaultTokens: ex.core.settings.defaultTokens,
    overhead: 4 * messages.length + 1,
  });
  const format = chatFormat(echoedName(model));
  await serveGeneration(ex, { entry, spec, reply, format, stream, surface: 'ollama' });
}

export async function handleGenerate(ex: Exchange, body: Body): Promise<void> {
  checkTypes(
    body,
    'api.GenerateRequest',
    { model: 'string', prompt: 'string', system: 'string', template: 'string', stream: 'bool', raw: 'bool', options: 'object', context: 'array' },
    { context: '[]int' },
  );
  const raw = body['raw'] === true;
  if (raw && (body['template'] || body['system'] || (Array.isArray(body['context']) && body['context'].length > 0))) {
    throw badRequest('raw mode does not support template, system, or context');
  }
  const stream = body['stream'] !== false;
  const model = (body['model'] as string | undefined) ?? '';
  const keepAliveMs = parseKeepAlive(body['keep_alive']);
  const think = parseThink(body['think']);
  if (answeredByFault(ex, 'ollama', notFoundGenerate(model), stream)) return;
  const entry = model === '' ? undefined : ex.core.catalog.find(model);
  if (!entry) throw notFoundGenerate(model); // an empty model is a 404 here, not a 400
  const prompt = (body['prompt'] as string | undefined) ?? '';
  const loadReply = (reason: string) =>
    `{"model":${goJson(model)},"created_at":"${createdAt()}","response":"","done":true,"done_reason":"${reason}"}`;
  if (prompt === '' && keepAliveMs === 0) return unload(ex, entry, loadReply('unload'));
  checkCapabilities(entry, model, 'generate', think, false);
  const options = (body['options'] ?? {}) as Body;
  checkOptions(options);
  const spec = loadSpec(options, keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS);
  if (prompt === '') return preload(ex, entry, spec, () => loadReply('load'));
  const system = typeof body['system'] === 'string' ? body['system'] : '';
  const reply = planReply({
    entry,
    prompt: system ? `${system}\n${prompt}` : prompt,
    options,
    think,
    tools: [],
    lastUserText: '',
    jsonMode: isJsonFormat(body['format']),
    defaultTokens: ex.core.settings.defaultTokens,
    overhead: raw ? 0 : 5,
  });
  const format = generateFormat(echoedName(model), raw, spec.numCtx);
  await serveGeneration(ex, { entry, spec, reply, format, stream, surface: 'ollama' });
}

/** Capability checks as scheduleRunner makes them; `model` is quoted as sent. */
export function checkCapabilities(
  entry: ModelEntry,
  model: string,
  verb: 'chat' | 'generate',
  think: boolean | undefined,
  hasTools: boolean,
): void {
  if (entry.kind === 'embedding') throw badRequest(`"${model}" does not support ${verb}`);
  if (hasTools && !entry.tools) throw badRequest(`registry.ollama.ai/library/${entry.name} does not support tools`);
  if (think === true && !entry.thinking) throw badRequest(`"${model}" does not support thinking`);
}

/** keep_alive 0 with nothing to say: answered at once, the unload follows when idle. */
function unload(ex: Exchange, entry: ModelEntry, body: string): void {
  ex.core.residency.expire(entry);
  ex.sendJson(200, body, CT_JSON);
}

/** Empty prompt or messages: a blocking load, then one JSON object whatever `stream` says. */
export async function preload(ex: Exchange, entry: ModelEntry, spec: ReturnType<typeof loadSpec>, body: () => string): Promise<void> {
  if (entry.remote) return ex.sendJson(200, body(), CT_JSON); // a cloud model has nothing to load here
  return withRunner(ex, entry, spec, { surface: 'ollama', counted: false, permit: false }, () =>
    ex.sendJson(200, body(), CT_JSON),
  );
}

/** Messages flattened to the text the reply is derived from; also checks their shape. */
function renderMessages(messages: unknown[]): string {
  let text = '';
  for (const m of messages) {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) {
      const kind = Array.isArray(m) ? 'array' : m === null ? 'null' : typeof m === 'boolean' ? 'bool' : typeof m;
      throw badRequest(`json: cannot unmarshal ${kind} into Go struct field ChatRequest.messages of type api.Message`);
    }
    const { role, content } = m as Body;
    if (content !== undefined && content !== null && typeof content !== 'string') {
      const kind = Array.isArray(content) ? 'array' : typeof content === 'boolean' ? 'bool' : typeof content;
      throw badRequest(`json: cannot unmarshal ${kind} into Go struct field Message.messages.content of type string`);
    }
    text += `${String(role ?? '').toLowerCase()}: ${content ?? ''}\n`;
  }
  return text;
}

function isJsonFormat(format: unknown): boolean {
  return format === 'json' || (typeof format === 'object' && format !== null);
}
