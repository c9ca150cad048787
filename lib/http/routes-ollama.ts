// The native Ollama surface (SPEC §2, §3): generations go through the queue,
// embeddings take the bypass with their own limit, everything else under /api
// is proxied at once. `GET /` answers like Ollama, without a token.

import type { Route } from './server.js';
import type { Upstream } from '../upstream.js';
import type { Scheduler } from '../sched/scheduler.js';
import type { Limiter } from '../sched/limiter.js';
import { validateGeneration, type GenerationKind } from './requests.js';
import { normalizeModel } from '../sched/model-group.js';
import { parseJsonObject, readBody } from './body.js';
import { abortOnClientClose, passthrough } from './passthrough.js';
import { checkModel, serveSyncJob, type SyncJobDeps } from './sync-job.js';
import { ANONYMOUS } from '../keys/keys-file.js';

export interface OllamaRouteDeps extends SyncJobDeps {
  upstream: Upstream;
  scheduler: Scheduler;
  embeddings: Limiter;
  maxBody: number;
}

const ROOT_TEXT = 'Ollama is running';

/** An embedding endpoint: not queued, limited to embed_parallel in flight (SPEC §3). */
export function embeddingRoute(path: string, deps: OllamaRouteDeps): Route {
  return {
    method: 'POST',
    path,
    handler: async (ctx) => {
      const raw = await readBody(ctx.req, deps.maxBody);
      const body = parseJsonObject(raw); // bad JSON is foreman's 400, not a wasted upstream round trip
      if (typeof body.model === 'string') checkModel(ctx.key ?? ANONYMOUS, body.model);
      const controller = abortOnClientClose(ctx);
      await deps.embeddings.run(
        () => passthrough(ctx, { upstream: deps.upstream, maxBody: deps.maxBody, body: raw, signal: controller.signal }),
        controller.signal,
      );
    },
  };
}

export function ollamaRoutes(deps: OllamaRouteDeps): Route[] {
  const generation = (kind: GenerationKind, upstreamPath: string): Route => ({
    method: 'POST',
    path: upstreamPath,
    handler: async (ctx) => {
      const raw = await readBody(ctx.req, deps.maxBody);
      const request = validateGeneration(parseJsonObject(raw), kind);
      if (request.isLoadOnly && request.keepAliveZero) {
        checkModel(ctx.key ?? ANONYMOUS, request.model);
        // An unload answers at once in Ollama and must not wait behind the queue.
        ctx.logFields.model = normalizeModel(request.model);
        await passthrough(ctx, { upstream: deps.upstream, maxBody: deps.maxBody, body: raw });
        deps.scheduler.markUnloaded(normalizeModel(request.model));
        return;
      }
      await serveSyncJob(ctx, deps, { upstreamPath, raw, request, kind });
    },
  });

  const proxied = (method: string | string[], path: string): Route => ({
    method,
    path,
    handler: (ctx) => passthrough(ctx, { upstream: deps.upstream, maxBody: deps.maxBody }),
  });

  return [
    {
      method: ['GET', 'HEAD'],
      path: '/',
      auth: false,
      handler: ({ req, res }) => {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': ROOT_TEXT.length });
        res.end(req.method === 'HEAD' ? undefined : ROOT_TEXT);
      },
    },
    generation('chat', '/api/chat'),
    generation('generate', '/api/generate'),
    embeddingRoute('/api/embed', deps),
    embeddingRoute('/api/embeddings', deps),
    proxied(['GET', 'HEAD'], '/api/tags'),
    proxied('GET', '/api/ps'),
    proxied(['GET', 'HEAD'], '/api/version'),
    proxied('POST', '/api/show'),
    // pull, push, create, copy, delete, blobs …: proxied at once, streamed as they come.
    proxied(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'], '/api/*'),
  ];
}
