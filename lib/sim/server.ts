// The simulator's node:http server: route table with gin's 404/405 texts,
// body decoding, error rendering per surface, the /sim/* control routes, and
// a close() that ends every socket and timer.

import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { decodeBody, readBody } from './body.js';
import type { Core } from './core.js';
import { parseDirective } from './directive.js';
import { Exchange } from './exchange.js';
import type { Surface } from './exchange.js';
import { handleEmbed, handleEmbeddings, handleOpenAiEmbeddings } from './routes-embed.js';
import * as models from './routes-models.js';
import { handleChat, handleGenerate } from './routes-native.js';
import { handleChatCompletions, handleCompletions } from './routes-openai.js';
import { handleMessages } from './routes-anthropic.js';
import { handleResponses } from './routes-responses.js';
import { handleTranscription } from './routes-audio.js';
import { SimError, goJson } from './wire.js';
import { answeredByBrowserRules, createSimBrowserRules } from './cors.js';
import { handleBlobHead, handleBlobPost, handleCreate, handlePush } from './routes-blobs.js';

type Body = Record<string, unknown>;

interface Route {
  handler: (ex: Exchange, body: Body) => Promise<void> | void;
  surface: Surface;
  /** Go type named in decode errors; routes without one take no body. */
  struct?: string;
  /** The handler reads the body itself (multipart, blob uploads). */
  ownBody?: boolean;
}

const ollama = (handler: Route['handler'], struct?: string): Route =>
  struct === undefined ? { handler, surface: 'ollama' } : { handler, surface: 'ollama', struct };
const openai = (handler: Route['handler'], struct?: string): Route =>
  struct === undefined ? { handler, surface: 'openai' } : { handler, surface: 'openai', struct };

function routeTable(core: Core): Map<string, Record<string, Route>> {
  const stats = ollama((ex) => ex.sendJson(200, goJson(core.snapshot())));
  const reset = ollama((ex) => {
    core.residency.unloadAll();
    core.stats.reset();
    core.cloud.reset();
    core.blobs.reset();
    ex.sendJson(200, goJson(core.snapshot()));
  });
  return new Map<string, Record<string, Route>>([
    ['/', { GET: ollama(models.handleRoot), HEAD: ollama(models.handleRoot) }],
    ['/api/version', { GET: ollama(models.handleVersion), HEAD: ollama(models.handleVersion) }],
    ['/api/tags', { GET: ollama(models.handleTags), HEAD: ollama(models.handleTags) }],
    ['/api/ps', { GET: ollama(models.handlePs) }],
    ['/api/show', { POST: ollama(models.handleShow, 'api.ShowRequest') }],
    ['/api/pull', { POST: ollama(models.handlePull, 'api.PullRequest') }],
    ['/api/delete', { DELETE: ollama(models.handleDelete, 'api.DeleteRequest') }],
    ['/api/copy', { POST: ollama(models.handleCopy, 'api.CopyRequest') }],
    ['/api/create', { POST: ollama(handleCreate, 'api.CreateRequest') }],
    ['/api/push', { POST: ollama(handlePush, 'api.PushRequest') }],
    ['/api/chat', { POST: ollama(handleChat, 'api.ChatRequest') }],
    ['/api/generate', { POST: ollama(handleGenerate, 'api.GenerateRequest') }],
    ['/api/embed', { POST: ollama(handleEmbed, 'api.EmbedRequest') }],
    ['/api/embeddings', { POST: ollama(handleEmbeddings, 'api.EmbeddingRequest') }],
    ['/v1/chat/completions', { POST: openai(handleChatCompletions, 'openai.ChatCompletionRequest') }],
    ['/v1/completions', { POST: openai(handleCompletions, 'openai.CompletionRequest') }],
    ['/v1/embeddings', { POST: openai(handleOpenAiEmbeddings, 'openai.EmbedRequest') }],
    ['/v1/models', { GET: openai(models.handleOpenAiModels) }],
    ['/v1/responses', { POST: openai(handleResponses, 'openai.ResponsesRequest') }],
    ['/v1/audio/transcriptions', { POST: { handler: (ex) => handleTranscription(ex), surface: 'openai', ownBody: true } }],
    ['/v1/messages', { POST: { handler: handleMessages, surface: 'anthropic', struct: 'anthropic.MessagesRequest' } }],
    ['/sim/stats', { GET: stats }],
    ['/sim/reset', { POST: reset }],
    // {"limit": N, "retry_after": S}: the next N cloud requests get 429 with Retry-After S.
    ['/sim/cloud', { POST: ollama((ex, body) => {
      core.cloud.limit(Number(body['limit'] ?? 0), Number(body['retry_after'] ?? 1));
      ex.sendJson(200, goJson(core.cloud.snapshot()));
    }, 'sim.CloudLimit') }],
  ]);
}

const MODEL_PREFIX = '/v1/models/';
const BLOB_PREFIX = '/api/blobs/';

export interface SimServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

export async function startServer(core: Core): Promise<SimServer> {
  const routes = routeTable(core);
  const browserRules = createSimBrowserRules(core.origins, core.settings.host);
  const sockets = new Set<Socket>();
  // Go's net/http has no request or header timeouts; neither does the simulator.
  const server = createServer({ requestTimeout: 0, headersTimeout: 0, keepAliveTimeout: 5000 }, (req, res) => {
    void dispatch(req, res).catch(() => res.destroy());
  });
  server.on('connection', (socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (answeredByBrowserRules(browserRules, req, res)) return;
    const ex = new Exchange(req, res, core);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let methods = routes.get(path);
    if (!methods && path.startsWith(BLOB_PREFIX) && path.length > BLOB_PREFIX.length) {
      methods = { HEAD: ollama(handleBlobHead), POST: { handler: handleBlobPost, surface: 'ollama', ownBody: true } };
    }
    if (!methods && path.startsWith(MODEL_PREFIX) && path.length > MODEL_PREFIX.length) {
      const id = decodeURIComponent(path.slice(MODEL_PREFIX.length));
      methods = { GET: openai((e) => models.handleOpenAiModel(e, id)) };
    }
    if (!methods && path.length > 1 && path.endsWith('/') && routes.has(path.slice(0, -1))) {
      // gin's RedirectTrailingSlash (on in Ollama): 301 for GET, 307 for other methods, query kept.
      req.resume();
      const location = path.slice(0, -1) + (q < 0 ? '' : url.slice(q));
      const status = req.method === 'GET' ? 301 : 307;
      res.writeHead(status, { location, 'content-type': 'text/html; charset=utf-8' });
      res.end(req.method === 'GET' ? `<a href="${location}">Moved Permanently</a>.\n\n` : undefined);
      return;
    }
    if (!methods) {
      req.resume();
      return ex.sendText(404, '404 page not found');
    }
    const route = methods[req.method ?? 'GET'];
    if (!route) {
      req.resume();
      return ex.sendText(405, '405 method not allowed');
    }
    try {
      let body: Body = {};
      if (route.ownBody) {
        // read by the handler
      } else if (route.struct === undefined) req.resume();
      else {
        body = decodeBody(await readBody(req), route.struct);
        ex.directive = parseDirective(body);
      }
      await route.handler(ex, body);
    } catch (err) {
      const e = err instanceof SimError ? err : new SimError(500, 'internal error');
      if (!res.headersSent) ex.sendError(e.status, e.message, route.surface);
      else res.destroy();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(core.settings.port, core.settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        core.residency.close();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
      }),
  };
}
