// POST /v1/responses: Ollama's Responses middleware in front of its chat
// handler (ollama-wire.md §8): input as a string or items (messages,
// function_call, function_call_output, reasoning), reasoning.effort checked,
// errors in the OpenAI shape, then the token loop as Responses events.

import { checkTypes } from './body.js';
import { DEFAULT_KEEP_ALIVE_MS } from './duration.js';
import type { Exchange } from './exchange.js';
import { responsesFormat, type ResponsesEcho } from './format-responses.js';
import { serveGeneration } from './generation.js';
import { loadSpec } from './options.js';
import { planReply } from './reply.js';
import { checkCapabilities } from './routes-native.js';
import { answeredByFault } from './serve.js';
import { badRequest, notFoundGenerate } from './wire.js';

type Body = Record<string, unknown>;

const isObject = (v: unknown): v is Body => v !== null && typeof v === 'object' && !Array.isArray(v);

const CONTENT_TYPES = ['input_text', 'input_image', 'output_text', 'input_file'];
const ITEM_TYPES = ['message', 'function_call', 'function_call_output', 'reasoning', 'web_search_call'];

/** thinkFromReasoningEffort: none is off, the levels are on, anything else a 400. */
function thinkOf(effort: string): boolean | undefined {
  if (effort === '') return undefined;
  if (effort === 'none') return false;
  if (['minimal', 'low', 'medium', 'high', 'max', 'xhigh', 'ultra'].includes(effort)) return true;
  throw badRequest(
    `invalid reasoning value: ${JSON.stringify(effort)} (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", or "none")`,
  );
}

function contentText(content: unknown, where: string): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw badRequest(`${where}: content must be a string or array`);
  let text = '';
  content.forEach((part, i) => {
    const type = isObject(part) ? part['type'] : undefined;
    if (typeof type !== 'string' || !CONTENT_TYPES.includes(type)) throw badRequest(`${where}: content[${i}]: unknown content type: ${String(type ?? '')}`);
    if (type === 'input_file') throw badRequest('file inputs are not currently supported');
    if ((type === 'input_text' || type === 'output_text') && typeof (part as Body)['text'] === 'string') text += (part as Body)['text'];
  });
  return text;
}

interface Conversation {
  prompt: string;
  lastUserText: string;
  turns: number;
}

/** The input as the chat messages it becomes, flattened to the text the reply derives from. */
function conversation(input: unknown, instructions: string): Conversation {
  const lines: string[] = instructions ? [`system: ${instructions}`] : [];
  if (typeof input === 'string') {
    if (input) lines.push(`user: ${input}`);
    return { prompt: lines.join('\n'), lastUserText: input, turns: lines.length };
  }
  if (input !== undefined && input !== null && !Array.isArray(input)) throw badRequest('input must be a string or array');
  let lastUserText = '';
  ((input ?? []) as unknown[]).forEach((item, i) => {
    const where = `input[${i}]`;
    if (!isObject(item)) throw badRequest(`${where}: input item missing required 'type' field`);
    const type = typeof item['type'] === 'string' && item['type'] ? item['type'] : item['role'] ? 'message' : '';
    if (type === '') throw badRequest(`${where}: input item missing required 'type' field`);
    if (!ITEM_TYPES.includes(type)) throw badRequest(`${where}: unknown input item type: ${JSON.stringify(type)}`);
    lastUserText = '';
    if (type === 'message') {
      const text = contentText(item['content'], where);
      lines.push(`${String(item['role'] ?? '')}: ${text}`);
      if (item['role'] === 'user') lastUserText = text;
    } else if (type === 'function_call') {
      const args = item['arguments'];
      if (typeof args === 'string' && args !== '') {
        try {
          JSON.parse(args);
        } catch (err) {
          throw badRequest(`failed to parse function call arguments: ${(err as Error).message}`);
        }
      }
      lines.push(`assistant: ${String(item['name'] ?? '')}(${String(args ?? '')})`);
    } else if (type === 'function_call_output') {
      const output = item['output'];
      lines.push(`tool: ${typeof output === 'string' ? output : contentText(output, where)}`);
    }
  });
  return { prompt: lines.join('\n'), lastUserText, turns: lines.length };
}

/** Function tools, and the members of namespace tools, as chat tools for planning. */
function chatTools(tools: unknown[]): Body[] {
  const out: Body[] = [];
  for (const t of tools) {
    if (!isObject(t)) continue;
    if (t['type'] === 'namespace' && Array.isArray(t['tools'])) {
      for (const member of chatTools(t['tools'])) {
        const fn = member['function'] as Body;
        out.push({ ...member, function: { ...fn, name: `${String(t['name'] ?? '')}.${String(fn['name'])}` } });
      }
    } else if (t['type'] !== 'web_search') {
      out.push({ type: 'function', function: { name: t['name'], description: t['description'], parameters: t['parameters'] } });
    }
  }
  return out;
}

export async function handleResponses(ex: Exchange, body: Body): Promise<void> {
  checkTypes(
    body,
    'openai.ResponsesRequest',
    { model: 'string', instructions: 'string', stream: 'bool', tools: 'array', max_output_tokens: 'number', reasoning: 'object' },
    { tools: '[]openai.ResponsesTool', max_output_tokens: 'int', reasoning: 'openai.ResponsesReasoning' },
  );
  const instructions = (body['instructions'] as string | undefined) ?? '';
  const conv = conversation(body['input'], instructions);
  const reasoning = (body['reasoning'] ?? {}) as Body;
  const effort = typeof reasoning['effort'] === 'string' ? reasoning['effort'] : '';
  const think = thinkOf(effort);
  const stream = body['stream'] === true;
  const model = (body['model'] as string | undefined) ?? '';
  if (model === '') throw badRequest('model is required');
  if (answeredByFault(ex, 'openai', notFoundGenerate(model), stream)) return;
  const entry = ex.core.catalog.find(model);
  if (!entry) throw notFoundGenerate(model);
  const requestTools = ((body['tools'] ?? []) as unknown[]).filter(isObject);
  const tools = chatTools(requestTools);
  checkCapabilities(entry, model, 'chat', think, tools.length > 0);
  const options: Body = { temperature: typeof body['temperature'] === 'number' ? body['temperature'] : 1 };
  const maxOutput = typeof body['max_output_tokens'] === 'number' ? body['max_output_tokens'] : null;
  // A simulated model stops on its own after defaultTokens; only a smaller limit cuts it.
  if (maxOutput !== null && maxOutput < ex.core.settings.defaultTokens) options['num_predict'] = maxOutput;
  const reply = planReply({
    entry,
    prompt: conv.prompt,
    options,
    think,
    tools,
    lastUserText: conv.lastUserText,
    jsonMode: false,
    defaultTokens: ex.core.settings.defaultTokens,
    overhead: 4 * Math.max(1, conv.turns) + 1,
  });
  const text = isObject(body['text']) && isObject(body['text']['format']) ? (body['text']['format'] as Body) : null;
  const echo: ResponsesEcho = {
    instructions,
    truncation: typeof body['truncation'] === 'string' ? body['truncation'] : null,
    tools: requestTools,
    textFormat: text,
    effort,
    summary: typeof reasoning['summary'] === 'string' ? reasoning['summary'] : '',
    temperature: typeof body['temperature'] === 'number' ? body['temperature'] : null,
    topP: typeof body['top_p'] === 'number' ? body['top_p'] : null,
    maxOutputTokens: maxOutput,
    background: body['background'] === true,
  };
  const format = responsesFormat(model, echo, ex.core.requestRng());
  await serveGeneration(ex, { entry, spec: loadSpec(options, DEFAULT_KEEP_ALIVE_MS), reply, format, stream, surface: 'openai' });
}
