// The OpenAI-compatible surface (SPEC §7, ADR 0009): /v1 generations are queued
// jobs like native ones and go to upstream's own /v1, whose SSE passes through
// event by event. No format translation lives here; errors take the /v1 shape
// in server.ts (surfaceOf), mid-stream ones in sync-job.ts (errorUnit).

import type { Route } from './server.js';
import type { GenerationKind } from './generation-request.js';
import { validateGeneration } from './generation-request.js';
import { parseJsonObject, readBody } from './body.js';
import { passthrough } from './passthrough.js';
import { serveSyncJob } from './sync-job.js';
import { applyAlias } from './aliases.js';
import { embeddingRoute, type OllamaRouteDeps } from './routes-ollama.js';
import { serveListing } from './hosts-routing.js';

export function openaiRoutes(deps: OllamaRouteDeps): Route[] {
  const generation = (kind: GenerationKind, path: string): Route => ({
    method: 'POST',
    path,
    handler: async (ctx) => {
      const plain = await readBody(ctx.req, deps.maxBody);
      const body = parseJsonObject(plain);
      const { raw, request } = applyAlias(deps.aliasOf, body, plain, validateGeneration(body, kind), ctx.logFields);
      // Ollama's /v1 request types have no `options` field, so an `options` sent
      // here never reaches the runner and must not split the model's group:
      // /v1 and a plain native request for the same model drain together.
      await serveSyncJob(ctx, deps, { upstreamPath: path, raw, request: { ...request, options: undefined }, kind });
    },
  });

  const proxied = (path: string): Route => ({
    method: 'GET',
    path,
    handler: (ctx) => passthrough(ctx, { upstream: deps.hosts.candidates(ctx.params.id ?? '')[0]?.upstream ?? deps.hosts.first.upstream, maxBody: deps.maxBody }),
  });

  return [
    generation('openai-chat', '/v1/chat/completions'),
    generation('openai-completion', '/v1/completions'),
    // Embeddings bypass the queue with their own limit (SPEC §3), as on /api/embed.
    embeddingRoute('/v1/embeddings', deps),
    { method: 'GET', path: '/v1/models', handler: (ctx) => serveListing(ctx, deps.hosts, 'v1models', deps.maxBody) },
    proxied('/v1/models/:id'),
  ];
}
