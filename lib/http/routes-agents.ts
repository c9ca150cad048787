// The coding-agent surfaces (SPEC §7, ADR 0018): Anthropic's /v1/messages
// (Claude Code), OpenAI's /v1/responses (Codex) and /v1/audio/transcriptions.
// Each is a queued job grouped by its model and proxied to upstream's own route,
// its events relayed untouched; only count_tokens is answered here, at once.

import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate } from 'node:zlib';
import { badRequest, HttpError } from '../errors.js';
import { estimateInputTokens } from '../token-estimate.js';
import type { Route, RequestContext } from './server.js';
import { validateGeneration, type GenerationKind, type GenerationRequest } from './generation-request.js';
import { parseJsonObject, readBody, sendJson } from './body.js';
import { serveSyncJob } from './sync-job.js';
import { applyAlias } from './aliases.js';
import { multipartField, replaceMultipartField } from './multipart.js';
import type { OllamaRouteDeps } from './routes-ollama.js';

const DECODERS: Record<string, (b: Buffer) => Promise<Buffer>> = {
  gzip: promisify(gunzip),
  deflate: promisify(inflate),
  br: promisify(brotliDecompress),
};

/**
 * The body as JSON bytes. foreman must read the model to queue the job, and it
 * never forwards Content-Encoding, so a compressed body is decoded here
 * (bounded by max_body) and sent upstream plain.
 */
async function readPlainBody(ctx: RequestContext, maxBody: number): Promise<Buffer> {
  const raw = await readBody(ctx.req, maxBody);
  const encoding = String(ctx.req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') return raw;
  const decode = DECODERS[encoding];
  if (!decode) throw new HttpError(415, 'unsupported_encoding', `Content-Encoding ${encoding} is not supported; send the body plain, gzip, deflate or br`);
  let plain: Buffer;
  try {
    plain = await decode(raw);
  } catch {
    throw badRequest(`failed to decompress ${encoding} body`);
  }
  if (plain.length > maxBody) throw new HttpError(413, 'payload_too_large', `request body exceeds max_body (${maxBody} bytes)`);
  return plain;
}

export function agentRoutes(deps: OllamaRouteDeps): Route[] {
  /** A JSON surface run by Ollama's chat handler: grouped by model alone (its conversion sets no load option). */
  const jsonGeneration = (kind: GenerationKind, path: string): Route => ({
    method: 'POST',
    path,
    handler: async (ctx) => {
      const plain = await readPlainBody(ctx, deps.maxBody);
      const body = parseJsonObject(plain);
      const { raw, request } = applyAlias(deps.aliasOf, body, plain, validateGeneration(body, kind), ctx.logFields);
      await serveSyncJob(ctx, deps, {
        upstreamPath: ctx.url.pathname + ctx.url.search, raw, request: { ...request, options: undefined }, kind,
      });
    },
  });

  const transcription: Route = {
    method: 'POST',
    path: '/v1/audio/transcriptions',
    handler: async (ctx) => {
      const contentType = ctx.req.headers['content-type'];
      let raw = await readBody(ctx.req, deps.maxBody);
      const model = multipartField(raw, contentType, 'model')?.trim() ?? '';
      if (!model) throw badRequest('model is required');
      let request: GenerationRequest = { model, options: undefined, stream: false, isLoadOnly: false, keepAliveZero: false };
      const target = deps.aliasOf?.(model) ?? null;
      if (target !== null) {
        ctx.logFields.alias = model;
        raw = replaceMultipartField(raw, contentType, 'model', target);
        request = { ...request, model: target };
      }
      await serveSyncJob(ctx, deps, { upstreamPath: ctx.url.pathname + ctx.url.search, raw, request, kind: 'openai-transcription' });
    },
  };

  // Ollama has no count_tokens (404); Claude Code asks for it, so foreman answers
  // with the estimate Ollama's own message_start would carry.
  const countTokens: Route = {
    method: 'POST',
    path: '/v1/messages/count_tokens',
    handler: async (ctx) => {
      const body = parseJsonObject(await readPlainBody(ctx, deps.maxBody));
      if (body.messages !== undefined && !Array.isArray(body.messages)) throw badRequest('messages: expected an array');
      sendJson(ctx.res, 200, { input_tokens: estimateInputTokens(body) }, { 'content-type': 'application/json' });
    },
  };

  return [
    countTokens,
    jsonGeneration('anthropic-messages', '/v1/messages'),
    jsonGeneration('openai-responses', '/v1/responses'),
    transcription,
  ];
}
