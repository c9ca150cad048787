// http/ owns the wire: routes per surface, request validation, relaying upstream answers,
// HTTP statuses and error bodies. The only folder that serves clients over node:http.
//
// node:http server: the route table, auth by key (Bearer or x-api-key), error rendering per surface,
// one log line per request. Routes own parsing and answers; this file owns the edges.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { badRequest, forbidden, methodNotAllowed, notFound, toHttpError, unauthorized, type HttpError } from '../errors.js';
import type { Logger } from '../log.js';
import { sendError, type Surface } from './body.js';
import type { BrowserPolicy } from '../browser-policy.js';
import { normalizeTarget } from './path.js';
import type { Key } from '../keys/keys-file.js';

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly params: Readonly<Record<string, string>>;
  readonly surface: Surface;
  /** The key the caller presented (SPEC §15); null only on routes without auth when none was sent. */
  readonly key: Key | null;
  /** Extra fields for the request's log line (model, job, queue_ms …); never prompts or tokens. */
  readonly logFields: Record<string, string | number | undefined>;
}

export type Handler = (ctx: RequestContext) => Promise<void> | void;

export interface Route {
  readonly method: string | readonly string[];
  /** `/jobs/:id` style; a trailing `*` matches any rest of the path. */
  readonly path: string;
  readonly handler: Handler;
  /** Default true: a Bearer token is required when tokens are configured. */
  readonly auth?: boolean;
}

interface CompiledRoute {
  readonly methods: readonly string[];
  readonly pattern: RegExp;
  readonly names: readonly string[];
  readonly handler: Handler;
  readonly auth: boolean;
  readonly wildcard: boolean;
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .split('/')
    .map((part) => {
      if (part === '*') return '.*';
      if (part.startsWith(':')) {
        names.push(part.slice(1));
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  const methods = typeof route.method === 'string' ? [route.method] : [...route.method];
  return {
    methods, pattern: new RegExp(`^${source}$`), names, handler: route.handler,
    auth: route.auth ?? true, wildcard: route.path.endsWith('*'),
  };
}

export interface ServerOptions {
  routes: readonly Route[];
  /** The key a request's headers present, or null (KeyRegistry.authenticate). */
  authenticate(headers: IncomingMessage['headers']): Key | null;
  /** An authenticated request arrived (usage per key and surface). */
  onRequest?(key: Key, path: string): void;
  log: Logger;
  /** CORS and the Host rule (SPEC §13); absent, no browser checks (unit tests of routing). */
  browser?: BrowserPolicy;
  /** Client connections at once (SPEC §16); a new one beyond it is closed at once, the others carry on. */
  maxConnections?: number;
}

/** The request line's status when the caller hung up before its answer (nginx's "client closed request"). */
const CLIENT_LEFT = 499;


/** Whose error shape a path answers in: Anthropic's under /v1/messages, OpenAI's elsewhere under /v1. */
export function surfaceOf(pathname: string): Surface {
  if (pathname === '/v1/messages' || pathname.startsWith('/v1/messages/')) return 'anthropic';
  return pathname.startsWith('/v1/') ? 'openai' : 'ollama';
}

export function createHttpServer(options: ServerOptions): Server {
  const routes = options.routes.map(compile);
  const log = options.log;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    // Route on the decoded, normalised path, and hand that same path upstream (SPEC §8).
    const target = normalizeTarget(req.url ?? '/');
    const url = new URL(target ? target.pathname + target.search : '/', 'http://foreman.invalid');
    const surface = surfaceOf(url.pathname);
    const logFields: Record<string, string | number | undefined> = {};
    res.once('close', () => {
      // Closed before any answer went out: the caller left (a 499 in the log, never a 500).
      const left = !res.writableFinished && !res.headersSent;
      log.info('request', {
        method: req.method, path: url.pathname, status: left ? CLIENT_LEFT : res.statusCode,
        ms: Math.round(performance.now() - started), ...logFields,
        ...(left ? { client: 'left' } : res.writableFinished ? {} : { aborted: true }),
      });
    });
    try {
      // Browsers first, as Ollama's middleware order has it: a foreign Origin or Host is refused
      // on every route, and a preflight is answered before auth (SPEC §13).
      const verdict = options.browser?.check(req.method ?? 'GET', req.headers);
      if (verdict?.kind === 'forbidden') {
        logFields.refused = verdict.reason;
        throw forbidden(verdict.reason === 'origin' ? 'origin not allowed' : 'host not allowed');
      }
      if (verdict?.kind === 'preflight') {
        res.writeHead(204, verdict.headers);
        res.end();
        return;
      }
      if (verdict) for (const [name, value] of Object.entries(verdict.headers)) res.setHeader(name, value);
      if (!target) throw badRequest('invalid URL escape in the request path');
      // A path with its own route answers 405 for other methods, even if a wildcard route would take them.
      let exactPathMatched = false;
      let pathMatched = false;
      let route: CompiledRoute | null = null;
      let match: RegExpExecArray | null = null;
      for (const r of routes) {
        const m = r.pattern.exec(url.pathname);
        if (!m) continue;
        pathMatched = true;
        if (r.methods.includes(req.method ?? 'GET') && !(r.wildcard && exactPathMatched)) {
          route = r;
          match = m;
          break;
        }
        if (!r.wildcard) exactPathMatched = true;
      }
      const key = options.authenticate(req.headers);
      if (!route || !match) {
        // Without a good token, an unknown path is 401: what exists is no stranger's business (SPEC §8).
        if (key === null) throw unauthorized();
        if (pathMatched) {
          const allowed = routes.filter((r) => !r.wildcard && r.pattern.test(url.pathname)).flatMap((r) => r.methods);
          throw methodNotAllowed([...new Set(allowed)]);
        }
        throw notFound(`404 page not found`);
      }
      if (route.auth) {
        if (key === null) throw unauthorized();
        logFields.key = key.name;
        options.onRequest?.(key, url.pathname);
      }
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => (params[name] = safeDecode(match![i + 1]!)));
      await route.handler({ req, res, url, params, surface, key, logFields });
    } catch (err) {
      // The caller hung up: whatever failed after that failed because of it. Not a 500, not a stack (SPEC §8).
      if (req.socket.destroyed || res.destroyed) {
        res.destroy();
        return;
      }
      const httpErr: HttpError = toHttpError(err);
      if (httpErr.status === 500) log.error('internal error', { path: url.pathname, error: (err as Error)?.stack ?? String(err) });
      sendError(res, httpErr, surface);
      // A refused body (413, 408) may still be arriving: close rather than read megabytes for nothing.
      if (httpErr.status === 413 || httpErr.status === 408) res.once('finish', () => req.destroy());
    }
  };

  // No server-wide requestTimeout: it would cut uploads that stream for longer (SPEC §14);
  // bodies read whole have their own deadline (body.ts), headers have 60 s.
  const server = createServer({ noDelay: true, keepAliveTimeout: 5_000, headersTimeout: 60_000, requestTimeout: 0 }, (req, res) => {
    void handle(req, res);
  });
  if (options.maxConnections !== undefined) {
    server.maxConnections = options.maxConnections;
    // Node closes the refused socket itself; say so in the log, but not once per socket in a flood.
    let dropped = 0;
    server.on('drop', () => {
      if (dropped++ % 1000 === 0) log.warn('connection refused', { max_connections: options.maxConnections, refused: dropped });
    });
  }
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"error":"bad request"}');
    else socket.destroy(err);
  });
  return server;
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
