// Requests that are not queued: /api/tags, /api/ps, /api/show, /api/version,
// pull/create/delete and the embeddings bypass. Status, type and body pass
// through as upstream sent them, streamed with backpressure.

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
  const body = options.body ?? (hasBody ? await readBody(req, options.maxBody) : undefined);
  const controller = options.signal ? null : abortOnClientClose(ctx);
  const signal = options.signal ?? controller!.signal;
  const upstreamRes = await options.upstream.send(url.pathname + url.search, {
    method,
    body: hasBody ? body : undefined,
    signal,
    headers: forwardableHeaders(req.headers),
  });
  res.writeHead(upstreamRes.status, copyResponseHeaders(upstreamRes));
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
