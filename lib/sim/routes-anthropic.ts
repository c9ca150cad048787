// POST /v1/messages: Ollama's Anthropic middleware in front of its chat handler
// (ollama-wire.md §8): the middleware's checks and texts (model, max_tokens,
// messages, block shapes), thinking relaxed for models that cannot think, then
// the shared token loop printed as Anthropic events or one message object.

import { estimateInputTokens } from '../token-estimate.js';
import { checkTypes } from './body.js';
import { DEFAULT_KEEP_ALIVE_MS } from './duration.js';
import { hexId, type Exchange } from './exchange.js';
import { anthropicFormat } from './format-anthropic.js';
import { serveGeneration } from './generation.js';
import { loadSpec } from './options.js';
import { planReply } from './reply.js';
import { checkCapabilities } from './routes-native.js';
import { answeredByFault } from './serve.js';
import { badRequest, notFoundGenerate } from './wire.js';

type Body = Record<string, unknown>;

const isObject = (v: unknown): v is Body => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A message's blocks as Ollama normalises them: a string is one text block. */
function blocksOf(message: Body): Body[] {
  const content = message['content'];
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (content === undefined || content === null) return [];
  if (!Array.isArray(content)) {
    throw badRequest(`json: cannot unmarshal ${typeof content} into Go value of type []anthropic.ContentBlock`);
  }
  return content.filter(isObject);
}

/** convertMessage's checks, and the text the reply is derived from. */
function messageText(message: Body): string {
  let text = '';
  for (const block of blocksOf(message)) {
    switch (block['type']) {
      case 'text':
        if (typeof block['text'] === 'string') text += block['text'];
        break;
      case 'image': {
        const source = block['source'];
        if (!isObject(source)) throw badRequest('invalid image source');
        if (source['type'] !== 'base64') {
          throw badRequest(`invalid image source type: ${String(source['type'] ?? '')}. Only base64 images are supported.`);
        }
        break;
      }
      case 'tool_use':
        if (!block['id']) throw badRequest("tool_use block missing required 'id' field");
        if (!block['name']) throw badRequest("tool_use block missing required 'name' field");
        break;
      case 'tool_result': {
        const c = block['content'];
        if (typeof c === 'string') text += c;
        else if (Array.isArray(c)) for (const part of c) if (isObject(part) && typeof part['text'] === 'string') text += part['text'];
        break;
      }
      default:
        break; // thinking and unknown blocks carry no text the model answers
    }
  }
  return text;
}

function systemText(system: unknown): string {
  if (typeof system === 'string') return system;
  if (!Array.isArray(system)) return '';
  return system.map((b) => (isObject(b) && b['type'] === 'text' && typeof b['text'] === 'string' ? b['text'] : '')).join('');
}

/** thinking.type enabled/disabled, else an output_config effort of low..max, else the model's default. */
function thinkOf(body: Body): boolean | undefined {
  const thinking = body['thinking'];
  if (isObject(thinking) && thinking['type'] === 'enabled') return true;
  if (isObject(thinking) && thinking['type'] === 'disabled') return false;
  const config = body['output_config'];
  const effort = isObject(config) && typeof config['effort'] === 'string' ? config['effort'].trim().toLowerCase() : '';
  return ['high', 'medium', 'low', 'max', 'xhigh'].includes(effort) ? true : undefined;
}

export async function handleMessages(ex: Exchange, body: Body): Promise<void> {
  checkTypes(
    body,
    'anthropic.MessagesRequest',
    { model: 'string', max_tokens: 'number', messages: 'array', stream: 'bool', tools: 'array', temperature: 'number' },
    { max_tokens: 'int', messages: '[]anthropic.MessageParam', tools: '[]anthropic.Tool', temperature: 'float64' },
  );
  const model = (body['model'] as string | undefined) ?? '';
  if (model === '') throw badRequest('model is required');
  const maxTokens = typeof body['max_tokens'] === 'number' ? Math.trunc(body['max_tokens']) : 0;
  if (maxTokens <= 0) throw badRequest('max_tokens is required and must be positive');
  const messages = ((body['messages'] ?? []) as unknown[]).map((m) => {
    if (!isObject(m)) throw badRequest('json: cannot unmarshal into Go value of type anthropic.MessageParam');
    return m;
  });
  if (messages.length === 0) throw badRequest('messages is required');
  const texts = messages.map((m) => `${String(m['role'] ?? '').toLowerCase()}: ${messageText(m)}`);
  const system = systemText(body['system']);
  const stream = body['stream'] === true;
  if (answeredByFault(ex, 'anthropic', notFoundGenerate(model), stream)) return;
  const entry = ex.core.catalog.find(model);
  if (!entry) throw notFoundGenerate(model);
  // relax_thinking: asking a model that cannot think to think is ignored here.
  const think = entry.thinking ? thinkOf(body) : undefined;
  const tools = ((body['tools'] ?? []) as unknown[]).filter(isObject).map((t) => ({
    type: 'function',
    function: { name: t['name'], description: t['description'], parameters: t['input_schema'] },
  }));
  checkCapabilities(entry, model, 'chat', think, tools.length > 0);
  // max_tokens becomes num_predict. A simulated model says defaultTokens and
  // stops on its own, so only a smaller max_tokens cuts it short ("max_tokens").
  const options: Body = typeof body['temperature'] === 'number' ? { temperature: body['temperature'] } : {};
  if (maxTokens < ex.core.settings.defaultTokens) options['num_predict'] = maxTokens;
  const last = messages[messages.length - 1]!;
  const reply = planReply({
    entry,
    prompt: (system ? `system: ${system}\n` : '') + texts.join('\n'),
    options,
    think,
    tools,
    lastUserText: String(last['role']).toLowerCase() === 'user' ? lastUserText(last) : '',
    jsonMode: false,
    defaultTokens: ex.core.settings.defaultTokens,
    overhead: 4 * messages.length + 1,
  });
  const format = anthropicFormat(model, hexId(ex.core, 'msg'), estimateInputTokens(body));
  await serveGeneration(ex, { entry, spec: loadSpec(options, DEFAULT_KEEP_ALIVE_MS), reply, format, stream, surface: 'anthropic' });
}

/** A user turn that only returns tool results converts to tool messages: no user text for the trigger. */
function lastUserText(message: Body): string {
  return blocksOf(message).map((b) => (b['type'] === 'text' && typeof b['text'] === 'string' ? b['text'] : '')).join('');
}
