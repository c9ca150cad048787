// hosts/ owns the set of Ollama hosts: their specs, probes, catalogues and choice.
//
// The set of Ollama hosts (SPEC §17): health probes (`/api/version` every 5 s; a failed
// connection marks a host down at once, a good probe brings it back), catalogues (every
// minute and after a 404), and the choice of host for embeddings and model management.
// With one host nothing is probed or gated: sections 1–3 hold exactly as before.

import { normalizeModel } from '../sched/model-group.js';
import { silentLogger, type Logger } from '../log.js';
import { Host, parseTags } from './host.js';
import type { HostSpec } from './specs.js';
import type { Upstream } from '../upstream.js';

export interface HostPoolOptions {
  log?: Logger;
  /** silence after which an upstream request is abandoned */
  idleMs?: number;
  /** embedding requests that may wait per host */
  maxWaiting: number;
  probeMs?: number;
  catalogueMs?: number;
}

const PROBE_TIMEOUT_MS = 2_000;

export type HostChange = 'down' | 'up' | 'catalogue';

/** What a hosts_file reload changed. */
export interface HostsUpdate {
  added: Host[];
  removed: Host[];
  /** names whose `parallel` or `embed_parallel` changed: applied at once */
  limits: string[];
  /** hosts whose url or token changed: new requests go to the new address (running ones finish on the old) */
  moved: Host[];
}

export class HostPool {
  readonly #hosts: Host[];
  /** several hosts: fixed at start (the scheduler's lanes are built for it), whatever a reload does */
  readonly multi: boolean;
  readonly #hostOptions: { idleMs?: number; maxWaiting: number };
  readonly #log: Logger;
  readonly #probeMs: number;
  readonly #catalogueMs: number;
  readonly #listeners = new Set<(host: Host, what: HostChange) => void>();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #probing = new Set<Host>();
  #closed = false;
  /** the hosts not retired; null when a reload changed them */
  #live: Host[] | null = null;

  constructor(specs: readonly HostSpec[], options: HostPoolOptions) {
    if (specs.length === 0) throw new Error('hosts: at least one host is needed');
    this.#log = options.log ?? silentLogger;
    this.#probeMs = options.probeMs ?? 5_000;
    this.#catalogueMs = options.catalogueMs ?? 60_000;
    this.#hostOptions = { idleMs: options.idleMs, maxWaiting: options.maxWaiting };
    this.#hosts = specs.map((s) => new Host(s, this.#hostOptions));
    this.multi = specs.length > 1;
  }

  /** The hosts that take work (a host removed by a reload is not among them). */
  get hosts(): readonly Host[] {
    // Read on every request (the first host's client, the candidates): built once per reload, not per read.
    return (this.#live ??= this.#hosts.filter((h) => !h.retired));
  }

  /**
   * A reload of hosts_file (several hosts only): hosts by name, new ones added (probed and their
   * catalogue read at once), missing ones retired (no new work; closed once idle, see closeRetired).
   * A retired host listed again is back (its lane, if still finishing, takes work again). A host's
   * new limits, url or token apply at once (running requests finish on the old address).
   */
  update(specs: readonly HostSpec[]): HostsUpdate {
    const change: HostsUpdate = { added: [], removed: [], limits: [], moved: [] };
    const current = new Map(this.hosts.map((h) => [h.name, h]));
    for (const spec of specs) {
      const old = current.get(spec.name);
      if (old) {
        current.delete(spec.name);
        this.#apply(old, spec, change);
        continue;
      }
      // Removed by an earlier reload and still finishing its jobs (or its embeddings): it is back,
      // the same host, so no two lanes ever share a name.
      const retired = this.#hosts.find((h) => h.retired && h.name === spec.name);
      if (retired) {
        retired.retired = false;
        retired.idle = false;
        this.#live = null;
        change.added.push(retired);
        this.#apply(retired, spec, change);
        continue;
      }
      const host = new Host(spec, this.#hostOptions);
      this.#hosts.push(host);
      this.#live = null;
      change.added.push(host);
      if (!this.#closed) void this.probe(host).then(() => this.refreshCatalogue(host));
    }
    for (const host of current.values()) {
      host.retired = true;
      this.#live = null;
      change.removed.push(host);
    }
    return change;
  }

  /** A listed host's settings: a new url or token moves it, new limits apply at once. */
  #apply(host: Host, spec: HostSpec, change: HostsUpdate): void {
    if (host.spec.url !== spec.url || host.spec.token !== spec.token) {
      host.readdress(spec);
      change.moved.push(host);
      // What the old address had installed says nothing of the new one: it takes no work until a
      // probe there has read its catalogue (a down host comes back up that way).
      this.markDown(host, `moved to ${spec.url}`);
      if (!this.#closed) void this.probe(host);
    } else if (host.spec.parallel !== spec.parallel || host.spec.embedParallel !== spec.embedParallel) {
      host.applyLimits(spec);
      change.limits.push(spec.name);
    }
  }

  /** Closes retired hosts with nothing in flight (their lanes ended; embeddings done). */
  closeRetired(): void {
    for (let i = this.#hosts.length - 1; i >= 0; i--) {
      const h = this.#hosts[i]!;
      if (h.retired && h.idle && h.embeddings.active === 0 && h.embeddings.waiting === 0) {
        this.#hosts.splice(i, 1);
        h.close();
      }
    }
  }

  get first(): Host {
    return this.hosts[0]!;
  }

  /**
   * The first host's client as it is at each call, for what has no host of its own (one host's
   * routes; a cloud job no host that is up can take): after a reload removed or moved the first
   * host, it is the new first.
   */
  firstUpstream(): Upstream {
    const now = () => this.first.upstream;
    return {
      get baseUrl() {
        return now().baseUrl;
      },
      send: (path, init) => now().send(path, init),
      loadedModels: (signal) => now().loadedModels(signal),
      capabilities: (model, signal) => now().capabilities(model, signal),
      exists: (model, signal) => now().exists(model, signal),
      unload: (model, signal) => now().unload(model, signal),
      version: (signal) => now().version(signal),
      retire: () => {}, // the hosts' own clients are retired and closed by the pool
      close: () => {},
    };
  }

  /** By name or base URL (what `X-Foreman-Host` may say). */
  find(nameOrUrl: string): Host | undefined {
    const key = nameOrUrl.trim().replace(/\/+$/, '');
    return this.hosts.find((h) => h.name === key || h.url === key) ?? this.hosts.find((h) => h.name.toLowerCase() === key.toLowerCase());
  }

  /** Called with a host whose state changed (down or up again) or whose catalogue was read. */
  onChange(listener: (host: Host, what: HostChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts probes and catalogue reads; only with several hosts. */
  start(): void {
    if (!this.multi) return;
    for (const host of this.hosts) void this.refreshCatalogue(host);
    const probe = setInterval(() => {
      for (const host of this.hosts) void this.probe(host);
      this.closeRetired();
    }, this.#probeMs);
    const catalogue = setInterval(() => {
      for (const host of this.hosts) if (host.state === 'up') void this.refreshCatalogue(host);
    }, this.#catalogueMs);
    probe.unref();
    catalogue.unref();
    this.#timers.push(probe, catalogue);
  }

  /** A connection to the host failed: it takes no jobs until a probe succeeds. */
  markDown(host: Host, reason: string): void {
    if (!this.multi || host.state === 'down') return;
    host.state = 'down';
    host.error = reason;
    this.#log.warn('host down', { host: host.name, error: reason });
    this.#emit(host, 'down');
  }

  /** `/api/version`; a good answer brings a down host back (and re-reads its catalogue). */
  async probe(host: Host): Promise<void> {
    if (this.#probing.has(host) || this.#closed) return;
    this.#probing.add(host);
    try {
      host.version = await host.upstream.version(AbortSignal.timeout(PROBE_TIMEOUT_MS));
      if (host.state === 'down') {
        await this.refreshCatalogue(host);
        host.state = 'up';
        host.error = null;
        this.#log.info('host up', { host: host.name, version: host.version });
        this.#emit(host, 'up');
      }
    } catch (err) {
      this.markDown(host, (err as Error).message);
    } finally {
      this.#probing.delete(host);
    }
  }

  async refreshCatalogue(host: Host): Promise<void> {
    try {
      const res = await host.upstream.send('/api/tags', { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS * 5) });
      const text = await res.text(64 * 1024 * 1024);
      if (!res.ok) throw new Error(`/api/tags answered ${res.status}`);
      const { names, sizes } = parseTags(text);
      host.setCatalogue(names, sizes);
      this.#emit(host, 'catalogue');
    } catch (err) {
      if (this.#closed) return;
      this.#log.warn('catalogue unknown', { host: host.name, error: (err as Error).message });
    }
  }

  /** A host answered 404 for a model it was thought to have: read what it has again. */
  modelMissing(host: Host): void {
    if (this.multi) void this.refreshCatalogue(host);
  }

  /** Hosts that may run `model`: up, and it is installed there (or nobody knows where it is). */
  candidates(model: string): Host[] {
    const up = this.hosts.filter((h) => h.state === 'up' || !this.multi);
    const having = up.filter((h) => h.hasModel(model) !== false);
    return having.length > 0 ? having : up;
  }

  /**
   * SPEC §17: an embedding goes to a host that has the model loaded, else one that has it
   * installed, within that host's embed_parallel; the least busy such host wins ties.
   */
  embeddingHost(model: string): Host {
    if (!this.multi) return this.first;
    const name = normalizeModel(model).toLowerCase();
    const up = this.hosts.filter((h) => h.state === 'up');
    if (up.length === 0) return this.first;
    const rank = (h: Host) => (h.embedLoaded?.toLowerCase() === name ? 0 : h.hasModel(model) === true ? 1 : h.hasModel(model) === undefined ? 2 : 3);
    const load = (h: Host) => (h.embeddings.active + h.embeddings.waiting) / h.embeddings.max;
    return [...up].sort((a, b) => rank(a) - rank(b) || load(a) - load(b))[0]!;
  }

  #emit(host: Host, what: HostChange): void {
    for (const listener of this.#listeners) listener(host, what);
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    for (const host of this.#hosts) host.close();
  }
}
