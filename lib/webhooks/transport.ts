// One webhook POST over node:http(s), to an address checked after DNS resolution (SPEC §5, ADR 0021):
// the lookup keeps only addresses the target policy allows, and the socket's remote address is checked
// again once connected. The Host header and TLS name stay the URL's. Failures come back in words.
import { request as httpRequest, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupFunction } from 'node:net';
import { describeRefusal, OPEN_POLICY, refusalFor, refusalForHost, type Refusal, type TargetPolicy } from './targets.js';

export interface SendRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}

/** A status, or what went wrong in words a job's owner can use (`could not connect`, `refused: private address`). */
export type SendResult = { kind: 'status'; status: number; retryAfter: string | null } | { kind: 'error'; message: string };
export type WebhookSend = (request: SendRequest) => Promise<SendResult>;

export type Resolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

export interface TransportOptions {
  policy?: TargetPolicy;
  /** Name resolution; tests inject names that resolve to chosen addresses. */
  resolve?: Resolver;
}

const systemResolve: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

export function createWebhookTransport(options: TransportOptions = {}): WebhookSend {
  const policy = options.policy ?? OPEN_POLICY;
  const resolve = options.resolve ?? systemResolve;
  return (r) =>
    new Promise<SendResult>((done) => {
      let url: URL;
      try {
        url = new URL(r.url);
      } catch {
        return done({ kind: 'error', message: 'not a valid URL' });
      }
      const hostname = url.hostname;
      let refused: Refusal | null = refusalForHost(hostname, policy);
      if (refused) return done({ kind: 'error', message: describeRefusal(refused) });

      const lookup: LookupFunction = (host, opts, callback) => {
        resolve(host).then(
          (all) => {
            const family = typeof opts.family === 'number' ? opts.family : 0;
            const usable = all.filter((a) => {
              if (family !== 0 && a.family !== family) return false;
              const kind = refusalFor(a.address, hostname, policy);
              if (kind) refused ??= kind;
              return kind === null;
            });
            if (usable.length === 0) {
              const err = Object.assign(new Error(`no usable address for ${host}`), { code: refused ? 'EFOREMANREFUSED' : 'ENOTFOUND' });
              return callback(err, '', 0);
            }
            if (opts.all) (callback as unknown as (e: null, a: typeof usable) => void)(null, usable);
            else callback(null, usable[0]!.address, usable[0]!.family);
          },
          (err: NodeJS.ErrnoException) => callback(err, '', 0),
        );
      };

      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      let req: ClientRequest;
      try {
        req = send(url, {
          method: 'POST',
          headers: { ...r.headers, 'content-length': String(Buffer.byteLength(r.body)) },
          lookup,
          agent: false, // a fresh connection each time: every delivery's address is checked, none is reused
          signal: r.signal,
        });
      } catch {
        return done({ kind: 'error', message: 'could not connect' });
      }
      req.once('socket', (socket) => {
        socket.once('connect', () => {
          // The address actually connected to, whatever resolved it (an IP literal skips lookup).
          const kind = refusalFor(socket.remoteAddress ?? '', hostname, policy);
          if (kind) {
            refused = kind;
            req.destroy(new Error('refused target'));
          }
        });
      });
      req.once('response', (res) => {
        const retryAfter = res.headers['retry-after'];
        // Only the status matters: nothing of the body is read.
        res.destroy();
        done({ kind: 'status', status: res.statusCode ?? 0, retryAfter: typeof retryAfter === 'string' ? retryAfter : null });
      });
      req.once('error', (err: NodeJS.ErrnoException) => {
        done({ kind: 'error', message: refused ? describeRefusal(refused) : inWords(err) });
      });
      req.end(r.body);
    });
}

const TLS_CODES = /^(CERT_|ERR_TLS_CERT|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED|SELF_SIGNED_CERT)/;

/**
 * Never the raw socket error: which of refused, reset or unreachable a port gave is a port scanner's
 * answer, and no help to a job's owner. Name resolution and certificates are said apart: an owner can act on them.
 */
function inWords(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') return 'could not resolve the host name';
  if (TLS_CODES.test(code)) return 'TLS certificate not accepted';
  return 'could not connect';
}
