// Ollama's browser rules as the simulator applies them (ollama-wire.md §8, SPEC §13):
// gin-contrib/cors with Ollama's origins, then allowedHostsMiddleware while bound to
// loopback. Refusals are 403 with an empty body; the allowed request headers are
// Ollama's own (no x-api-key or anthropic-version, unlike foreman's).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createBrowserPolicy, type BrowserPolicy } from '../browser-policy.js';

const OLLAMA_HEADERS = [
  'Authorization', 'Content-Type', 'User-Agent', 'Accept', 'X-Requested-With', 'OpenAI-Beta',
  'x-stainless-arch', 'x-stainless-async', 'x-stainless-custom-poll-interval', 'x-stainless-helper-method',
  'x-stainless-lang', 'x-stainless-os', 'x-stainless-package-version', 'x-stainless-poll-helper',
  'x-stainless-retry-count', 'x-stainless-runtime', 'x-stainless-runtime-version', 'x-stainless-timeout',
].join(',');

export function createSimBrowserRules(origins: readonly string[], listenHost: string): BrowserPolicy {
  return createBrowserPolicy({ origins, listenHost });
}

/** True when the request was answered here (403, or a preflight's 204). */
export function answeredByBrowserRules(rules: BrowserPolicy, req: IncomingMessage, res: ServerResponse): boolean {
  const headers = { ...req.headers };
  // gin-contrib/cors takes any OPTIONS with an Origin for a preflight.
  if (req.method === 'OPTIONS' && headers.origin !== undefined) headers['access-control-request-method'] ??= 'GET';
  const verdict = rules.check(req.method ?? 'GET', headers);
  if (verdict.kind === 'pass') {
    if (verdict.headers['access-control-allow-origin']) {
      res.setHeader('Access-Control-Allow-Origin', verdict.headers['access-control-allow-origin']);
      res.setHeader('Vary', 'Origin');
    }
    return false;
  }
  req.resume();
  if (verdict.kind === 'forbidden') {
    res.writeHead(403, { 'Content-Length': 0 });
    res.end();
    return true;
  }
  res.writeHead(204, {
    'Access-Control-Allow-Origin': verdict.headers['access-control-allow-origin']!,
    'Access-Control-Allow-Methods': 'GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS',
    'Access-Control-Allow-Headers': OLLAMA_HEADERS,
    'Access-Control-Max-Age': '43200',
    Vary: 'Origin',
  });
  res.end();
  return true;
}
