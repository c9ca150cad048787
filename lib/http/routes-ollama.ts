// The native Ollama surface (SPEC §2, §3): generations go through the queue,
// embeddings take the bypass with their own limit, everything else under /api
// is proxied at once. `GET /` answers like Ollama, without a token.

import type { Route } from './server.js';
import type { Upstream } from '../upstream.js';
import type { Scheduler } from '../sched/scheduler.js';
import type { HostPool } from '../hosts/pool.js';
import type { Host } from '../hosts/host.js';
import { forbidden, isHttpError } from '../errors.js';
import { validateGeneration, type GenerationKind } from './generation-request.js';
import { normalizeModel } from '../sched/model-group.js';
import { parseJsonObject, readBody } from './body.js';
import { abortOnClientClose, passthrough } from './passthrough.js';
import { checkModel, serveSyncJob, type SyncJobDeps } from './sync-job.js';
import { ANONYMOUS } from '../keys/keys-file.js';
import { namedHost, serveListing } from './hosts-routing.js';
import { applyAlias } from './aliases.js';

export interface OllamaRouteDeps extends SyncJobDeps {
  upstream: Upstream;
  scheduler: Scheduler;
  hosts: HostPool;
  maxBody: number;
}

const ROOT_TEXT = 'Ollama is running';

/**
 * An embedding endpoint: not queued, limited to the host's embed_parallel in flight (SPEC §3).
 * With several hosts it goes where the embedding model is loaded, else installed (SPEC §17);
 * a host that cannot be reached is marked down and the next one is tried.
 */
export function embeddingRoute(path: string, deps: OllamaRouteDeps): Route {
  return {
    method: 'POST',
    path,
    handler: async (ctx) => {
      const raw = await readBody(ctx.req, deps.maxBody);
      const body = parseJsonObject(raw); // bad JSON is foreman's 400, not a wasted upstream round trip
      const model = typeof body.model === 'string' ? body.model : '';
      if (model) checkModel(ctx.key ?? ANONYMOUS, model, deps.aliasOf);
      const controller = abortOnClientClose(ctx);
      const tried = new Set<Host>();
      for (;;) {
        const host = deps.hosts.embeddingHost(model);
        tried.add(host);
        try {
          await host.embeddings.run(
            () => passthrough(ctx, { upstream: host.upstream, maxBody: deps.maxBody, body: raw, signal: controller.signal }),
            controller.signal,
          );
          if (ctx.res.statusCode < 300 && model) host.embedLoaded = normalizeModel(model);
          return;
        } catch (err) {
          const unreachable = isHttpError(err) && err.code === 'upstream_unreachable' && !ctx.res.headersSent;
          if (!unreachable || !deps.hosts.multi) throw err;
          deps.hosts.markDown(host, err.message);
          if (deps.hosts.hosts.every((h) => tried.has(h) || h.state === 'down')) throw err;
        }
      }
    },
  };
}

/** A host that has the model loaded or installed, for /api/show and an unload. */
function hostForModel(deps: OllamaRouteDeps, model: string): Host {
  if (!deps.hosts.multi) return deps.hosts.first;
  const loadedOn = deps.scheduler.hostsWithModel?.(normalizeModel(model)) ?? [];
  const named = loadedOn.map((n) => deps.hosts.find(n)).find((h): h is Host => h !== undefined && h.state === 'up');
  return named ?? deps.hosts.candidates(model)[0] ?? deps.hosts.first;
}

export function ollamaRoutes(deps: OllamaRouteDeps): Route[] {
  const generation = (kind: GenerationKind, upstreamPath: string): Route => ({
    method: 'POST',
    path: upstreamPath,
    handler: async (ctx) => {
      const plain = await readBody(ctx.req, deps.maxBody);
      const body = parseJsonObject(plain);
      const { raw, request } = applyAlias(deps.aliasOf, body, plain, validateGeneration(body, kind), ctx.logFields);
      if (request.isLoadOnly && request.keepAliveZero) {
        checkModel(ctx.key ?? ANONYMOUS, request.model);
        // An unload answers at once in Ollama and must not wait behind the queue.
        ctx.logFields.model = request.model;
        const host = ctx.req.headers['x-foreman-host'] ? namedHost(ctx, deps.hosts) : hostForModel(deps, request.model);
        await passthrough(ctx, { upstream: host.upstream, maxBody: deps.maxBody, body: raw });
        deps.scheduler.markUnloaded(request.model, host.name);
        return;
      }
      await serveSyncJob(ctx, deps, { upstreamPath, raw, request, kind });
    },
  });

  // Model management (pull, create, delete, copy, push, blobs) goes to the host X-Foreman-Host names.
  // Uploads (blobs, create, push) stream their body upstream as it arrives, with no max_body (SPEC §14).
  const managed = (method: string | string[], path: string, upload = false): Route => ({
    method,
    path,
    handler: async (ctx) => {
      // On a shared box one key must not delete or replace the models the others use (SPEC §15:
      // only admins hold every power); reading (GET, HEAD) stays open to every key.
      if (ctx.req.method !== 'GET' && ctx.req.method !== 'HEAD' && !(ctx.key ?? ANONYMOUS).admin) {
        throw forbidden(`model management (${ctx.url.pathname}) is for admin keys`);
      }
      const host = namedHost(ctx, deps.hosts);
      ctx.logFields.host = deps.hosts.multi ? host.name : undefined;
      await passthrough(ctx, { upstream: host.upstream, maxBody: deps.maxBody, stream: upload });
      // What the host has installed may have changed.
      if (ctx.req.method !== 'GET' && ctx.req.method !== 'HEAD') deps.hosts.modelMissing(host);
    },
  });
  const show: Route = {
    method: 'POST',
    path: '/api/show',
    handler: async (ctx) => {
      if (!deps.hosts.multi) return passthrough(ctx, { upstream: deps.hosts.first.upstream, maxBody: deps.maxBody });
      const raw = await readBody(ctx.req, deps.maxBody);
      let model = '';
      try {
        const body = parseJsonObject(raw);
        model = typeof body.model === 'string' ? body.model : typeof body.name === 'string' ? body.name : '';
      } catch {}
      const host = ctx.req.headers['x-foreman-host'] ? namedHost(ctx, deps.hosts) : hostForModel(deps, model);
      await passthrough(ctx, { upstream: host.upstream, maxBody: deps.maxBody, body: raw });
    },
  };

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
    { method: ['GET', 'HEAD'], path: '/api/tags', handler: (ctx) => serveListing(ctx, deps.hosts, 'tags', deps.maxBody) },
    { method: 'GET', path: '/api/ps', handler: (ctx) => serveListing(ctx, deps.hosts, 'ps', deps.maxBody) },
    { method: ['GET', 'HEAD'], path: '/api/version', handler: (ctx) => serveListing(ctx, deps.hosts, 'version', deps.maxBody) },
    show,
    managed(['HEAD', 'POST'], '/api/blobs/:digest', true),
    managed('POST', '/api/create', true),
    managed('POST', '/api/push', true),
    // pull, copy, delete, HEAD of a blob …: proxied at once, streamed as they come.
    managed(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'], '/api/*'),
  ];
}
