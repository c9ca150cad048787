// POST /v1/chat/completions and /v1/completions: Ollama's OpenAI layer
// translates the request (max_tokens -> num_predict, reasoning effort ->
// think, no keep_alive) and shares native scheduling; errors keep the native
// status in the OpenAI shape (ollama-wire.md §5).

import { checkTypes } from './body.js';
import { DEFAULT_KEEP_ALIVE_MS } from './duration.js';
import type { Exchange } from './exchange.js';
import { chatCompletionFormat, completionFormat } from './format-openai.js';
import { serveGeneration } from './generation.js';
import { loadSpec } from './options.js';
import { planReply } from './reply.js';
import { checkCapabilities } from './routes-native.js';
import { answeredByFault } from './serve.js';
import { badRequest, notFoundGenerate } from './wire.js';
import { echoedName } from './cloud.js';

type Body = Record<string, unknown>;

const EFFORTS = ['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max', 'ultra'];

export async function handleChatCompletions(ex: Exchange, body: Body): Promise<void> {
  checkTypes(
    body,
    'openai.ChatCompletionRequest',
    { model: 'string', messages: 'array', stream: 'bool', tools: 'array', max_tokens: 'number', seed: 'number' },
    { messages: '[]openai.Message', tools: '[]api.Tool', max_tokens: 'int', seed: 'int' },
  );
  const messages = (body['messages'] ?? []) as unknown[];
  if (messages.length === 0) throw badRequest("[] is too short - 'messages'");
  const texts = messages.map(messageText);
  const stream = body['stream'] === true;
  const model = (body['model'] as string | undefined) ?? '';
  if (model === '') throw badRequest('model is required');
  if (answeredByFault(ex, 'openai', notFoundGenerate(model), stream)) return;
  const entry = ex.core.catalog.find(model);
  if (!entry) throw notFoundGenerate(model);
  const think = reasoning(body);
  const tools = (body['tools'] ?? []) as unknown[];
  checkCapabilities(entry, model, 'chat', think, tools.length > 0);
  const options = translateOptions(body, ex.core.settings.defaultTokens);
  const spec = loadSpec(options, DEFAULT_KEEP_ALIVE_MS);
  const last = messages[messages.length - 1] as Body;
  const format = (body['response_format'] ?? {}) as Body;
  const reply = planReply({
    entry,
    prompt: texts.join('\n'),
    options,
    think,
    tools,
    lastUserText: String(last['role']).toLowerCase() === 'user' ? texts[texts.length - 1]! : '',
    jsonMode: format['type'] === 'json_object' || format['type'] === 'json_schema',
    defaultTokens: ex.core.settings.defaultTokens,
    overhead: 4 * messages.length + 1,
  });
  const out = chatCompletionFormat(echoedName(model), includeUsage(body), ex.core.requestRng());
  await serveGeneration(ex, { entry, spec, reply, format: out, stream, surface: 'openai' });
}

export async function handleCompletions(ex: Exchange, body: Body): Promise<void> {
  checkTypes(
    body,
    'openai.CompletionRequest',
    { model: 'string', prompt: 'string', stream: 'bool', max_tokens: 'number', seed: 'number', suffix: 'string' },
    { max_tokens: 'int', seed: 'int' },
  );
  const stream = body['stream'] === true;
  const model = (body['model'] as string | undefined) ?? '';
  if (answeredByFault(ex, 'openai', notFoundGenerate(model), stream)) return;
  const entry = model === '' ? undefined : ex.core.catalog.find(model);
  if (!entry) throw notFoundGenerate(model);
  checkCapabilities(entry, model, 'generate', undefined, false);
  const options = translateOptions(body, ex.core.settings.defaultTokens);
  const spec = loadSpec(options, DEFAULT_KEEP_ALIVE_MS);
  const reply = planReply({
    entry,
    prompt: (body['prompt'] as string | undefined) ?? '',
    options,
    think: false, // the completions converter drops thinking, so none is planned
    tools: [],
    lastUserText: '',
    jsonMode: false,
    defaultTokens: ex.core.settings.defaultTokens,
    overhead: 5,
  });
  const out = completionFormat(echoedName(model), includeUsage(body), ex.core.requestRng());
  await serveGeneration(ex, { entry, spec, reply, format: out, stream, surface: 'openai' });
}

/**
 * The options FromChatRequest / FromCompleteRequest fill in. max_tokens becomes
 * num_predict, a cap: a simulated model says defaultTokens and stops on its own,
 * so only a smaller max_tokens cuts it short (agents send 32000 on every turn).
 */
function translateOptions(body: Body, defaultTokens: number): Body {
  const options: Body = {};
  const maxTokens = body['max_tokens'] ?? body['max_completion_tokens'];
  if (typeof maxTokens === 'number' && maxTokens < defaultTokens) options['num_predict'] = maxTokens;
  if (typeof body['seed'] === 'number') options['seed'] = body['seed'];
  options['temperature'] = typeof body['temperature'] === 'number' ? body['temperature'] : 1;
  options['top_p'] = typeof body['top_p'] === 'number' ? body['top_p'] : 1;
  return options;
}

function includeUsage(body: Body): boolean {
  const so = body['stream_options'];
  return typeof so === 'object' && so !== null && (so as Body)['include_usage'] === true;
}

/** reasoning_effort or reasoning.effort: "none" turns thinking off, any other level on. */
function reasoning(body: Body): boolean | undefined {
  const nested = body['reasoning'];
  const effort = body['reasoning_effort'] ?? (typeof nested === 'object' && nested ? (nested as Body)['effort'] : undefined);
  if (effort === undefined || effort === null || effort === '') return undefined;
  if (typeof effort !== 'string' || !EFFORTS.includes(effort)) {
    throw badRequest(`invalid reasoning value: ${JSON.stringify(effort)}`);
  }
  return effort !== 'none';
}

/** A message's text: a string, or the text parts of a content array. */
function messageText(message: unknown): string {
  if (message === null || typeof message !== 'object') throw badRequest('invalid message format');
  const content = (message as Body)['content'];
  if (typeof content === 'string') return content;
  if (content === undefined || content === null) {
    if ((message as Body)['tool_calls'] !== undefined) return '';
    throw badRequest(`invalid message content type: ${content === null ? '<nil>' : 'undefined'}`);
  }
  if (!Array.isArray(content)) throw badRequest(`invalid message content type: ${typeof content}`);
  let text = '';
  for (const part of content as Body[]) {
    if (part === null || typeof part !== 'object') throw badRequest('invalid message format');
    if (part['type'] === 'text' && typeof part['text'] === 'string') text += part['text'];
    else if (part['type'] === 'image_url') {
      const url = typeof part['image_url'] === 'object' && part['image_url'] ? (part['image_url'] as Body)['url'] : part['image_url'];
      if (typeof url === 'string' && /^https?:/i.test(url)) {
        throw badRequest('image URLs are not currently supported, please use base64 encoded data instead');
      }
    } else throw badRequest('invalid message format');
  }
  return text;
}
