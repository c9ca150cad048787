// One Ollama host behind foreman (SPEC §17): its client, its embedding limiter, whether it
// is up, and what it has installed (its /api/tags, re-read every minute and after a 404).
// It knows no queue: the scheduler's lanes read `up` and `hasModel` from here.

import { createUpstream, type Upstream } from '../upstream.js';
import { createLimiter, type Limiter } from '../sched/limiter.js';
import { modelKey, normalizeModel } from '../sched/model-group.js';
import type { HostSpec } from './specs.js';

export type HostState = 'up' | 'down';

/** A host's /api/tags answer: the model names, and each one's size where it says (bytes). */
export function parseTags(text: string): { names: string[]; sizes: Map<string, number> } {
  const models = (JSON.parse(text) as { models?: Array<{ name?: string; model?: string; size?: unknown }> | null }).models ?? [];
  const names: string[] = [];
  const sizes = new Map<string, number>();
  for (const m of Array.isArray(models) ? models : []) {
    const name = String(m?.model || m?.name || '');
    if (!name) continue;
    names.push(name);
    if (typeof m.size === 'number') sizes.set(name, m.size);
  }
  return { names, sizes };
}

export interface HostView {
  name: string;
  url: string;
  state: HostState;
  /** why it is down, when it is */
  error: string | null;
  version: string | null;
  parallel: number;
  /** models installed, null until the first /api/tags answered */
  models: string[] | null;
  embeddings: { in_flight: number; max: number; loaded: string | null };
}

export class Host {
  readonly name: string;
  readonly embeddings: Limiter;
  #upstream: Upstream;
  readonly #idleMs: number | undefined;
  /** what hosts_file said of it: a reload compares it (limits it applies, see applyLimits) */
  #spec: HostSpec;
  state: HostState = 'up';
  /** removed from hosts_file: takes no new work; closed once its running work ended */
  retired = false;
  /** a retired host's lane has ended (no job runs there any more) */
  idle = false;
  error: string | null = null;
  version: string | null = null;
  /** the embedding model last seen loaded here (its own slot, SPEC §3) */
  embedLoaded: string | null = null;
  /** lower-cased normalised names; null until known */
  #catalogue: Set<string> | null = null;
  #models: string[] | null = null;
  /** bytes on disk per normalised name, from /api/tags `size` (a prior for its load time, ADR 0025) */
  #sizes = new Map<string, number>();

  constructor(spec: HostSpec, options: { idleMs?: number; maxWaiting: number }) {
    this.#spec = spec;
    this.name = spec.name;
    this.#idleMs = options.idleMs;
    this.#upstream = createUpstream(spec.url, spec.token, options.idleMs);
    this.embeddings = createLimiter(spec.embedParallel, options.maxWaiting);
  }

  get spec(): HostSpec {
    return this.#spec;
  }

  get url(): string {
    return this.#spec.url;
  }

  /** The client for new requests; one that started on the old client of a moved host finishes there. */
  get upstream(): Upstream {
    return this.#upstream;
  }

  /**
   * A reload's new url or token: new requests take a new client at once, the old one closes its
   * connections as their answers end. What was known of the old address (catalogue, loaded model)
   * is for the caller to read again.
   */
  readdress(spec: HostSpec): void {
    const old = this.#upstream;
    this.#upstream = createUpstream(spec.url, spec.token, this.#idleMs);
    old.retire();
    this.applyLimits(spec);
  }

  /** Jobs at once here; its lane reads it at every pick, so a reload's new value counts at once. */
  get parallel(): number {
    return this.#spec.parallel;
  }

  /**
   * A reload's new `parallel` and `embed_parallel` (same url and token): taken at once. A lowered
   * limit lets what runs finish; a raised one starts waiting work at the next pick.
   */
  applyLimits(spec: HostSpec): void {
    this.#spec = spec;
    this.embeddings.setMax(spec.embedParallel);
  }

  /** True or false once the catalogue is known; undefined before (then any model may be tried). */
  hasModel(model: string): boolean | undefined {
    if (this.#catalogue === null) return undefined;
    const name = modelKey(model);
    // A `:local` suffix names the local model (SPEC §12).
    return this.#catalogue.has(name) || (name.endsWith(':local') && this.#catalogue.has(normalizeModel(name.slice(0, -6))));
  }

  get catalogueKnown(): boolean {
    return this.#catalogue !== null;
  }

  /** Replaces what it has installed (its /api/tags); `sizes` by name as listed, where known. */
  setCatalogue(names: string[], sizes?: ReadonlyMap<string, number>): void {
    this.#models = [...names];
    this.#catalogue = new Set(names.map((n) => modelKey(n)));
    this.#sizes = new Map();
    for (const [name, bytes] of sizes ?? []) {
      if (Number.isFinite(bytes) && bytes > 0) this.#sizes.set(modelKey(name), bytes);
    }
  }

  /** The model's size on this host's disk (bytes), when its /api/tags said. */
  sizeOf(model: string): number | undefined {
    return this.#sizes.get(modelKey(model));
  }

  /** The models installed, as /api/tags names them; null until known. */
  installed(): readonly string[] | null {
    return this.#models;
  }

  view(): HostView {
    return {
      name: this.name, url: this.url, state: this.state, error: this.error, version: this.version, parallel: this.parallel,
      models: this.#models ? [...this.#models] : null,
      embeddings: { in_flight: this.embeddings.active, max: this.embeddings.max, loaded: this.embedLoaded },
    };
  }

  close(): void {
    this.upstream.close();
  }
}
