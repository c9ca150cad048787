// One webhook POST over node:http(s), to an address checked after DNS resolution (SPEC §5, ADR 0021).
// It lives in http/ because the core (webhooks/) knows no node:http; app.ts hands it to the dispatcher:
// the lookup keeps only addresses the target policy allows, and the socket's remote address is checked
// again once connected. The Host header and TLS name stay the URL's. Failures come back in words.
import { request as httpRequest, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupFunction } from 'node:net';
import { describeRefusal, OPEN_POLICY, refusalFor, refusalForHost, type Refusal, type TargetPolicy } from '../webhooks/targets.js';
import { errorInWords, type SendResult, type WebhookSend } from '../webhooks/policy.js';

export type { SendRequest, SendResult, WebhookSend } from '../webhooks/policy.js';

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
        done({ kind: 'error', message: refused ? describeRefusal(refused) : errorInWords(err.code) });
      });
      req.end(r.body);
    });
}
