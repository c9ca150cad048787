// Edge validation of generation bodies shared by the sync and async surfaces:
// wrong types get a 400 naming the field; everything else passes through untouched.

import { badRequest } from '../errors.js';
import { checkOptionTypes } from './options-check.js';

export type GenerationKind =
  | 'chat' | 'generate' | 'openai-chat' | 'openai-completion'
  // The agent surfaces (SPEC §7): Ollama runs each through its chat handler.
  | 'anthropic-messages' | 'openai-responses' | 'openai-transcription';

export interface GenerationRequest {
  model: string;
  options: Record<string, unknown> | undefined;
  stream: boolean;
  /** an empty-messages chat or empty-prompt generate: Ollama's preload or unload */
  isLoadOnly: boolean;
  /** keep_alive is zero: with isLoadOnly, an unload */
  keepAliveZero: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function expect(ok: boolean, message: string): void {
  if (!ok) throw badRequest(message);
}

export function isKeepAliveZero(v: unknown): boolean {
  return v === 0 || (typeof v === 'string' && /^0+(\.0*)?(ns|us|µs|ms|s|m|h)?$/.test(v.trim()));
}

export function validateGeneration(body: Record<string, unknown>, kind: GenerationKind): GenerationRequest {
  expect(typeof body.model === 'string' || body.model === undefined, 'model: expected a string');
  const model = typeof body.model === 'string' ? body.model.trim() : '';
  expect(model.length > 0, 'model is required');
  expect(model.length <= 512, 'model: name too long');
  expect(body.stream === undefined || typeof body.stream === 'boolean', 'stream: expected true or false');
  // Ollama's Anthropic and Responses decoders have no options, keep_alive or format
  // field and ignore them, so foreman must not refuse a body for them either.
  const agent = kind === 'anthropic-messages' || kind === 'openai-responses' || kind === 'openai-transcription';
  if (!agent) {
    expect(body.options === undefined || body.options === null || isObject(body.options), 'options: expected an object');
    if (isObject(body.options)) checkOptionTypes(body.options);
    expect(body.keep_alive === undefined || typeof body.keep_alive === 'number' || typeof body.keep_alive === 'string', 'keep_alive: expected a number or a duration string');
    expect(body.format === undefined || body.format === null || typeof body.format === 'string' || isObject(body.format), 'format: expected "json" or a JSON schema object');
  }
  expect(body.tools === undefined || body.tools === null || Array.isArray(body.tools), 'tools: expected an array');
  let isLoadOnly = false;
  if (kind === 'chat' || kind === 'openai-chat' || kind === 'anthropic-messages') {
    const messages = body.messages;
    expect(messages === undefined || messages === null || Array.isArray(messages), 'messages: expected an array');
    if (Array.isArray(messages)) expect(messages.every(isObject), 'messages: every message must be an object');
    isLoadOnly = kind === 'chat' && (!Array.isArray(messages) || messages.length === 0);
  } else if (kind === 'generate' || kind === 'openai-completion') {
    const prompt = body.prompt;
    const promptOk = prompt === undefined || prompt === null || typeof prompt === 'string' || (kind === 'openai-completion' && Array.isArray(prompt));
    expect(promptOk, 'prompt: expected a string');
    expect(body.images === undefined || body.images === null || Array.isArray(body.images), 'images: expected an array');
    isLoadOnly = kind === 'generate' && (prompt === undefined || prompt === null || prompt === '');
  }
  const streamDefault = kind === 'chat' || kind === 'generate'; // /v1 defaults to false, as in Ollama
  return {
    model,
    options: !agent && isObject(body.options) ? body.options : undefined,
    stream: typeof body.stream === 'boolean' ? body.stream : streamDefault,
    isLoadOnly,
    keepAliveZero: !agent && isKeepAliveZero(body.keep_alive),
  };
}
