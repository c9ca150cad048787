// What GET /keys answers (SPEC §15): the keys in force with their limits, what each has waiting
// and running, and its usage. An admin sees every key (and keys removed since that have usage);
// any other key sees itself. Never a token or a token hash.

import { ANONYMOUS, type Key } from './keys-file.js';
import type { KeyRegistry } from './registry.js';
import type { KeyUsage, UsageBook } from './usage.js';

export interface KeyView {
  name: string;
  admin: boolean;
  /** keys_file, tokens (tokens/token_file), removed (no longer configured, usage kept) or anonymous */
  source: 'keys_file' | 'tokens' | 'removed' | 'anonymous';
  sync_priority: number | null;
  max_priority: number | null;
  max_running: number | null;
  max_queued: number | null;
  weight: number;
  models: readonly string[] | null;
  waiting: number;
  running: number;
  usage: KeyUsage;
}

export interface KeysResponse {
  keys: KeyView[];
  /** admins only: the keys file and how its reloads went */
  file?: { path: string | null; reloads: number; refused: number; last_error: string | null };
}

export interface KeyViewSource {
  registry: KeyRegistry;
  usage: UsageBook;
  waitingOf(key: string): number;
  runningOf(key: string): number;
}

export function keyView(key: Key, deps: KeyViewSource, source: KeyView['source'] = key === ANONYMOUS ? 'anonymous' : key.source): KeyView {
  return {
    name: key.name, admin: key.admin, source,
    sync_priority: key.syncPriority, max_priority: key.maxPriority, max_running: key.maxRunning,
    max_queued: key.maxQueued, weight: key.weight, models: key.models,
    waiting: deps.waitingOf(key.name), running: deps.runningOf(key.name), usage: deps.usage.of(key.name),
  };
}

export function keysResponse(caller: Key, deps: KeyViewSource): KeysResponse {
  if (!caller.admin) return { keys: [keyView(caller, deps)] };
  const keys = deps.registry.enabled ? [...deps.registry.list()] : [ANONYMOUS];
  const views = keys.map((k) => keyView(k, deps));
  const known = new Set(keys.map((k) => k.name));
  for (const name of deps.usage.names()) {
    if (known.has(name)) continue;
    // A removed key keeps its usage and its queued jobs; it shows with no limits of its own.
    views.push(keyView({ ...ANONYMOUS, name, admin: false }, deps, 'removed'));
  }
  const r = deps.registry.reloads;
  return { keys: views, file: { path: deps.registry.file ?? null, reloads: r.ok, refused: r.refused, last_error: r.lastError } };
}

