// Requests that are not queued: /api/tags, /api/ps, /api/show, /api/version,
// pull/create/delete, uploads (blobs, create, push: the body streams upstream too)
// and the embeddings bypass. Status, type and body pass through as upstream sent
// them, streamed with backpressure.

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { RequestContext } from './server.js';
import type { Upstream, UpstreamResponse } from '../upstream.js';
import { forwardableHeaders } from '../upstream.js';
import { relayBody } from './proxy.js';
import { readBody } from './body.js';

/** Response headers worth passing back (Retry-After: a cloud 429, SPEC §12); hop-by-hop ones are node's business. */
const RESPONSE_HEADERS = ['content-type', 'content-length', 'cache-control', 'etag', 'last-modified', 'retry-after', 'location'];

export function copyResponseHeaders(upstream: UpstreamResponse, extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of RESPONSE_HEADERS) {
    const v = upstream.headers.get(name);
    if (v !== null) out[name] = v;
  }
  return { ...out, ...extra };
}

export interface PassthroughOptions {
  upstream: Upstream;
  maxBody: number;
  /** The body, when the route already read it. */
  body?: Buffer;
  signal?: AbortSignal;
  /**
   * An upload (SPEC §14): the caller's body goes upstream as it arrives, with backpressure,
   * never read whole here, and max_body does not apply.
   */
  stream?: boolean;
}

/** How long a closing connection lingers so the caller reads the answer first (Go waits 500 ms too). */
const LINGER_MS = 500;

/**
 * The answer went out before the request body was read to its end (an upload upstream refused
 * or did not need). The answer says `Connection: close`; node would then close at once, and a
 * close with unread bytes is a reset that can destroy the answer at the caller. So: FIN, drop
 * what still arrives for a moment, then close, as Go's net/http does.
 */
export function lingerBeforeClose(req: IncomingMessage): void {
  const socket = req.socket as Socket & { destroySoon?: () => void };
  socket.destroySoon = () => {
    req.unpipe();
    req.resume();
    socket.end();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
}

/** An AbortController that fires when the client goes away before the answer is complete. */
export function abortOnClientClose(ctx: RequestContext): AbortController {
  const controller = new AbortController();
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) controller.abort(new Error('client closed the connection'));
  });
  return controller;
}

export async function passthrough(ctx: RequestContext, options: PassthroughOptions): Promise<void> {
  const { req, res, url } = ctx;
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const streamed = hasBody && options.stream === true && options.body === undefined;
  const body = options.body ?? (hasBody && !streamed ? await readBody(req, options.maxBody) : undefined);
  const controller = options.signal ? null : abortOnClientClose(ctx);
  const signal = options.signal ?? controller!.signal;
  const declared = Number(req.headers['content-length']);
  const upstreamRes = await options.upstream.send(url.pathname + url.search, {
    method,
    body: streamed ? req : hasBody ? body : undefined,
    bodyLength: streamed && req.headers['content-length'] !== undefined && Number.isSafeInteger(declared) ? declared : undefined,
    signal,
    headers: forwardableHeaders(req.headers),
  });
  // Upstream answered before the whole upload arrived (a blob it already has, a refusal): the
  // connection ends with this answer, as Ollama's does, rather than read gigabytes for nothing.
  const closing: Record<string, string> = streamed && !req.complete ? { connection: 'close' } : {};
  if (streamed && !req.complete) lingerBeforeClose(req);
  res.writeHead(upstreamRes.status, copyResponseHeaders(upstreamRes, closing));
  if (method === 'HEAD') {
    upstreamRes.discard();
    res.end();
    return;
  }
  const relay = await relayBody(upstreamRes, res, { framing: 'raw', signal });
  // A body cut short upstream is cut short here too, rather than ended as if complete.
  if (relay.outcome === 'upstream_error') res.destroy();
  else res.end();
}
