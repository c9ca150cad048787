// Which Ollama hosts foreman fronts (SPEC §17): `upstream` as a comma list of base URLs,
// or `hosts_file` with a name, token and limits per host. Pure parsing; no sockets.

import { readFileSync } from 'node:fs';

export interface HostSpec {
  /** What `X-Foreman-Host`, /queue, /metrics and logs call the host. */
  readonly name: string;
  readonly url: string;
  readonly token: string | undefined;
  readonly parallel: number;
  readonly embedParallel: number;
}

export interface HostDefaults {
  token: string | undefined;
  parallel: number;
  embedParallel: number;
}

const NAME_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

/** An http(s) base URL without trailing slashes, or undefined. */
export function normalizeBaseUrl(text: string): string | undefined {
  try {
    const u = new URL(text.trim());
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return text.trim().replace(/\/+$/, '');
  } catch {
    return undefined;
  }
}

/** `host:port` of a URL: the name a host of a plain comma list goes by. */
export function nameOfUrl(url: string): string {
  const u = new URL(url);
  return u.port ? `${u.hostname.replace(/^\[|\]$/g, '')}:${u.port}` : u.hostname.replace(/^\[|\]$/g, '');
}

/** `upstream`: one URL or a comma list; problems are pushed, the good URLs returned. */
export function parseUpstreamList(text: string, problems: string[], where = 'upstream'): string[] {
  const urls: string[] = [];
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const url = normalizeBaseUrl(part);
    if (url === undefined) problems.push(`${where}: expected an http(s) URL, got '${part}'`);
    else urls.push(url);
  }
  if (urls.length === 0 && problems.length === 0) problems.push(`${where}: expected at least one http(s) URL`);
  return urls;
}

function uniqueNames(specs: HostSpec[], problems: string[], where: string): HostSpec[] {
  const seen = new Set<string>();
  const out: HostSpec[] = [];
  for (const spec of specs) {
    if (seen.has(spec.name)) problems.push(`${where}: host name '${spec.name}' appears twice`);
    seen.add(spec.name);
    out.push(spec);
  }
  return out;
}

export function hostsFromUpstream(text: string, defaults: HostDefaults, problems: string[]): HostSpec[] {
  const specs = parseUpstreamList(text, problems).map((url) => ({
    name: nameOfUrl(url), url, token: defaults.token, parallel: defaults.parallel, embedParallel: defaults.embedParallel,
  }));
  return uniqueNames(specs, problems, 'upstream');
}

/** `{"hosts":[{"name","url","token","parallel","embed_parallel"}]}`; every problem is reported at once. */
export function parseHostsJson(text: string, defaults: HostDefaults, problems: string[], where = 'hosts_file'): HostSpec[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    problems.push(`${where}: not JSON: ${(err as Error).message}`);
    return [];
  }
  const list = (doc as { hosts?: unknown } | null)?.hosts;
  if (!Array.isArray(list) || list.length === 0) {
    problems.push(`${where}: expected {"hosts":[{"name","url",...}, ...]} with at least one host`);
    return [];
  }
  const specs: HostSpec[] = [];
  list.forEach((raw, i) => {
    const at = `${where}: hosts[${i}]`;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
      problems.push(`${at}: expected an object`);
      return;
    }
    const h = raw as Record<string, unknown>;
    const url = typeof h.url === 'string' ? normalizeBaseUrl(h.url) : undefined;
    if (url === undefined) {
      problems.push(`${at}.url: expected an http(s) URL`);
      return;
    }
    const name = h.name === undefined ? nameOfUrl(url) : h.name;
    if (typeof name !== 'string' || !NAME_RE.test(name)) problems.push(`${at}.name: expected [A-Za-z0-9_.:-]{1,64}`);
    if (h.token !== undefined && typeof h.token !== 'string') problems.push(`${at}.token: expected a string`);
    const int = (key: string, fallback: number): number => {
      const v = h[key];
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 64) problems.push(`${at}.${key}: expected an integer 1..64`);
      return typeof v === 'number' ? v : fallback;
    };
    specs.push({
      name: String(name), url, token: typeof h.token === 'string' ? h.token : defaults.token,
      parallel: int('parallel', defaults.parallel), embedParallel: int('embed_parallel', defaults.embedParallel),
    });
  });
  return uniqueNames(specs, problems, where);
}

/** The hosts of a config: hosts_file when given, else the `upstream` list. Throws with every problem. */
export function resolveHosts(
  config: { upstream: string; hosts_file: string | undefined; upstream_token: string | undefined; parallel: number; embed_parallel: number },
): HostSpec[] {
  const problems: string[] = [];
  const specs = collectHosts(config, problems);
  if (problems.length) throw new Error(problems.join('\n'));
  return specs;
}

export function collectHosts(
  config: { upstream: string; hosts_file: string | undefined; upstream_token: string | undefined; parallel: number; embed_parallel: number },
  problems: string[],
): HostSpec[] {
  const defaults: HostDefaults = { token: config.upstream_token, parallel: config.parallel, embedParallel: config.embed_parallel };
  if (config.hosts_file === undefined) return hostsFromUpstream(config.upstream, defaults, problems);
  let text: string;
  try {
    text = readFileSync(config.hosts_file, 'utf8');
  } catch (err) {
    problems.push(`hosts_file: cannot read '${config.hosts_file}': ${(err as Error).message}`);
    return [];
  }
  return parseHostsJson(text, defaults, problems);
}
