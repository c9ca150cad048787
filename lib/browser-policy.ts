// What a browser may do (SPEC §13), as Ollama decides it: CORS for the origins Ollama
// allows plus `origins`, a preflight answered before auth, 403 for a foreign Origin on
// every route, and, while listening on loopback, 403 for a foreign Host (DNS rebinding).
// Pure: it reads request headers and says pass, preflight or refuse; server.ts acts.

import { hostname as osHostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';

/** Ollama's envconfig.AllowedOrigins defaults; `*` matches any run of characters. */
export const DEFAULT_ORIGINS: readonly string[] = [
  ...['localhost', '127.0.0.1', '0.0.0.0'].flatMap((h) => [`http://${h}`, `https://${h}`, `http://${h}:*`, `https://${h}:*`]),
  'app://*', 'file://*', 'tauri://*', 'vscode-webview://*', 'vscode-file://*',
];

/**
 * Request headers a page may send: Ollama's list, what Anthropic's SDKs send (Ollama's
 * own preflight refuses those), and foreman's own. Any `x-stainless-*` is allowed too.
 */
const ALLOWED_HEADERS = [
  'Authorization', 'Content-Type', 'User-Agent', 'Accept', 'X-Requested-With', 'OpenAI-Beta',
  'x-api-key', 'anthropic-version', 'anthropic-beta', 'anthropic-dangerous-direct-browser-access',
  'X-Foreman-Priority', 'X-Foreman-Host', 'Idempotency-Key',
  'x-stainless-arch', 'x-stainless-async', 'x-stainless-custom-poll-interval', 'x-stainless-helper-method',
  'x-stainless-lang', 'x-stainless-os', 'x-stainless-package-version', 'x-stainless-poll-helper',
  'x-stainless-retry-count', 'x-stainless-runtime', 'x-stainless-runtime-version', 'x-stainless-timeout',
];
const ALLOWED_LOWER = new Set(ALLOWED_HEADERS.map((h) => h.toLowerCase()));
const ALLOWED_METHODS = 'GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS';
/** Headers a page's script may read from an answer. */
const EXPOSED_HEADERS = 'X-Foreman-Job-Id, X-Foreman-Queue-Ms, X-Foreman-Priority, Retry-After, Location';
/** gin-contrib/cors's default: browsers cache a preflight for 12 h. */
const MAX_AGE_S = '43200';

export type BrowserVerdict =
  | { kind: 'pass'; headers: Record<string, string> }
  | { kind: 'preflight'; headers: Record<string, string> }
  | { kind: 'forbidden'; reason: 'origin' | 'host' };

export interface BrowserPolicyOptions {
  /** extra allowed origins (config `origins`), `*` wildcards; `*` alone allows every origin */
  origins: readonly string[];
  /** the address foreman listens on: the Host rule applies only when it is loopback */
  listenHost: string;
  /** the machine's name, which Ollama also accepts as a Host (tests inject one) */
  hostname?: string;
  /** this machine's interface addresses (tests inject them) */
  localAddresses?: readonly string[];
}

type Headers = Record<string, string | string[] | undefined>;

export interface BrowserPolicy {
  check(method: string, headers: Headers): BrowserVerdict;
}

function globToRegExp(pattern: string): RegExp {
  const source = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${source}$`, 'i');
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
}

/** The host part of a Host header: `[::1]:8080` -> `::1`, `a.b:80` -> `a.b`. */
export function hostOfHeader(value: string): string {
  const v = value.trim();
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    return end === -1 ? v : v.slice(1, end);
  }
  const colon = v.lastIndexOf(':');
  return colon !== -1 && v.indexOf(':') === colon ? v.slice(0, colon) : v;
}

/** Go's netip IsLoopback, IsPrivate and IsUnspecified, for the addresses Ollama lets through. */
function isLocalIp(ip: string): boolean {
  const v = ip.toLowerCase();
  if (isIP(v) === 4) {
    const [a, b] = v.split('.').map(Number) as [number, number];
    return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || v === '0.0.0.0';
  }
  if (isIP(v) === 6) {
    if (v.startsWith('::ffff:')) return isLocalIp(v.slice(7));
    return v === '::1' || v === '::' || /^f[cd][0-9a-f]{2}:/.test(v);
  }
  return false;
}

export function createBrowserPolicy(options: BrowserPolicyOptions): BrowserPolicy {
  const extra = options.origins.map((o) => o.trim()).filter((o) => o !== '');
  const anyOrigin = extra.includes('*');
  const patterns = [...DEFAULT_ORIGINS, ...extra].map(globToRegExp);
  const guardHost = isLoopbackHost(options.listenHost);
  const machine = (options.hostname ?? osHostname()).toLowerCase();
  const listen = options.listenHost.replace(/^\[|\]$/g, '').toLowerCase();
  const localAddresses = new Set((options.localAddresses ?? interfaceAddresses()).map((a) => a.toLowerCase()));

  const originAllowed = (origin: string) => anyOrigin || patterns.some((p) => p.test(origin));

  // Ollama's allowedHostsMiddleware: loopback, private and unspecified addresses, this machine's
  // own addresses and name, and names under .localhost, .local and .internal.
  const hostAllowed = (header: string | undefined): boolean => {
    if (header === undefined || header === '') return true;
    const host = hostOfHeader(header).toLowerCase();
    if (host === '' || host === 'localhost' || host === machine || host === listen) return true;
    if (isIP(host)) return isLocalIp(host) || localAddresses.has(host);
    return ['.localhost', '.local', '.internal'].some((tld) => host.endsWith(tld));
  };

  return {
    check(method, headers) {
      const origin = typeof headers.origin === 'string' ? headers.origin : undefined;
      const host = typeof headers.host === 'string' ? headers.host : undefined;
      let cors: Record<string, string> = {};
      // A page's own origin (the /ui page fetching /queue) is not a cross-origin request.
      const sameOrigin = origin !== undefined && host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
      if (origin !== undefined && !sameOrigin) {
        if (!originAllowed(origin)) return { kind: 'forbidden', reason: 'origin' };
        const requested = headers['access-control-request-method'];
        if (method === 'OPTIONS' && typeof requested === 'string') {
          // Preflights are answered before the Host rule and before auth, as Ollama answers them.
          return { kind: 'preflight', headers: preflightHeaders(origin, headers['access-control-request-headers']) };
        }
        cors = { 'access-control-allow-origin': origin, 'access-control-expose-headers': EXPOSED_HEADERS, vary: 'Origin' };
      }
      if (guardHost && !hostAllowed(host)) return { kind: 'forbidden', reason: 'host' };
      return { kind: 'pass', headers: cors };
    },
  };
}

function preflightHeaders(origin: string, requested: string | string[] | undefined): Record<string, string> {
  const asked = (typeof requested === 'string' ? requested.split(',') : [])
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h.startsWith('x-stainless-') && !ALLOWED_LOWER.has(h) && /^[a-z0-9-]+$/.test(h));
  return {
    'access-control-allow-origin': origin,
    'access-control-allow-methods': ALLOWED_METHODS,
    'access-control-allow-headers': [...ALLOWED_HEADERS, ...asked].join(', '),
    'access-control-max-age': MAX_AGE_S,
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    'content-length': '0',
  };
}

function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(a.address.replace(/%.*$/, ''));
  return out;
}
