// Requests that are not queued, with several hosts (SPEC §17): /api/tags, /api/ps,
// /api/version and /v1/models merged over the hosts that are up; model management sent to
// the host named by `X-Foreman-Host` (else the first). With one host each is a passthrough.

import type { RequestContext } from './server.js';
import type { HostPool } from '../hosts/pool.js';
import { parseTags, type Host } from '../hosts/host.js';
import { badRequest, upstreamUnreachable } from '../errors.js';
import { sendJson } from './body.js';
import { passthrough } from './passthrough.js';

export const HOST_HEADER = 'x-foreman-host';

/** The host a model-management request names, else the first; an unknown name is a 400. */
export function namedHost(ctx: RequestContext, pool: HostPool): Host {
  const raw = ctx.req.headers[HOST_HEADER];
  const name = Array.isArray(raw) ? raw[0] : raw;
  if (name === undefined || name.trim() === '') return pool.first;
  const host = pool.find(name);
  if (!host) throw badRequest(`X-Foreman-Host: no host named '${name}' (hosts: ${pool.hosts.map((h) => h.name).join(', ')})`);
  return host;
}

type Listing = 'tags' | 'ps' | 'version' | 'v1models';

const PATHS: Record<Listing, string> = { tags: '/api/tags', ps: '/api/ps', version: '/api/version', v1models: '/v1/models' };

/** Numeric-aware comparison of dotted versions: 0.9.0 < 0.12.6. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/);
  const pb = b.split(/[.+-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    const c = Number.isFinite(nx) && Number.isFinite(ny) && x !== '' && y !== '' ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}

/** Merges what the hosts answered (each a parsed JSON body) into one listing. */
export function mergeListing(kind: Listing, bodies: unknown[]): unknown {
  if (kind === 'version') {
    const versions = bodies.map((b) => String((b as { version?: unknown }).version ?? '')).filter(Boolean);
    versions.sort(compareVersions);
    return { version: versions[0] ?? 'unknown' };
  }
  const key = kind === 'v1models' ? 'data' : 'models';
  const id = (m: Record<string, unknown>) => String(kind === 'v1models' ? m.id : m.model ?? m.name).toLowerCase();
  const seen = new Set<string>();
  const out: Record<string, unknown>[] = [];
  for (const body of bodies) {
    const list = (body as Record<string, unknown>)[key];
    if (!Array.isArray(list)) continue;
    for (const m of list as Record<string, unknown>[]) {
      if (!m || typeof m !== 'object' || seen.has(id(m))) continue;
      seen.add(id(m));
      out.push(m);
    }
  }
  if (kind === 'v1models') return { object: 'list', data: out.length > 0 ? out : null };
  return { models: out };
}

/** GET /api/tags, /api/ps, /api/version, /v1/models: one host's answer, or the merge of every host's. */
export async function serveListing(ctx: RequestContext, pool: HostPool, kind: Listing, maxBody: number): Promise<void> {
  if (!pool.multi) return passthrough(ctx, { upstream: pool.first.upstream, maxBody });
  const up = pool.hosts.filter((h) => h.state === 'up');
  const answers = await Promise.all(
    up.map(async (host) => {
      try {
        const res = await host.upstream.send(PATHS[kind], { signal: AbortSignal.timeout(10_000) });
        const text = await res.text(64 * 1024 * 1024);
        if (!res.ok) return null;
        if (kind === 'tags') setCatalogueFrom(host, text);
        return JSON.parse(text) as unknown;
      } catch (err) {
        pool.markDown(host, (err as Error).message);
        return null;
      }
    }),
  );
  const bodies = answers.filter((a) => a !== null);
  if (bodies.length === 0) throw upstreamUnreachable('no host answered');
  if (ctx.req.method === 'HEAD') {
    ctx.res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
    ctx.res.end();
    return;
  }
  sendJson(ctx.res, 200, mergeListing(kind, bodies));
}

function setCatalogueFrom(host: Host, text: string): void {
  let tags: ReturnType<typeof parseTags>;
  try {
    tags = parseTags(text);
  } catch {
    tags = { names: [], sizes: new Map() };
  }
  host.setCatalogue(tags.names, tags.sizes);
}
