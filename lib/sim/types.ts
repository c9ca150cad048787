// Public shapes of the Ollama simulator (index.ts re-exports them) and the few
// internal types its files share. No logic lives here.

export interface SimModel {
  /** As listed by /api/tags, e.g. 'llama3.2:latest'. Requests may omit ':latest'. */
  name: string;
  /** Default 'generate'. Embedding models live in their own residency slot. */
  kind?: 'generate' | 'embedding';
  /** Time a load takes, ms (default SimOptions.loadMs). */
  loadMs?: number;
  /** Token rate; 0 or undefined = SimOptions.tokensPerSecond; 0 or Infinity there = no delay. */
  tokensPerSecond?: number;
  /** Memory in bytes, shown by /api/tags size and /api/ps size and size_vram. */
  sizeBytes?: number;
  /** Emits message.thinking before content unless the request says think:false. */
  thinking?: boolean;
  /** Supports tools (default true for generate models). */
  tools?: boolean;
  /** Length of the vectors /api/embed returns (default 8). */
  embeddingLength?: number;
  /** Runs on ollama.com, never loaded here; default: the name has a `-cloud` tag or `:cloud`. */
  cloud?: boolean;
}

export interface SimOptions {
  host?: string;
  port?: number;
  models?: SimModel[];
  loadMs?: number;
  unloadMs?: number;
  tokensPerSecond?: number;
  /** OLLAMA_NUM_PARALLEL: concurrent requests per loaded generation model. */
  numParallel?: number;
  /** OLLAMA_MAX_QUEUE: requests waiting for a load beyond this get 503 busy. */
  maxQueue?: number;
  split?: SplitMode;
  seed?: number;
  version?: string;
  defaultTokens?: number;
  /** OLLAMA_ORIGINS: extra allowed browser origins (`*` wildcards), besides Ollama's defaults. */
  origins?: string[];
}

export interface SimStats {
  loads: Record<string, number>;
  evictions: Record<string, number>;
  unloads: Record<string, number>;
  requests: Record<string, number>;
  aborted: number;
  active: number;
  maxConcurrent: number;
  loaded: string[];
  loadOrder: string[];
  /** writes held by backpressure: waiting for 'drain' now, and waits begun since start (tests wait for a full pipeline) */
  backpressure: { waiting: number; waits: number };
  /** cloud-model requests (SPEC §12): never loads, never residency */
  cloud: { requests: Record<string, number>; active: number; maxConcurrent: number; limited: number };
  /** blob uploads (SPEC §14): blobs held, bytes received (never stored), uploads completed */
  blobs: { stored: number; received_bytes: number; uploads: number };
}

export interface Sim {
  readonly url: string;
  readonly port: number;
  stats(): SimStats;
  resetStats(): void;
  /** The next `count` cloud requests get 429 with `Retry-After: retryAfterS` (a spent usage limit). */
  limitCloud(count: number, retryAfterS: number): void;
  close(): Promise<void>;
}

/** 'none' = one write per line or event; 'random' = seeded cuts; N = every N bytes. */
export type SplitMode = 'none' | 'random' | number;

export type FaultKind =
  | 'not_found'
  | 'error_before'
  | 'error_mid'
  | 'stall'
  | 'stall_before'
  | 'reset'
  | 'bad_line';

/** The per-request `"sim": {...}` body field, validated. */
export interface Directive {
  split: SplitMode | undefined;
  fault: FaultKind | undefined;
  after: number;
  status: number;
  message: string;
  delayMs: number;
}

/** SimOptions with every default filled in, frozen at start. */
export interface Settings {
  readonly host: string;
  readonly port: number;
  readonly loadMs: number;
  readonly unloadMs: number;
  readonly tokensPerSecond: number;
  readonly numParallel: number;
  readonly maxQueue: number;
  readonly split: SplitMode;
  readonly seed: number;
  readonly version: string;
  readonly defaultTokens: number;
}
